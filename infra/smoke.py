"""``make smoke URL=https://<api>/api``: a short end-to-end check of a deployed stage.

Health, the widget script, a share uploaded and served, a spike posted to it and read back,
then the share deleted again. Creating a share needs an account: ``TOKEN=<bearer token or API
key>`` on make's command line (``spikes login``, or ``POST /auth/api-key``), which make hands over
as ``SMOKE_TOKEN``; else the stage's agent sign-up is tried (on in local stages, off in AWS unless
enabled) and the key it made is revoked at the end. A ``TOKEN`` merely exported (the README's
local walkthrough exports one) is refused, never sent: it was meant for another server.

What a run leaves (docs/deploy.md, "Checking a stage"): the retired slug of its share, which
stays its owner's (one, ``spikes-smoke-test``, reused by every run of the same account); after a
sign-up, also that key-only account, with its key revoked and nothing in it.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from typing import Callable, Dict, List, Optional

import requests

TIMEOUT = 30
SHARE_NAME = "spikes-smoke-test"  # one slug for every run: an account's runs retire one slug, not one each


class SmokeFailed(Exception):
    pass


def _expect(response: requests.Response, *statuses: int) -> requests.Response:
    if response.status_code not in statuses:
        raise SmokeFailed(f"{response.request.method} {response.url} answered {response.status_code}: "
                          f"{response.text[:500]}")
    return response


def run(url: str, token: Optional[str] = None, out=sys.stdout) -> Dict[str, float]:
    base = url.rstrip("/")
    http = requests.Session()
    marker = f"smoke-{uuid.uuid4().hex[:10]}"
    state: Dict[str, str] = {}
    timings: Dict[str, float] = {}

    def health() -> None:
        body = _expect(http.get(base + "/", timeout=TIMEOUT), 200).json()
        if body.get("ok") is not True:
            raise SmokeFailed(f"health answered {body}")

    def widget() -> None:
        response = _expect(http.get(base + "/widget.js", timeout=TIMEOUT), 200)
        if "javascript" not in response.headers.get("Content-Type", "") or len(response.content) < 1000:
            raise SmokeFailed("widget.js is not the widget script")

    def credential() -> None:
        if token:
            state["auth"] = token
            return
        response = http.post(base + "/auth/api-key", json={"name": "smoke test"}, timeout=TIMEOUT)
        if response.status_code != 201:
            raise SmokeFailed("no TOKEN given and the stage refuses agent sign-up "
                              f"({response.status_code}): run with TOKEN=<bearer token or API key>")
        created = response.json()
        state.update(auth=created["api_key"], key_id=created["key_id"], account_id=created["account_id"])

    def share() -> None:
        page = f"<!doctype html><html><head><title>{marker}</title></head><body><h1>{marker}</h1></body></html>"
        response = _expect(http.post(
            base + "/shares", headers={"Authorization": f"Bearer {state['auth']}"}, timeout=TIMEOUT,
            data={"metadata": json.dumps({"name": SHARE_NAME})},
            files=[("files", ("index.html", page.encode(), "text/html"))]), 200, 201).json()
        state.update(share_id=response.get("share_id") or response["id"], slug=response["slug"], share_url=response["url"])

    def served() -> None:
        response = _expect(http.get(state["share_url"] + "/", timeout=TIMEOUT), 200)
        if marker not in response.text:
            raise SmokeFailed(f"{state['share_url']}/ does not serve the uploaded page")

    def spike() -> None:
        _expect(http.post(base + "/spikes", timeout=TIMEOUT, json={
            "type": "page", "projectKey": state["slug"], "page": "Home", "url": state["share_url"] + "/",
            "rating": "like", "comments": marker, "reviewer": {"id": "smoke", "name": "Smoke test"}}), 201)
        listed = _expect(http.get(base + "/spikes", params={"project": state["slug"]}, timeout=TIMEOUT), 200).json()
        if marker not in [item.get("comments") for item in listed["data"]]:
            raise SmokeFailed(f"the posted spike is not listed for project {state['slug']}")

    def cleanup() -> None:
        _expect(http.delete(f"{base}/shares/{state['share_id']}", headers={"Authorization": f"Bearer {state['auth']}"},
                            timeout=TIMEOUT), 200, 204)

    def revoke() -> None:
        _expect(http.delete(f"{base}/auth/api-key/{state['key_id']}", headers={"Authorization": f"Bearer {state['auth']}"},
                            timeout=TIMEOUT), 200)

    steps: List[tuple[str, Callable[[], None]]] = [
        ("health", health), ("widget script", widget), ("credential", credential), ("share uploaded", share),
        ("share served", served), ("spike posted and read back", spike), ("share deleted", cleanup)]
    try:
        for name, step in steps:
            run_step(name, step, timings, out)
    except (SmokeFailed, requests.RequestException):
        # A step after the upload failed: the smoke share is deleted still, so each failed run
        # against a broken stage leaves nothing in the account it used (best effort).
        if "share_id" in state and "share deleted" not in timings:
            best_effort(cleanup, f"could not delete the smoke share {state['share_id']}: delete it by hand", out)
        if "key_id" in state:
            best_effort(revoke, f"could not revoke the smoke key {state['key_id']}: revoke it by hand", out)
        raise
    if "key_id" in state:  # the key this run signed up for: nobody holds it once the run ends
        run_step("smoke key revoked", revoke, timings, out)
        print(f"left: the key-only account {state['account_id']} it signed up (no live key, no share, no "
              "feedback; docs/deploy.md, 'Checking a stage')", file=out)
    return timings


def run_step(name: str, step: Callable[[], None], timings: Dict[str, float], out) -> None:
    started = time.perf_counter()
    step()
    timings[name] = (time.perf_counter() - started) * 1000
    print(f"ok  {name:<28} {timings[name]:7.0f} ms", file=out, flush=True)


def best_effort(step: Callable[[], None], failure: str, out) -> None:
    try:
        step()
    except (SmokeFailed, requests.RequestException):
        print(failure, file=out)


def given_token(environ=os.environ) -> Optional[str]:
    """The credential given for this run: SMOKE_TOKEN, set by make from a TOKEN on its command line
    (empty: sign up). A TOKEN only exported is another server's, so it stops the run unsent."""
    if "SMOKE_TOKEN" in environ:
        return environ["SMOKE_TOKEN"] or None
    if environ.get("TOKEN"):
        raise SmokeFailed("TOKEN is exported in this shell but was not given for this stage, so it is not sent "
                          "(the README's local walkthrough exports one): run make smoke URL=... TOKEN=<a credential "
                          "of this stage>, or TOKEN= to sign up (docs/deploy.md, 'Checking a stage')")
    return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="the stage's API URL (make deploy prints it)")
    args = parser.parse_args(argv)
    try:
        run(args.url, given_token())
    except (SmokeFailed, requests.RequestException) as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    print(f"Smoke test passed against {args.url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
