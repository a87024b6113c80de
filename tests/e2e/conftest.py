"""Fixtures for tests against the real local server (see tests/live.py).

``live_server``: one started server for the module (moto inside, a temporary data dir).
``live_server_factory``: ``live_server_factory(dynamodb_endpoint=..., env={...}, data_dir=...)``
starts a server of a test's own, stopped at the end of the test.
"""
from __future__ import annotations

from typing import Callable, Iterator, List

import pytest

from tests.live import LiveServer


@pytest.fixture(scope="module")
def live_server(tmp_path_factory) -> Iterator[LiveServer]:
    server = LiveServer(data_dir=tmp_path_factory.mktemp("live-data"))
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def live_server_factory(tmp_path) -> Iterator[Callable[..., LiveServer]]:
    started: List[LiveServer] = []

    def make(start: bool = True, **kwargs) -> LiveServer:
        kwargs.setdefault("data_dir", tmp_path / f"live-data-{len(started)}")
        server = LiveServer(**kwargs)
        started.append(server)
        return server.start() if start else server

    yield make
    for server in reversed(started):
        server.close()
