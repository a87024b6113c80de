"""What GET /shares costs per page, counted where every table call goes (PynamoDB's connection),
so a listing that reads more per share fails here; and its totals, exact while posts land.

A share's total is 9 ledger items (8 shards and the total counted before shards: store/spike_counters.py),
read for the shares of the page only, 100 keys to a BatchGetItem: at 10,000 shares that is 900
BatchGetItems and 90,000 keys, the listing's cost (docs/performance.md, "GET /shares at
thousands of shares"; `python -m bench.share_listing` measures it)."""
from __future__ import annotations

import collections
import math
import threading
from typing import Dict, Optional

import pytest
from pynamodb.connection.base import Connection

from chalicelib import deps
from chalicelib.services import share_listing, spike_posts
from chalicelib.services.accounts import user_id_for
from chalicelib.services.spike_posts import NewSpike
from chalicelib.store import accounts, spike_counters, tables
from chalicelib.store import shares as share_store
from chalicelib.store.models import LedgerItem, Share, Spike
from tests.conftest import call, sign_in
from tests.factories import make_share, make_user

OWNER = "many@example.com"
KEYS_PER_SHARE = len(spike_counters.share_total_keys("sh_000000000000"))  # 9


class Reads:
    """The calls of each operation, the tables they went to, and the keys BatchGetItems asked for."""

    def __init__(self) -> None:
        self.calls: collections.Counter = collections.Counter()
        self.tables: collections.Counter = collections.Counter()
        self.keys_asked = 0

    def clear(self) -> None:
        self.calls.clear()
        self.tables.clear()
        self.keys_asked = 0


@pytest.fixture
def reads(monkeypatch) -> Reads:
    seen, original = Reads(), Connection._make_api_call

    def counting(self, operation_name, operation_kwargs):
        seen.calls[operation_name] += 1
        if operation_name == "BatchGetItem":
            for table, asked in operation_kwargs["RequestItems"].items():
                seen.tables[(operation_name, table)] += 1
                seen.keys_asked += len(asked["Keys"])
        elif "TableName" in operation_kwargs:
            seen.tables[(operation_name, operation_kwargs["TableName"])] += 1
        return original(self, operation_name, operation_kwargs)

    monkeypatch.setattr(Connection, "_make_api_call", counting)
    return seen


def _stored_shares(owner_id: str, count: int) -> Dict[str, int]:
    """``count`` active shares of ``owner_id`` written straight to the table (the listing reads
    the owner index only), one in three with ``i % 20 + 1`` spikes counted over its shards. Their
    totals by id."""
    totals = {}
    with Share.batch_write() as batch:
        for i in range(count):
            share_id = f"sh_{i:012d}"
            batch.save(share_store.new(share_id, slug=f"site-{i}", owner_id=owner_id, name=f"Site {i}",
                                       created_at=f"2026-11-01T{i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}.000Z",
                                       status=share_store.ACTIVE, owner_tier="pro", file_count=1, total_bytes=10,
                                       files={"index.html": {"size": 10, "type": "text/html"}}))
            totals[share_id] = i % 20 + 1 if i % 3 == 0 else 0
    with LedgerItem.batch_write() as batch:
        for share_id, total in totals.items():
            for shard in range(min(total, spike_counters.COUNTER_SHARDS)):
                batch.save(LedgerItem(spike_counters.share_total_shard_key(share_id, shard),
                                      count=len(range(shard, total, spike_counters.COUNTER_SHARDS))))
    return totals


def _table(logical: str) -> str:
    return tables.table_name(deps.settings(), logical)


def _batches(shares: int) -> int:
    """BatchGetItems that count ``shares`` shares: their keys, 100 to a call."""
    return math.ceil(shares * KEYS_PER_SHARE / 100)


