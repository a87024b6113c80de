"""The local server's watchdog over DynamoDB Local (tools/devserver.watch_engine), with a stand-in
engine: a dead engine is started again, and one that keeps dying (or cannot start) stops the
server. The real thing, a killed Java, is tests/e2e/test_local_server.py's."""
from __future__ import annotations

import threading
from typing import List, Optional

from tools import devserver


class Process:
    def __init__(self, pid: int):
        self.pid = pid
        self.code: Optional[int] = None

    def poll(self) -> Optional[int]:
        return self.code


class Engine:
    def __init__(self, fail_to_start: bool = False):
        self.started: List[Process] = []
        self.fail_to_start = fail_to_start
        self.process = self._new()

    def _new(self) -> Process:
        process = Process(1000 + len(self.started))
        self.started.append(process)
        return process

    def start(self) -> "Engine":
        if self.fail_to_start:
            raise RuntimeError("DynamoDB Local exited at start with 1")
        self.process = self._new()
        return self

    @property
    def pid(self) -> int:
        return self.process.pid


class Lock:
    def __init__(self):
        self.engines: List[int] = []

    def add_engine(self, pid: int) -> None:
        self.engines.append(pid)


def watch(engine: Engine, lock: Lock, deaths: int) -> dict:
    """Kill the engine ``deaths`` times, each once the watchdog has replaced it."""
    stopping, gave_up = threading.Event(), threading.Event()

    def give_up() -> None:
        gave_up.set()
        stopping.set()

    watcher = threading.Thread(target=devserver.watch_engine, args=(engine, lock, stopping, give_up, 0.01))
    watcher.start()
    for _ in range(deaths):
        engine.process.code = 137
        seen = len(engine.started)
        for _ in range(500):
            if len(engine.started) > seen or gave_up.is_set():
                break
            threading.Event().wait(0.01)
        if gave_up.is_set():
            break
    stopping.set()
    watcher.join(5)
    return {"gave_up": gave_up.is_set(), "alive": not watcher.is_alive()}


def test_a_dead_engine_is_started_again_and_the_lock_names_the_new_one(capsys):
    engine, lock = Engine(), Lock()
    result = watch(engine, lock, deaths=2)
    assert result == {"gave_up": False, "alive": True}
    assert [p.pid for p in engine.started] == [1000, 1001, 1002]
    assert lock.engines == [1001, 1002]
    out = capsys.readouterr().out
    assert "DynamoDB Local (pid 1000) exited with code 137; starting it again" in out
    assert "DynamoDB Local is back (pid 1002)" in out


def test_an_engine_that_keeps_dying_stops_the_server(capsys):
    engine, lock = Engine(), Lock()
    result = watch(engine, lock, deaths=devserver.ENGINE_RESTARTS + 1)
    assert result["gave_up"]
    assert len(engine.started) == devserver.ENGINE_RESTARTS + 1
    assert "restarts in 300 s); stopping. The data stays where it is." in capsys.readouterr().out


def test_an_engine_that_cannot_start_again_stops_the_server(capsys):
    engine, lock = Engine(fail_to_start=True), Lock()
    assert watch(engine, lock, deaths=1)["gave_up"]
    assert lock.engines == []
    assert "could not be started again (DynamoDB Local exited at start with 1); stopping." in capsys.readouterr().out
