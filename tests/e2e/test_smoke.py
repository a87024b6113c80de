"""`make smoke URL=...` against the real local server: what a user runs against a deployed stage."""
from __future__ import annotations

import io
import subprocess
import sys

import pytest

from infra import smoke
from tests.live import ROOT

pytestmark = pytest.mark.e2e


def test_smoke_passes_against_a_running_server_and_cleans_up(live_server):
    out = io.StringIO()
    timings = smoke.run(live_server.url, out=out)
    assert list(timings) == ["health", "widget script", "credential", "share uploaded", "share served",
                             "spike posted and read back", "share deleted"]
    assert out.getvalue().count("ok  ") == 7


def test_smoke_fails_loudly_on_a_wrong_url(live_server):
    result = subprocess.run([sys.executable, "-m", "infra.smoke", live_server.url + "/no-such-prefix"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "FAILED:" in result.stderr and "404" in result.stderr


def test_smoke_takes_a_token_for_stages_without_agent_sign_up(live_server):
    token = live_server.sign_in("smoke@example.com")
    assert "share deleted" in smoke.run(live_server.url, token=token, out=io.StringIO())
