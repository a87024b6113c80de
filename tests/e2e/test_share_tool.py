"""`python -m tools.share`: a folder over the platform's request limit shared with the CLI's
token file through presigned uploads, against the real local server."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def test_a_folder_too_big_for_one_request_is_shared_with_the_cli_token(live_server, tmp_path):
    token = live_server.sign_in("bigfolder@example.com")
    auth = {"Authorization": f"Bearer {token}"}
    folder = tmp_path / "Launch Mockup"
    (folder / "media").mkdir(parents=True)
    (folder / ".spikes").mkdir()
    (folder / "index.html").write_bytes(b"<!doctype html><html><body><h1>Launch</h1></body></html>")
    video = bytes(range(256)) * (7 * 1024 * 1024 // 256)  # over Lambda's 6 MB
    (folder / "media" / "intro.mp4").write_bytes(video)
    (folder / ".spikes" / "feedback.jsonl").write_text("{}\n")

    # What `spikes share` does: one multipart request, refused with a message that says what to do.
    direct = requests.post(live_server.url + "/shares", headers=auth, timeout=60,
                           data={"metadata": json.dumps({"name": "Launch Mockup"})},
                           files=[("files", ("media/intro.mp4", video))])
    assert direct.status_code == 413 and direct.json()["code"] == "SIZE_LIMIT"
    assert f"python -m tools.share DIR --host {live_server.url}" in direct.json()["error"]

    config = tmp_path / "config"
    (config / "spikes").mkdir(parents=True)
    (config / "spikes" / "auth.toml").write_text(f'[auth]\ntoken = "{token}"\n')
    env = {key: value for key, value in os.environ.items() if key != "SPIKES_TOKEN"}
    env.update(XDG_CONFIG_HOME=str(config), HOME=str(tmp_path))
    done = subprocess.run([sys.executable, "-m", "tools.share", str(folder), "--host", live_server.url, "--json"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    shared = json.loads(done.stdout)
    assert shared["status"] == "active" and shared["slug"] == "launch-mockup"
    assert requests.get(shared["url"] + "/", timeout=30).text.count("<h1>Launch</h1>") == 1
    listed = requests.get(live_server.url + "/shares", headers=auth, timeout=30).json()
    assert [(s["slug"], s["file_count"]) for s in listed] == [("launch-mockup", 2)]  # .spikes left out

    # A bad token is reported with the server's message and a non-zero exit.
    (config / "spikes" / "auth.toml").write_text('[auth]\ntoken = "sp_not_a_token"\n')
    failed = subprocess.run([sys.executable, "-m", "tools.share", str(folder), "--host", live_server.url],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert failed.returncode == 1 and "401" in failed.stderr
