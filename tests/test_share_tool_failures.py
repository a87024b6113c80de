"""`python -m tools.share` when an upload fails half-way (docs/shares.md): the pending share it
announced held a place in the owner's share limit for a day, unsaid."""
from __future__ import annotations

from typing import List, Tuple

import pytest
import requests

from tools import share as share_tool


class _Answer:
    def __init__(self, status: int, body: dict):
        self.status_code, self._body, self.text = status, body, str(body)
        self.request, self.url = type("Sent", (), {"method": "POST"})(), "http://server/x"

    def json(self) -> dict:
        return self._body


@pytest.fixture
def server(monkeypatch):
    """A server that announces the upload and a storage that refuses every PUT (503)."""
    sent: List[Tuple[str, str]] = []
    plan = {"share_id": "sh_aaaaaaaaaaaa", "status": "pending", "complete_url": "http://server/shares/sh_aaaaaaaaaaaa/complete",
            "complete_before": "2026-12-07T10:00:00Z",
            "uploads": [{"path": "index.html", "method": "PUT", "url": "http://s3/put", "headers": {}}]}

    def post(url, **kwargs):
        sent.append(("POST", url))
        return _Answer(201, plan)

    def request(method, url, **kwargs):
        sent.append((method, url))
        if method == "PUT":
            return _Answer(503, {"error": "SlowDown"})
        return _Answer(200, {"ok": True, "exported_spikes": []})

    monkeypatch.setattr(requests, "post", post)
    monkeypatch.setattr(requests, "request", request)
    return sent


def test_a_failed_put_deletes_the_pending_share_it_announced(server, tmp_path):
    (tmp_path / "index.html").write_bytes(b"<h1>hi</h1>")
    with pytest.raises(share_tool.ShareFailed) as failed:
        share_tool.share_folder(tmp_path, "http://server", "sp_token", out=open("/dev/null", "w"))
    assert ("DELETE", "http://server/shares/sh_aaaaaaaaaaaa?exported_spikes=false") in server
    assert "503" in str(failed.value) and "run the command again" in str(failed.value)
