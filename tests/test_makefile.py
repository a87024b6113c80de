"""`make dev`'s dependency step installs only what is missing: on a machine that has Java, npm
and libeatmydata it runs no apt (which needs root and a network, and takes seconds)."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tools.dynamodb_local import eatmydata

ROOT = Path(__file__).resolve().parent.parent


def test_dev_deps_runs_no_apt_when_nothing_is_missing(tmp_path):
    if not (shutil.which("java") and shutil.which("npm") and eatmydata() and shutil.which("make")):
        pytest.skip("needs Java, npm and libeatmydata installed")
    fake_bin, calls = tmp_path / "bin", tmp_path / "calls"
    fake_bin.mkdir()
    for tool in ("apt-get", "sudo"):  # record any call instead of installing
        script = fake_bin / tool
        script.write_text(f'#!/bin/sh\necho "{tool} $*" >> "{calls}"\n')
        script.chmod(0o755)
    jar_stamp = tmp_path / "installed"  # DynamoDB Local counts as fetched: no npm either
    jar_stamp.touch()
    result = subprocess.run(["make", "-s", "dev-deps", f"DDB_LOCAL={jar_stamp}"], cwd=ROOT, capture_output=True,
                            text=True, stdin=subprocess.DEVNULL, timeout=120,
                            env={**os.environ, "PATH": f"{fake_bin}:{os.environ['PATH']}"})
    assert result.returncode == 0, result.stderr
    assert "Installing with apt" not in result.stdout
    assert not calls.exists(), calls.read_text()
