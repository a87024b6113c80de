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
