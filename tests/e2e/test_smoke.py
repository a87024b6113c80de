"""`make smoke URL=...` against the real local server: what a user runs against a deployed stage."""
from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest
import requests

from infra import smoke
from tests.live import ROOT

pytestmark = pytest.mark.e2e


def test_smoke_passes_against_a_running_server_and_cleans_up(live_server, monkeypatch):
    keys = []

    class Recording(requests.Session):  # to see the key the smoke signed up for
        def post(self, url, **kwargs):
            response = super().post(url, **kwargs)
            if url.endswith("/auth/api-key"):
                keys.append(response.json()["api_key"])
            return response

    monkeypatch.setattr(smoke.requests, "Session", Recording)
    out = io.StringIO()
    timings = smoke.run(live_server.url, out=out)
    assert list(timings) == ["health", "widget script", "credential", "share uploaded", "share served",
                             "spike posted and read back", "share deleted", "smoke key revoked"]
    assert out.getvalue().count("ok  ") == 8
    # The key it signed up for no longer works: nobody holds it once the run ended.
    me = requests.get(live_server.url + "/me", headers={"Authorization": f"Bearer {keys[0]}"}, timeout=30)
    assert me.status_code == 401


def test_smoke_fails_loudly_on_a_wrong_url(live_server):
    env = {key: value for key, value in os.environ.items() if key not in ("TOKEN", "SMOKE_TOKEN")}  # no credential
    result = subprocess.run([sys.executable, "-m", "infra.smoke", live_server.url + "/no-such-prefix"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "FAILED:" in result.stderr and "404" in result.stderr


def test_smoke_takes_a_token_for_stages_without_agent_sign_up(live_server):
    token = live_server.sign_in("smoke@example.com")
    assert "share deleted" in smoke.run(live_server.url, token=token, out=io.StringIO())
