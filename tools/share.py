"""Share a folder of any size: `python -m tools.share DIR --host https://spikes.example.com`.

`spikes share` sends a whole folder in one request, which API Gateway and Lambda cap at a few
megabytes. This command takes the presigned way instead (docs/shares.md): it announces the
files, PUTs each one straight to S3, then completes the share and prints its URL.

The token is the CLI's: `--token`, else `SPIKES_TOKEN`, else the file `spikes login` writes
(`$XDG_CONFIG_HOME/spikes/auth.toml`, `~/.config/spikes/auth.toml`, or on macOS
`~/Library/Application Support/spikes/auth.toml`). Hidden files and folders (`.git`,
`.spikes`, `.DS_Store`) are left out.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tomllib
from pathlib import Path
from typing import Dict, List, Optional

import requests

TIMEOUT_SECONDS = 60
UPLOAD_TIMEOUT_SECONDS = 600


class ShareFailed(Exception):
    pass


def auth_file_candidates() -> List[Path]:
    candidates = []
    if os.environ.get("XDG_CONFIG_HOME"):
        candidates.append(Path(os.environ["XDG_CONFIG_HOME"]) / "spikes" / "auth.toml")
    home = Path.home()
    candidates += [home / ".config" / "spikes" / "auth.toml",
                   home / "Library" / "Application Support" / "spikes" / "auth.toml"]
    if os.environ.get("APPDATA"):
        candidates.append(Path(os.environ["APPDATA"]) / "spikes" / "auth.toml")
    return candidates


def find_token(explicit: Optional[str]) -> str:
    if explicit:
        return explicit
    if os.environ.get("SPIKES_TOKEN"):
        return os.environ["SPIKES_TOKEN"]
    for path in auth_file_candidates():
        if path.is_file():
            auth = tomllib.loads(path.read_text(encoding="utf-8")).get("auth") or {}
            token = auth.get("token") or auth.get("api_key")
            if token:
                return token
    raise ShareFailed("No token: run `spikes login` (with SPIKES_API_URL set to your server), "
                      "set SPIKES_TOKEN, or pass --token")


def collect_files(folder: Path) -> Dict[str, Path]:
    files = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if path.is_file() and not any(part.startswith(".") for part in relative.parts):
            files[relative.as_posix()] = path
    if not files:
        raise ShareFailed(f"No files to share in {folder}")
    return files


def _answer(response: requests.Response, expected: tuple) -> dict:
    if response.status_code in expected:
        return response.json()
    try:
        body = response.json()
        message = body.get("error") or response.text
        details = body.get("details")
    except ValueError:
        message, details = response.text[:300], None
    suffix = "".join(f"\n  {d.get('field')}: {d.get('message')}" for d in details or [])
    raise ShareFailed(f"{response.request.method} {response.url} answered {response.status_code}: {message}{suffix}")


def share_folder(folder: Path, host: str, token: str, name: Optional[str] = None, password: Optional[str] = None,
                 slug: Optional[str] = None, out=sys.stderr) -> dict:
    files = collect_files(folder)
    host = host.rstrip("/")
    auth = {"Authorization": f"Bearer {token}"}
    announcement = {"name": name or folder.resolve().name,
                    "files": [{"path": path, "size": local.stat().st_size} for path, local in files.items()]}
    if password:
        announcement["password"] = password
    if slug:
        announcement["slug"] = slug
    plan = _answer(requests.post(f"{host}/shares/uploads", json=announcement, headers=auth, timeout=TIMEOUT_SECONDS),
                   (200, 201))
    try:
        _put_all(plan, list(files.values()), out)
        return _answer(requests.post(plan["complete_url"], headers=auth, timeout=TIMEOUT_SECONDS), (200, 201))
    except (ShareFailed, requests.RequestException) as exc:
        raise ShareFailed(f"{exc}\n{_give_back(host, auth, plan)}") from None


def _put_all(plan: dict, local_files: List[Path], out) -> None:
    total = len(plan["uploads"])
    for number, target in enumerate(plan["uploads"], 1):
        local = local_files[number - 1]  # the server answers in the announced order, paths normalised
        print(f"  [{number}/{total}] {target['path']} ({local.stat().st_size} bytes)", file=out)
        with local.open("rb") as body:
            response = requests.request(target.get("method", "PUT"), target["url"], data=body,
                                        headers=target.get("headers") or {}, timeout=UPLOAD_TIMEOUT_SECONDS)
        if response.status_code not in (200, 201, 204):
            raise ShareFailed(f"Uploading {target['path']} failed ({response.status_code}): {response.text[:300]}")


def _give_back(host: str, auth: dict, plan: dict) -> str:
    """A failed upload's pending share holds a place in the account's share limit until the
    server expires it a day later: deleted now, so running the command again is not refused."""
    share_id = plan["share_id"]
    try:
        response = requests.request("DELETE", f"{host}/shares/{share_id}?exported_spikes=false", headers=auth,
                                    timeout=TIMEOUT_SECONDS)
        if response.status_code in (200, 204, 404):
            return "The unfinished share was deleted: run the command again."
    except requests.RequestException:
        pass
    return (f"The unfinished share {share_id} holds a place in your share limit until "
            f"{plan.get('complete_before') or 'a day from now'}: delete it in the dashboard "
            f"(or DELETE /shares/{share_id}), then run the command again.")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.share", description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--host", required=True, help="your server's origin, e.g. https://spikes.example.com")
    parser.add_argument("--name", help="the share's name (default: the folder's name)")
    parser.add_argument("--slug", help="preferred slug")
    parser.add_argument("--password", help="protect the share (Pro)")
    parser.add_argument("--token", help="default: SPIKES_TOKEN, then the CLI's auth.toml")
    parser.add_argument("--json", action="store_true", help="print the server's answer as JSON")
    args = parser.parse_args(argv)
    if not args.folder.is_dir():
        print(f"Not a folder: {args.folder}", file=sys.stderr)
        return 2
    try:
        shared = share_folder(args.folder, args.host, find_token(args.token), args.name, args.password, args.slug)
    except ShareFailed as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except requests.RequestException as exc:
        print(f"Could not reach {args.host}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(shared) if args.json else shared["url"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
