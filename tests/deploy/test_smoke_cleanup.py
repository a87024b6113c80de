"""`make smoke` against a stage that fails after the upload (a share not served, a spike not read
back) deletes its share still: it left one behind on every failed run, in the account whose
credential it was given."""
from __future__ import annotations

import io
import json
from typing import Any, List

import pytest
import requests

from infra import smoke


def answer(method: str, url: str, status: int, body: Any = None, text: str = "") -> requests.Response:
    response = requests.Response()
    response.status_code, response.url = status, url
    response._content = json.dumps(body).encode() if body is not None else text.encode()
    response.headers["Content-Type"] = "application/json" if body is not None else "application/javascript"
    response.request = requests.Request(method, url).prepare()
    return response


class StageServingNothing:
    """A stage that takes a share but serves none of its files."""
    deleted: List[str] = []

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        if url.endswith("/widget.js"):
            return answer("GET", url, 200, text="x" * 2000)
        if url.endswith("/api/"):
            return answer("GET", url, 200, {"ok": True})
        return answer("GET", url, 500, {"error": "broken"})

    def post(self, url: str, **kwargs: Any) -> requests.Response:
        return answer("POST", url, 201, {"share_id": "shr_1", "slug": "smoke", "url": "https://stage/s/smoke"})

    def delete(self, url: str, **kwargs: Any) -> requests.Response:
        self.deleted.append(url)
        return answer("DELETE", url, 204, text="")


def test_a_failed_smoke_deletes_its_share(monkeypatch):
    StageServingNothing.deleted = []
    monkeypatch.setattr(smoke.requests, "Session", StageServingNothing)
    with pytest.raises(smoke.SmokeFailed, match="answered 500"):
        smoke.run("https://stage/api", token="key", out=io.StringIO())
    assert StageServingNothing.deleted == ["https://stage/api/shares/shr_1"]


class StageWithSignup(StageServingNothing):
    """A stage with agent sign-up on, serving everything (or, with ``broken``, no share file)."""
    broken = False
    created: List[str] = []

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        if url.endswith("/s/smoke/"):
            return answer("GET", url, 500 if self.broken else 200, text=self.page)
        if "/spikes" in url:
            return answer("GET", url, 200, {"data": [{"comments": self.marker}]})
        return super().get(url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> requests.Response:
        if url.endswith("/auth/api-key"):
            self.created.append(url)
            return answer("POST", url, 201, {"api_key": "sk_smoke", "key_id": "key_1", "account_id": "usr_1"})
        if url.endswith("/spikes"):
            StageWithSignup.marker = kwargs["json"]["comments"]
            return answer("POST", url, 201, {"id": "spk_1"})
        StageWithSignup.page = kwargs["files"][0][1][1].decode()
        assert json.loads(kwargs["data"]["metadata"])["name"] == smoke.SHARE_NAME  # one slug for every run
        return super().post(url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> requests.Response:
        self.deleted.append(url)
        return answer("DELETE", url, 200, {"ok": True})


def test_a_smoke_that_signed_up_revokes_its_key(monkeypatch):
    # Without TOKEN the smoke signs up a key-only account; its key stayed live, held by nobody.
    monkeypatch.setattr(smoke.requests, "Session", StageWithSignup)
    for broken in (False, True):
        StageWithSignup.deleted, StageWithSignup.broken = [], broken
        out = io.StringIO()
        if broken:
            with pytest.raises(smoke.SmokeFailed):
                smoke.run("https://stage/api", out=out)
        else:
            assert "smoke key revoked" in smoke.run("https://stage/api", out=out)
            assert "key-only account usr_1" in out.getvalue()
        assert StageWithSignup.deleted == ["https://stage/api/shares/shr_1", "https://stage/api/auth/api-key/key_1"]


class NoStage:
    """Any request is a failure: the run must stop before sending anything."""
    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the smoke sent a request ({name}) it should not have")


def test_an_exported_token_is_refused_unsent(monkeypatch, capsys):
    # The README's local walkthrough exports TOKEN; `make smoke URL=<a deployed stage>` later sent
    # that local credential to the stage. Only a token make was given (SMOKE_TOKEN) is sent now.
    monkeypatch.setattr(smoke.requests, "Session", NoStage)
    monkeypatch.delenv("SMOKE_TOKEN", raising=False)
    monkeypatch.setenv("TOKEN", "local-walkthrough-token")
    assert smoke.main(["https://stage/api"]) == 1
    error = capsys.readouterr().err
    assert "TOKEN is exported" in error and "TOKEN=" in error and "local-walkthrough-token" not in error
    assert smoke.given_token({"TOKEN": "local", "SMOKE_TOKEN": "stage-key"}) == "stage-key"
    assert smoke.given_token({"TOKEN": "local", "SMOKE_TOKEN": ""}) is None  # TOKEN= given empty: sign up
    assert smoke.given_token({}) is None
