"""`make dev`'s dependency step installs only what is missing: on a machine that has Java, npm
and libeatmydata it runs no apt (which needs root and a network, and takes seconds), and on one
that lacks some of them it asks apt for those alone. `make clean-data` leaves a folder a server
uses alone."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tools.dynamodb_local import EATMYDATA

ROOT = Path(__file__).resolve().parent.parent


def _missing_on_this_machine() -> set:
    missing = set()
    if not shutil.which("java"):
        missing.add("default-jre-headless")
    if not shutil.which("npm"):
        missing.add("npm")
    if not any(path.exists() for path in EATMYDATA):
        missing.add("libeatmydata1")
    return missing


def test_dev_deps_asks_apt_for_exactly_what_is_missing(tmp_path):
    if not shutil.which("make"):
        pytest.skip("make is not installed")
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
    missing = _missing_on_this_machine()
    if not missing:
        assert "Installing with apt" not in result.stdout
        assert not calls.exists(), calls.read_text()
        return
    installs = [line.split() for line in calls.read_text().splitlines() if "install" in line.split()]
    assert len(installs) == 1, calls.read_text()
    asked = {word for word in installs[0] if not word.startswith("-") and word not in ("apt-get", "sudo", "env", "install")
             and "=" not in word}
    assert asked == missing, calls.read_text()


def test_clean_data_refuses_a_folder_a_server_holds(tmp_path):
    # README: `make clean-data` wipes the data folder. Run under a server, every write answered
    # 503 from then on, and the server's Ctrl-C saved share files into a new folder without tables.
    if not shutil.which("make"):
        pytest.skip("make is not installed")
    import fcntl
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "kept").write_text("x")
    lock = open(data_dir / "server.lock", "a+")  # what tools/devserver.DataDirLock holds
    lock.write("pid 12345\n")
    lock.flush()
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def clean():
        return subprocess.run(["make", "-s", "clean-data", f"DATA_DIR={data_dir}"], cwd=ROOT, capture_output=True,
                              text=True, stdin=subprocess.DEVNULL, timeout=60)
    refused = clean()
    assert refused.returncode != 0 and (data_dir / "kept").exists()
    assert "pid 12345" in refused.stderr and "stop it first" in refused.stderr
    lock.close()  # the server stopped
    done = clean()
    assert done.returncode == 0, done.stderr
    assert not data_dir.exists()


def test_clean_data_wipes_only_a_folder_a_local_server_made(tmp_path):
    # `make clean-data DATA_DIR=...` ran `rm -rf` on whatever it was given: DATA_DIR=. wiped the
    # checkout, .git and all. A folder with something in it and no mark of a server is refused.
    if not shutil.which("make"):
        pytest.skip("make is not installed")

    def clean(data_dir):
        return subprocess.run(["make", "-s", "clean-data", f"DATA_DIR={data_dir}"], cwd=ROOT, capture_output=True,
                              text=True, stdin=subprocess.DEVNULL, timeout=60)
    checkout = tmp_path / "checkout"
    (checkout / ".git").mkdir(parents=True)
    (checkout / "README.md").write_text("x")
    refused = clean(checkout)
    assert refused.returncode != 0 and (checkout / "README.md").exists() and (checkout / ".git").is_dir()
    assert "not a local server's data folder" in refused.stderr
    for mark in ("server.lock", "admin-token"):  # what every server start writes
        made = tmp_path / mark / "data"
        (made / "s3").mkdir(parents=True)
        (made / mark).write_text("x")
        assert clean(made).returncode == 0 and not made.exists()
    empty, missing = tmp_path / "empty", tmp_path / "missing"
    empty.mkdir()
    assert clean(empty).returncode == 0 and not empty.exists()
    assert clean(missing).returncode == 0


def test_clean_data_takes_the_folder_name_as_it_is(tmp_path):
    # DATA_DIR went to the shell in double quotes, so a $(...) or a backquote in it ran as a command,
    # in the rm -rf line too; the folder's name is now one shell word, read by nothing.
    if not shutil.which("make"):
        pytest.skip("make is not installed")
    ran = tmp_path / "ran"
    data_dir = tmp_path / ("data `touch " + str(ran) + "` $HOME")
    (data_dir / "s3").mkdir(parents=True)
    (data_dir / "admin-token").write_text("x")
    done = subprocess.run(["make", "-s", "clean-data", f"DATA_DIR={data_dir}"], cwd=ROOT, capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=60)
    assert done.returncode == 0, done.stderr
    assert not data_dir.exists() and not ran.exists()


def test_the_data_folder_check_reads_options_as_options(tmp_path):
    # `python -m tools.data_dir_in_use --help` took "--help" for a folder: checked, passed, silent.
    def check(*arguments):
        return subprocess.run([sys.executable, "-m", "tools.data_dir_in_use", *arguments], cwd=tmp_path,
                              env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=60)
    helped = check("--help")
    assert helped.returncode == 0 and "usage:" in helped.stdout and "data_dir" in helped.stdout
    unknown = check("--bogus")
    assert unknown.returncode == 2 and "unrecognized arguments: --bogus" in unknown.stderr
    odd = tmp_path / "-x"  # a folder whose name starts with -, as make passes it (after --)
    odd.mkdir()
    (odd / "kept").write_text("x")
    refused = check("--", "-x")
    assert refused.returncode == 1 and "not a local server's data folder" in refused.stderr


def test_the_install_is_due_only_when_the_requirements_content_changes(tmp_path):
    # The stamp is named by the requirements' content but also depended on their dates: a `git
    # checkout` that rewrote them unchanged made `make test` and `make dev` reinstall everything.
    if not shutil.which("make"):
        pytest.skip("make is not installed")
    import hashlib
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    content = b"".join((ROOT / name).read_bytes() for name in ("requirements.txt", "requirements-dev.txt"))
    stamp = venv / f".installed-{hashlib.sha1(content).hexdigest()[:10]}"
    environment = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}

    def install_due() -> bool:
        question = subprocess.run(["make", "-q", f"VENV={venv}", str(stamp)], cwd=ROOT, env=environment,
                                  capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
        assert question.returncode in (0, 1), question.stderr
        return question.returncode == 1

    assert install_due(), "a fresh clone (no stamp of this content) installs"
    stamp.touch()
    os.utime(stamp, (0, 0))  # older than requirements*.txt, as after a checkout that rewrote them
    assert not install_due()
    dry_run = subprocess.run(["make", "-n", "test-fast", f"VENV={venv}"], cwd=ROOT, env=environment,
                             capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    assert dry_run.returncode == 0, dry_run.stderr
    assert "pip install" not in dry_run.stdout and "pytest" in dry_run.stdout