def test_a_page_of_shares_reads_the_index_once_and_its_shares_counters_in_batches(client, reads):
    """A page of 100 shares: one Query of the owner index and the 900 counter keys of its shares
    in 9 BatchGetItems (100 keys each), whatever else the owner holds: a listing that counted
    each share with a read of its own (100 more round trips), or the owner's every share, fails."""
    make_user(OWNER, "pro")
    totals = _stored_shares(user_id_for(OWNER), 260)
    token = sign_in(client, OWNER)
    listed: Dict[str, int] = {}
    cursor: Optional[str] = None
    for page in range(3):
        reads.clear()
        status, body, headers = call(client, "GET", "/shares?limit=100" + (f"&cursor={cursor}" if cursor else ""),
                                     token=token)
        assert status == 200, body
        listed.update({item["id"]: item["spike_count"] for item in body})
        assert reads.tables[("Query", _table("shares"))] == 1, dict(reads.tables)
        assert reads.tables[("BatchGetItem", _table("ledger"))] == _batches(len(body)), dict(reads.tables)
        assert reads.keys_asked == len(body) * KEYS_PER_SHARE  # the page's shares', none other
        assert set(reads.calls) <= {"GetItem", "Query", "BatchGetItem", "UpdateItem"}
        assert reads.calls["GetItem"] <= 2  # the caller
        # One write: the account's share-listings counter (docs/security.md, 309).
        assert reads.calls["UpdateItem"] == 1 == reads.tables[("UpdateItem", _table("ledger"))], dict(reads.tables)
        cursor = headers.get("X-Next-Cursor")
        if page < 2:
            assert len(body) == 100 and cursor
    assert cursor is None and listed == totals  # every share once, its total exact


def test_the_clis_whole_array_reads_250_shares_at_a_time(client, reads):
    """Without ``limit`` (the CLI): one array of every share, read 250 at a time: 2 Queries and
    the counters in 23 + 1 BatchGetItems for 260 shares."""
    make_user(OWNER, "pro")
    totals = _stored_shares(user_id_for(OWNER), 260)
    token = sign_in(client, OWNER)
    reads.clear()
    status, body, headers = call(client, "GET", "/shares", token=token)
    assert status == 200 and "X-Next-Cursor" not in headers
    assert {item["id"]: item["spike_count"] for item in body} == totals
    assert reads.tables[("Query", _table("shares"))] == 2, dict(reads.tables)
    assert reads.tables[("BatchGetItem", _table("ledger"))] == _batches(250) + _batches(10), dict(reads.tables)
    assert reads.keys_asked == 260 * KEYS_PER_SHARE


def _post(slug: str, n: int) -> None:
    spike_posts.record(NewSpike(type="page", project_key=slug, client_id=f"{slug}-{n}"), deps.settings(), "http://x")


def test_totals_stay_exact_while_posts_land_during_the_listing(store_backend):
    """Posters on four shares while the owner lists them in pages of 3: each listing shows
    every share once, each total between the posts finished before it began and those begun
    before it ended; once the posts are done, each total is what the share stores."""
    if store_backend == "moto":
        pytest.skip("moto's in-memory transactions are not isolated across threads; DynamoDB Local is")
    slugs = [f"busy-{n}" for n in range(4)]
    ids = {make_share(OWNER, slug, tier="pro").share_id: slug for slug in slugs}
    owner = accounts.get(user_id_for(OWNER))
    started: collections.Counter = collections.Counter()
    finished: collections.Counter = collections.Counter()
    lock, per_share, errors = threading.Lock(), 12, []

    def poster(offset: int) -> None:
        try:
            for n in range(per_share):
                slug = slugs[(n + offset) % len(slugs)]
                with lock:
                    started[slug] += 1
                _post(slug, offset * 1000 + n)
                with lock:
                    finished[slug] += 1
        except Exception as exc:  # reported below: a thread's failure must fail the test
            errors.append(exc)

    def listing() -> Dict[str, int]:
        counts: Dict[str, int] = {}
        cursor = None
        for _ in range(10):  # bounded: 4 shares in pages of 3
            listed = share_listing.list_owned(owner, 3, cursor, "secret", lambda share, count: (share.share_id, count),
                                              10 ** 7)
            for share_id, count in listed.items:
                assert share_id not in counts  # once
                counts[ids[share_id]] = count
            cursor = listed.next_cursor
            if cursor is None:
                return counts
        raise AssertionError("still listing after 10 pages")

    workers = [threading.Thread(target=poster, args=(offset,)) for offset in range(4)]
    for worker in workers:
        worker.start()
    listings = 0
    while any(worker.is_alive() for worker in workers) and listings < 200:
        with lock:
            before = dict(finished)
        counts = listing()
        with lock:
            after = dict(started)
        assert set(counts) == set(slugs)
        for slug in slugs:
            assert before.get(slug, 0) <= counts[slug] <= after.get(slug, 0), (slug, before, counts, after)
        listings += 1
    for worker in workers:
        worker.join(timeout=120)
    assert not errors, errors
    assert listings > 0
    stored = {slug: len(list(Spike.partition_index.query(share_id))) for share_id, slug in ids.items()}
    assert listing() == stored == dict(finished) == {slug: per_share for slug in slugs}
