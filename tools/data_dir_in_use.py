"""`make clean-data`'s check: exit 1, saying who, while a local server holds the data folder, or
saying why, when the folder is not one a local server made (`DATA_DIR=.` would wipe the checkout,
`.git` and all, and `DATA_DIR=~` the home folder: `rm -rf` asks nothing).

Wiping a folder in use breaks the server rather than resetting it: DynamoDB Local's database
folder is gone, so every write answers 503 from then on, and on the way out the server saves its
share files into a fresh folder, where the next start finds them without the tables that name them. The server's lock is the kernel's
(``tools/devserver.DataDirLock``); this only tries it. Standard library only: make runs it with
the system Python, before any venv exists.
"""
from __future__ import annotations

import argparse
import fcntl
import os
import re
import sys
from pathlib import Path


def holders(data_dir: Path) -> str:
    """Who holds ``data_dir`` (the lock file's first lines), or "" when nobody does."""
    lock = data_dir / "server.lock"
    if not lock.is_file():
        return ""
    with open(lock, "r") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return ", ".join(line.strip() for line in handle.read().splitlines()[:2] if line.strip()) or "pid ?"
        fcntl.flock(handle, fcntl.LOCK_UN)
    return ""


def how_to_stop(who: str) -> str:
    """What to do about the holders ``who`` names: Ctrl-C where the server runs, or, when the server
    is gone and its DynamoDB Local ran on (no setpriv to tie them), kill that Java by its pid."""
    server = re.match(r"pid (\d+)", who)
    engine = re.search(r"DynamoDB Local pid (\d+)", who)
    if server and engine:
        try:
            os.kill(int(server.group(1)), 0)
        except ProcessLookupError:
            return f"its server is gone: stop the DynamoDB Local it left with kill {engine.group(1)}"
        except PermissionError:
            pass
    return "stop it first (Ctrl-C where it runs)"


# What every local server writes into its folder when it starts (tools/devserver: the lock, and
# the admin token unless SPIKES_TOKEN gave one).
SERVER_MARKS = ("server.lock", "admin-token")


def not_a_data_dir(data_dir: Path) -> bool:
    """True for a folder with something in it but no mark of a local server: not ours to wipe."""
    return data_dir.is_dir() and any(data_dir.iterdir()) and not any(
        (data_dir / mark).is_file() for mark in SERVER_MARKS)


def main(argv: list) -> int:
    """``argv`` without the program name. An option it does not know is an error (exit 2), never a
    folder: ``--help`` was taken for one, checked and passed without a word."""
    parser = argparse.ArgumentParser(prog="python -m tools.data_dir_in_use", description=(
        "make clean-data's check: exit 1 while a local server holds the folder, or when no local server made it"))
    parser.add_argument("data_dir", nargs="?", default=".local-data", type=Path,
                        help="the local server's data folder (default: .local-data); after -- it may start with -")
    data_dir = parser.parse_args(argv).data_dir
    if not_a_data_dir(data_dir):
        print(f"{data_dir} is not a local server's data folder (it has no {' or '.join(SERVER_MARKS)}): "
              f"make clean-data wipes only those. Check DATA_DIR, or remove the folder yourself.", file=sys.stderr)
        return 1
    who = holders(data_dir)
    if who:
        print(f"A local server ({who}) is using {data_dir}: {how_to_stop(who)}, then make clean-data again.",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
