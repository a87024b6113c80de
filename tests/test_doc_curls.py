"""The curl lines a newcomer copies first, run as written through the test client: README's "Try
it with curl", the recorded session of docs/getting-started.md, docs/agents.md's quickstart and
claim, docs/shares.md's upload. Each must succeed (or fail as its shown answer does), and its
answer must carry the fields the doc shows: a recorded session exactly those, an elided
comment (`# {"ok":true,"id":"spk_…"}`) at least those.

Placeholders are filled from earlier answers as a reader would: the link's token from the mail,
`$TOKEN` from the sign-in, `$KEY` and `sk_spikes_…` from the key creation, `spk_…` from the
last post. A session token a page asks for without showing how (`<session token>`) is a fresh
sign-in. The files an upload sends (`-F 'files=@landing/index.html'`) are those the page's own
lines made (`mkdir -p landing && echo '…' > landing/index.html`), run in an empty folder as a
fresh clone is: the README's upload once sent files a reader did not have, and curl, told `-s`,
said nothing. Only the pages that upload the reader's own folder (OWN_FILES) may name others.
"""
from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import pytest

from tests.conftest import call, login_token_from_mail, sign_in

ROOT = Path(__file__).resolve().parents[1]
ORIGINS = ("$API", "$SPIKES_API_URL", "http://127.0.0.1:8000")
FILE_CONTENT = {".html": "<!doctype html><title>x</title><p>x</p>", ".css": "p { color: red }"}
# Pages whose uploads are the reader's own folder ("a folder's files"), not files the page makes.
OWN_FILES = {"docs/agents.md", "docs/shares.md"}
# A line of a shell block that makes files for the curl lines after it, and nothing else.
MAKES_FILES = re.compile(r"^(?:(?:mkdir -p|echo|printf) [^;|`$]*?(?: && |$))+$")


class Example:
    def __init__(self, doc: str, command: str, shown: str, exact: bool, makes_files: bool = False):
        self.doc, self.command, self.shown, self.exact = doc, command, shown, exact
        self.makes_files = makes_files

    def __repr__(self) -> str:
        return f"{self.doc}: {self.command[:90]}"


def _blocks(text: str) -> Iterator[Tuple[str, str]]:
    for match in re.finditer(r"```(console|bash|sh)\n(.*?)```", text, re.S):
        yield match.group(1), match.group(2).replace("\\\n", " ")


def examples(doc: str) -> List[Example]:
    """The curl commands of the doc's shell blocks, with the answer each shows."""
    found = []
    for kind, block in _blocks((ROOT / doc).read_text(encoding="utf-8")):
        lines = block.splitlines()
        for index, line in enumerate(lines):
            command = line[2:] if kind == "console" and line.startswith("$ ") else line
            if MAKES_FILES.match(command.strip()):
                found.append(Example(doc, command.strip(), "", exact=False, makes_files=True))
                continue
            if not command.lstrip().startswith("curl "):
                continue
            following = []
            for after in lines[index + 1:]:
                if after.startswith("$ ") or after.lstrip().startswith("curl ") or (
                        kind != "console" and not after.startswith("#")):
                    break
                following.append(after[1:].strip() if kind != "console" else after)
            shown = " ".join(following) if kind != "console" else (following[0] if following else "")
            found.append(Example(doc, command.split(" # ", 1)[0], shown, exact=kind == "console"))
    return found


class Reader:
    """What a reader has in hand when they reach each command."""

    def __init__(self, client, folder: Path, own_files: bool = False):
        self.client, self.folder, self.own_files = client, folder, own_files
        self.values: Dict[str, str] = {}
        self.email = "you@example.com"

    def session(self) -> str:
        if "token" not in self.values:
            self.values["token"] = sign_in(self.client, "person@example.com")
        return self.values["token"]

    def fill(self, text: str) -> str:
        for origin in ORIGINS:
            text = text.replace(origin, "")
        if "$TOKEN" in text or "<session token>" in text:
            text = text.replace("$TOKEN", self.session()).replace("<session token>", self.session())
        text = text.replace("$KEY", self.values.get("key", "$KEY"))
        text = text.replace("sk_spikes_…", self.values.get("key", "sk_spikes_…"))
        return text.replace("spk_…", self.values.get("spike", "spk_…"))

    def run(self, example: Example):
        if example.makes_files:
            made = subprocess.run(["bash", "-c", example.command], cwd=self.folder, capture_output=True, text=True)
            return (200 if made.returncode == 0 else 400), made.stderr
        words = shlex.split(self.fill(example.command))
        method, headers, body, parts, path = "GET", {}, None, [], None
        words = iter(words[1:])
        for word in words:
            if word == "-X":
                method = next(words)
            elif word == "-H":
                name, value = next(words).split(": ", 1)
                headers[name] = value
            elif word == "-d":
                body = next(words)
                method = "POST" if method == "GET" else method
            elif word == "-F":
                parts.append(next(words))
                method = "POST" if method == "GET" else method
            elif word.startswith("/"):
                path = word
        if path == "/auth/verify" and body:  # the token the mail of the login before carried
            body = json.dumps({**json.loads(body), "login_token": login_token_from_mail(self.email)})
        if path == "/auth/login" and body:
            self.email = json.loads(body)["email"]
        raw = body.encode() if body is not None else None
        if parts:
            missing = [part for part in parts if part.split("=", 1)[1].startswith("@")
                       and not self._file(part.split("=", 1)[1][1:].partition(";")[0]).is_file()]
            if missing and not self.own_files:
                return 400, f"uploads {missing}, which the page never makes: curl -s would send nothing"
            headers["Content-Type"], raw = _multipart(parts, self._file)
        response = self.client.http.request(method, path, headers=headers, body=raw)
        is_json = response.headers.get("Content-Type", "").startswith("application/json")
        answer = json.loads(response.body) if response.body and is_json else response.body.decode(errors="replace")
        if isinstance(answer, dict):
            for field, name in (("token", "token"), ("api_key", "key")):
                if field in answer:
                    self.values[name] = answer[field]
            if path.startswith("/spikes") and method == "POST":
                self.values["spike"] = answer.get("id", "")
        return response.status_code, answer

    def _file(self, local: str) -> Path:
        return self.folder / local


