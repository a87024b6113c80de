"""A real local server for end-to-end tests: ``python -m tools.devserver`` in a subprocess.

    from tests.live import LiveServer

    with LiveServer(data_dir=tmp_path) as server:          # or server.start() ... server.stop()
        token = server.sign_in("me@example.com")            # login -> console mail -> verify
        requests.get(server.url + "/me", headers={"Authorization": f"Bearer {token}"})
        server.restart()                                    # same data dir (and port)

    LiveServer(dynamodb_endpoint="http://127.0.0.1:N",     # tables in DynamoDB Local
               env={"FREE_SPIKE_LIMIT": "3"})             # extra SPIKES_* settings

The server binds 127.0.0.1 only, runs with fake AWS credentials and an explicit admin token,
and its whole output (stdout and stderr) is kept: ``server.output()``.
"""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Union

import requests
import requests.adapters

ROOT = Path(__file__).resolve().parent.parent
FAKE_AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SECURITY_TOKEN": "testing",
            "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
_LINK = re.compile(r"/auth/verify\?token=([A-Za-z0-9_\-]+)")


class LiveServerError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) != 0


class SourceAddressAdapter(requests.adapters.HTTPAdapter):
    """Connects from a given loopback address (any of 127.0.0.0/8 on Linux), so a test can be
    several callers at once."""

    def __init__(self, address: str, **kwargs) -> None:
        self.address = address
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs) -> None:
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


