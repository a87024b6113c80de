"""The feedback path under real concurrency: threads against the real local server, whose
tables live in DynamoDB Local (Amazon's engine)."""
from __future__ import annotations

import threading
import time
import uuid

import pytest
import requests

from chalicelib import deps
from chalicelib.store.models import Spike
from tests.factories import make_share

pytestmark = pytest.mark.e2e


@pytest.fixture
def ddb_server(live_server_factory, dynamodb_local_endpoint, monkeypatch):
    """A live server on DynamoDB Local, and this test process bound to the same tables."""
    if dynamodb_local_endpoint is None:
        pytest.skip("DynamoDB Local disabled (--no-dynamodb-local)")
    prefix = f"conc{uuid.uuid4().hex[:8]}-"
    server = live_server_factory(dynamodb_endpoint=dynamodb_local_endpoint,
                                 env={"TABLE_PREFIX": prefix, "FREE_SPIKE_LIMIT": "100",
                                      "RATE_SPIKES_PER_MINUTE": "100000"})
    monkeypatch.setenv("SPIKES_DYNAMODB_ENDPOINT_URL", dynamodb_local_endpoint)
    monkeypatch.setenv("SPIKES_TABLE_PREFIX", prefix)
    deps.reset()
    deps.settings()  # binds the models to DynamoDB Local and the server's table prefix
    yield server
    deps.reset()


def _post_all(url: str, bodies, workers: int):
    """Fire every body at once from ``workers`` threads (released together by a barrier)."""
    results, lock = [], threading.Lock()
    barrier = threading.Barrier(workers)
    chunks = [bodies[i::workers] for i in range(workers)]

    def run(chunk):
        session = requests.Session()
        barrier.wait(timeout=60)
        for body in chunk:
            response = session.post(f"{url}/spikes", json=body, timeout=60)
            with lock:
                results.append((response.status_code, response.json()))
    threads = [threading.Thread(target=run, args=(chunk,)) for chunk in chunks]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert time.monotonic() - started < 120
    return results


def test_200_simultaneous_posts_at_a_share_with_10_left_store_exactly_10(ddb_server):
    share = make_share("owner@example.com", "hot-share")
    # 90 of 100 already used this period.
    warmup = [{"id": f"warm-{i}", "type": "page", "projectKey": share.share_id} for i in range(90)]
    assert all(status == 201 for status, _ in _post_all(ddb_server.url, warmup, 10))

    burst = [{"id": f"burst-{i}", "type": "page", "projectKey": share.share_id, "comments": str(i)}
             for i in range(200)]
    results = _post_all(ddb_server.url, burst, 200)
    statuses = [status for status, _ in results]
    assert statuses.count(201) == 10, sorted(set(statuses))
    assert statuses.count(429) == 190
    assert {body["code"] for status, body in results if status == 429} == {"SPIKE_LIMIT"}
    stored = list(Spike.partition_index.query(share.share_id))
    assert len(stored) == 100
    accepted = {body["id"] for status, body in results if status == 201}
    assert accepted <= {spike.public_id or spike.spike_id for spike in stored}  # ids are kept (public_id)


def test_concurrent_retries_of_one_spike_store_it_once(ddb_server):
    body = {"id": "the-same-client-id", "type": "page", "projectKey": "retry-storm"}
    results = _post_all(ddb_server.url, [body] * 50, 50)
    assert {status for status, _ in results} == {201}
    assert len({answer["id"] for _, answer in results}) == 1
    assert len(list(Spike.partition_index.query("key#retry-storm"))) == 1