def _multipart(parts: List[str], file_at) -> Tuple[str, bytes]:
    boundary = "docexample"
    chunks = []
    for part in parts:
        name, value = part.split("=", 1)
        if value.startswith("@"):
            local, _, filename = value[1:].partition(";filename=")
            filename = filename or Path(local).name
            made = file_at(local)
            content = made.read_text(encoding="utf-8") if made.is_file() else FILE_CONTENT[Path(filename).suffix]
            chunks.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                          f"Content-Type: application/octet-stream\r\n\r\n{content}\r\n")
        else:
            chunks.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n')
    return f"multipart/form-data; boundary={boundary}", ("".join(chunks) + f"--{boundary}--\r\n").encode()


def _shape(value) -> object:
    """The field names of an answer, nested; a list by its first item."""
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return None


def _names(shown: str) -> set:
    return set(re.findall(r'"([A-Za-z_]+)":', shown))


def _all_names(value) -> set:
    if isinstance(value, dict):
        return set(value) | {name for item in value.values() for name in _all_names(item)}
    if isinstance(value, list):
        return {name for item in value for name in _all_names(item)}
    return set()


def _mismatch(example: Example, status: int, answer) -> Optional[str]:
    shown = example.shown.strip()
    expected_error: Optional[str] = None
    if shown.startswith("{"):
        codes = re.findall(r'"code":\s*"([A-Z_]+)"', shown)
        expected_error = codes[0] if '"error"' in shown and codes else None
    if expected_error:
        if status < 400 or (answer or {}).get("code") != expected_error:
            return f"shows {expected_error}, answered {status} {answer}"
    elif not 200 <= status < 300:
        return f"answered {status} {answer}"
    if not shown.startswith("{"):
        return None
    if example.exact:
        if _shape(json.loads(shown)) != _shape(answer):
            return f"shows the fields {_shape(json.loads(shown))}, answered {_shape(answer)}"
    elif _names(shown) - _all_names(answer):
        return f"shows {sorted(_names(shown) - _all_names(answer))}, which the answer {answer} lacks"
    return None


DOCS = ["README.md", "docs/getting-started.md", "docs/agents.md", "docs/shares.md"]


@pytest.mark.parametrize("doc", DOCS)
def test_the_curl_examples_answer_what_the_doc_shows(client, env, doc, tmp_path):
    env(AGENT_SIGNUP="true")  # as under make dev, which these pages start from
    found = examples(doc)
    assert found, f"{doc} has no curl examples any more: update DOCS"
    reader = Reader(client, tmp_path, own_files=doc in OWN_FILES)
    wrong = []
    for example in found:
        if " -X OPTIONS " in example.command:  # a preflight: the test client cannot send one
            continue
        status, answer = reader.run(example)
        problem = _mismatch(example, status, answer)
        if problem:
            wrong.append(f"{example!r}: {problem}")
    assert wrong == []


def test_the_runner_sees_a_field_the_doc_shows_and_the_server_does_not_send(client):
    example = Example("x", "curl -s http://127.0.0.1:8000/health", '{"ok":true,"status":"ok","uptime":1}', exact=True)
    status, answer = Reader(client, ROOT).run(example)
    assert _mismatch(example, status, answer) is not None
    example.exact = False
    assert "uptime" in _mismatch(example, status, answer)
    example.shown = '{"ok":true,"status":"ok"}'
    assert _mismatch(example, status, answer) is None


def test_the_runner_sees_an_upload_of_a_file_the_page_never_made(client, tmp_path):
    upload = ("curl -s -X POST http://127.0.0.1:8000/shares -H \"Authorization: Bearer $TOKEN\" "
              "-F 'metadata={\"name\": \"Landing\"}' -F 'files=@site/index.html;filename=index.html'")
    shown = '# {"ok":true,"url":"…","share_id":"sh_…","slug":"landing","status":"active"}'
    page = f"```bash\n{upload}\n{shown}\n```\n"
    reader = Reader(client, tmp_path)
    (tmp_path / "page.md").write_text(page, encoding="utf-8")
    [example] = [found for found in examples(tmp_path / "page.md")]
    status, answer = reader.run(example)
    assert "never makes" in _mismatch(example, status, answer)
    made = "mkdir -p site && echo '<h1>Landing</h1>' > site/index.html"
    (tmp_path / "page.md").write_text(page.replace("```bash\n", f"```bash\n{made}\n"), encoding="utf-8")
    steps = examples(tmp_path / "page.md")
    assert [step.makes_files for step in steps] == [True, False]
    assert [_mismatch(step, *reader.run(step)) for step in steps] == [None, None]
    assert (tmp_path / "site" / "index.html").read_text(encoding="utf-8") == "<h1>Landing</h1>\n"