class LiveServer:
    def __init__(self, data_dir: Union[str, Path, None] = None, *, port: Optional[int] = None,
                 admin_token: Optional[str] = None, dynamodb_endpoint: Optional[str] = None,
                 env: Optional[Mapping[str, str]] = None, start_timeout: float = 60.0,
                 python: Optional[str] = None, persist: bool = True, engine: Optional[str] = None):
        """``env``: extra settings, with or without the ``SPIKES_`` prefix (``FREE_SPIKE_LIMIT="3"``).
        ``persist=False``: keep the data in memory only (``--no-persist``).
        ``engine``: ``"moto"`` for the embedded-emulator fallback, ``"dynamodb-local"`` to require
        DynamoDB Local; by default what ``make dev`` picks."""
        self._own_dir = None
        if data_dir is None:
            self._own_dir = tempfile.TemporaryDirectory(prefix="spikes-live-")
            data_dir = self._own_dir.name
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.admin_token = admin_token or f"admin-{uuid.uuid4().hex}"
        self.dynamodb_endpoint = dynamodb_endpoint
        self.extra_env: Dict[str, str] = {}
        for key, value in (env or {}).items():
            name = key if key.startswith("SPIKES_") else f"SPIKES_{key.upper()}"
            self.extra_env[name] = str(value)
        if dynamodb_endpoint and "SPIKES_TABLE_PREFIX" not in self.extra_env:
            # DynamoDB Local runs with -sharedDb: a prefix per server keeps runs apart.
            self.extra_env["SPIKES_TABLE_PREFIX"] = f"e2e{uuid.uuid4().hex[:10]}-"
        self.start_timeout = start_timeout
        self.persist = persist
        self.engine = engine
        self.python = python or sys.executable
        self.process: Optional[subprocess.Popen] = None
        self._lines: List[str] = []
        self._lines_lock = threading.Lock()
        self._new_line = threading.Condition(self._lines_lock)
        self._reader: Optional[threading.Thread] = None

    # --- lifecycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> Optional[int]:
        return self.process.pid if self.process else None

    def command(self) -> List[str]:
        cmd = [self.python, "-m", "tools.devserver", "--host", "127.0.0.1", "--port", str(self.port),
               "--data-dir", str(self.data_dir)]
        if self.dynamodb_endpoint:
            cmd += ["--dynamodb-endpoint", self.dynamodb_endpoint]
        if not self.persist:
            cmd.append("--no-persist")
        if self.engine:
            cmd += ["--engine", self.engine]
        return cmd

    def environment(self) -> Dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SPIKES_", "AWS_"))}
        env.update(FAKE_AWS)
        env.update({"PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1", "SPIKES_TOKEN": self.admin_token})
        env.update(self.extra_env)
        return env

    def start(self) -> "LiveServer":
        if self.process is not None and self.process.poll() is None:
            raise LiveServerError("already running")
        self.process = subprocess.Popen(
            self.command(), cwd=str(ROOT), env=self.environment(), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
            start_new_session=True)  # its own process group: stop() can reach anything it spawned
        self._reader = threading.Thread(target=self._read, args=(self.process,), name=f"live-{self.port}",
                                        daemon=True)
        self._reader.start()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _read(self, process: subprocess.Popen) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            with self._new_line:
                self._lines.append(line.rstrip("\n"))
                self._new_line.notify_all()
        with self._new_line:
            self._new_line.notify_all()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        mark = len(self._lines)
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise LiveServerError(f"devserver exited with {self.process.returncode} at start:\n{self.output()}")
            if any(line.startswith("Serving on ") for line in self._lines[mark:]) or self._answers():
                return
            time.sleep(0.1)
        raise LiveServerError(f"devserver not up within {self.start_timeout:.0f} s:\n{self.output()}")

    def _answers(self) -> bool:
        try:
            requests.get(self.url + "/", timeout=1)
            return True
        except requests.RequestException:
            return False

    def stop(self, timeout: float = 15.0) -> Optional[int]:
        """SIGTERM by PID, wait, then SIGKILL (the whole process group). Returns the exit code."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            try:
                os.kill(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._kill_group(process.pid)
                process.wait(timeout=10)
        self._kill_group(process.pid)  # anything left in its group (it spawns nothing today)
        if self._reader is not None:
            self._reader.join(timeout=5)
        if process.stdout:
            process.stdout.close()
        deadline = time.monotonic() + 10
        while not port_is_free(self.port) and time.monotonic() < deadline:
            time.sleep(0.1)
        return process.returncode

    @staticmethod
    def _kill_group(pgid: int) -> None:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def restart(self) -> "LiveServer":
        """Stop and start again on the same data dir, port and admin token."""
        self.stop()
        return self.start()

    def close(self) -> None:
        self.stop()
        if self._own_dir is not None:
            self._own_dir.cleanup()
            self._own_dir = None

    def __enter__(self) -> "LiveServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # --- output ------------------------------------------------------------------------------

    def output(self) -> str:
        with self._lines_lock:
            return "\n".join(self._lines)

    def lines(self) -> List[str]:
        with self._lines_lock:
            return list(self._lines)

    def dynamodb_endpoint_url(self) -> str:
        """Where the server keeps its tables: DynamoDB Local, an external DynamoDB, or moto."""
        match = self.wait_for_output(r"(?:DynamoDB Local at|DynamoDB at|AWS emulator at) (http://[0-9.:]+)")
        line = match.string
        for label in ("DynamoDB Local at ", "DynamoDB at "):
            if label in line:
                return line.split(label, 1)[1].split()[0].rstrip(",")
        return match.group(1)

    def table_name(self, logical: str) -> str:
        return f"{self.extra_env.get('SPIKES_TABLE_PREFIX', 'spikes-local-')}{logical}"

    def wait_for_output(self, pattern: str, timeout: float = 10.0, start: int = 0) -> re.Match:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._new_line:
            while True:
                for line in self._lines[start:]:
                    match = regex.search(line)
                    if match:
                        return match
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise LiveServerError(f"no line matching {pattern!r} within {timeout} s:\n" + "\n".join(self._lines))
                self._new_line.wait(remaining)

    def magic_link_token(self, email: str, timeout: float = 10.0, start: int = 0) -> str:
        """The token of the last magic link printed for ``email`` (waits for one to appear)."""
        wanted = f"MAIL to {email}".lower()
        deadline = time.monotonic() + timeout
        with self._new_line:
            while True:
                token = None
                lines = self._lines[start:]
                for i, line in enumerate(lines):
                    if line.strip().lower() == wanted:
                        for following in lines[i + 1:]:
                            if following.startswith("MAIL to "):
                                break
                            match = _LINK.search(following)
                            if match:
                                token = match.group(1)
                                break
                if token:
                    return token
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise LiveServerError(f"no magic link for {email} within {timeout} s:\n" + "\n".join(self._lines))
                self._new_line.wait(remaining)

    # --- conveniences ------------------------------------------------------------------------

    def sign_in(self, email: str, session: Optional[requests.Session] = None) -> str:
        """Log in as ``email`` through the real endpoints; returns the bearer token."""
        http = session or requests
        mark = len(self.lines())
        response = http.post(self.url + "/auth/login", json={"email": email}, timeout=30)
        if response.status_code not in (200, 202):
            raise LiveServerError(f"POST /auth/login -> {response.status_code}: {response.text}")
        login_token = self.magic_link_token(email.lower(), start=mark)
        response = http.post(self.url + "/auth/verify", json={"login_token": login_token}, timeout=30)
        if response.status_code != 200:
            raise LiveServerError(f"POST /auth/verify -> {response.status_code}: {response.text}")
        return response.json()["token"]
