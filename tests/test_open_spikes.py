"""An owner's open feedback (``GET /spikes?resolved=false``, the MCP server's get_spikes) is read
from ``open_owner_index``, which holds open spikes only: the read no longer grows with the
resolved feedback stored (docs/performance.md). Resolving takes a spike off the index in the same
write, reopening puts it back; spikes stored before the index get it from a backfill that never
reopens one, and until that backfill is done listings filter the owner's partition as before
(store/open_spikes.py)."""
from __future__ import annotations

import collections
import datetime
import json
from typing import Callable, List

import pytest
from pynamodb.connection.base import Connection

from chalicelib import clock
from chalicelib.store import open_spikes, spike_listings, spike_moves
from chalicelib.store import spikes as spike_store
from chalicelib.store.models import Spike
from chalicelib.store.spike_filters import Filters
from tests.conftest import call, sign_in
from tests.factories import as_before_migrations, make_share

OWNER = "owner@example.com"


@pytest.fixture
def reads(monkeypatch) -> collections.Counter:
    return counting_reads(monkeypatch)


def counting_reads(monkeypatch) -> collections.Counter:
    """Each DynamoDB call, the items the spikes' Queries evaluated (``items read``) and the
    indexes they read (again after a ``monkeypatch.undo``, which takes the counting off too)."""
    counted: collections.Counter = collections.Counter()
    original = Connection._make_api_call

    def counting(self, operation_name, operation_kwargs):
        answer = original(self, operation_name, operation_kwargs)
        counted[operation_name] += 1
        if operation_name == "Query" and operation_kwargs.get("TableName", "").endswith("spikes"):
            counted["items read"] += answer.get("ScannedCount", 0)
            counted[operation_kwargs.get("IndexName")] += 1
        return answer
    monkeypatch.setattr(Connection, "_make_api_call", counting)
    return counted


def _stored(share, count: int, fields_of: Callable[[int], dict]) -> List[str]:
    """``count`` spikes of ``share`` written straight to the table, oldest first; their ids, newest first."""
    ids = []
    with Spike.batch_write() as batch:
        for i in range(count):
            public_id = f"s{i:05d}"
            batch.save(spike_store.new(spike_store.spike_id_for(share.share_id, public_id), share.share_id,
                                       f"2026-01-01T00:00:00.{i:06d}Z", public_id=public_id, type="page",
                                       project_key=share.share_id, share_id=share.share_id,
                                       owner_id=share.owner_id, **fields_of(i)))
            ids.append(public_id)
    return ids[::-1]


def _listed(client, token: str, query: str) -> List[str]:
    status, data, _ = call(client, "GET", f"/spikes?{query}", token=token)
    assert status == 200, data
    return [spike["id"] for spike in data["data"]]


def _as_before_the_upgrade(monkeypatch) -> None:
    """Every spike without ``open_sort_key`` and the backfill forgotten, as a table kept from before."""
    for spike in Spike.scan():
        spike.update(actions=[open_spikes.closed()])
    as_before_migrations(monkeypatch, open_spikes.BACKFILL_MARKER)


def test_the_owners_open_feedback_is_read_from_open_spikes_only(client, reads):
    token = sign_in(client, OWNER)
    share = make_share(OWNER, "busy")
    # An agent resolved nearly everything: 3 open among 1,200.
    ids = _stored(share, 1200, lambda i: {"resolved": i not in (5, 600, 1100), "rating": "no" if i == 600 else "love",
                                          "page": "Home" if i == 1100 else "Other"})
    open_ids = [ids[-1101], ids[-601], ids[-6]]
    _listed(client, token, "resolved=false")  # warm: the session's reads cached
    reads.clear()
    assert _listed(client, token, "resolved=false&limit=1000") == open_ids
    assert reads["items read"] == 3 and reads["open_owner_index"] == 1 and reads["owner_index"] == 0, dict(reads)
    # Combined with the other filters, and paged: the same index, the same order.
    assert _listed(client, token, "resolved=false&rating=no") == [ids[-601]]
    assert _listed(client, token, "resolved=false&page=Home&rating=") == [ids[-1101]]
    status, first, _ = call(client, "GET", "/spikes?resolved=false&limit=2", token=token)
    assert [spike["id"] for spike in first["data"]] == open_ids[:2] and first["next_cursor"]
    status, rest, _ = call(client, "GET", f"/spikes?resolved=false&limit=2&cursor={first['next_cursor']}", token=token)
    assert [spike["id"] for spike in rest["data"]] == open_ids[2:] and rest["next_cursor"] is None
    # resolved=true and the unfiltered listing read the owner's partition as before.
    reads.clear()
    assert len(_listed(client, token, "limit=20")) == 20 and reads["open_owner_index"] == 0


def test_resolving_and_reopening_take_a_spike_off_the_index_and_back(client):
    token = sign_in(client, OWNER)
    share = make_share(OWNER, "site")
    for public_id in ("one", "two"):
        assert call(client, "POST", "/spikes", {"type": "page", "id": public_id, "projectKey": share.share_id})[0] == 201
    assert _listed(client, token, "resolved=false") == ["two", "one"]
    assert call(client, "PATCH", "/spikes/one", {"resolved": True}, token=token)[1]["resolved"] is True
    assert [s.public_id for s in Spike.open_owner_index.query(share.owner_id)] == ["two"]
    assert _listed(client, token, "resolved=false") == ["two"]
    assert _listed(client, token, "resolved=true") == ["one"]
    assert call(client, "PATCH", "/spikes/one", {"resolved": False}, token=token)[1]["resolved"] is False
    assert _listed(client, token, "resolved=false") == ["two", "one"]
    # With a webhook the spike is resolved in one transaction with its event: off the index too.
    call(client, "PATCH", f"/shares/{share.share_id}", {"webhook_url": "https://hooks.example.com/x"}, token=token)
    assert call(client, "PATCH", "/spikes/two", {"resolved": True}, token=token)[1]["resolved"] is True
    assert _listed(client, token, "resolved=false") == ["one"]
    # Posted resolved (the CLI's push of a spike resolved locally): never on the index.
    call(client, "POST", "/spikes", {"type": "page", "id": "done", "projectKey": share.share_id, "resolved": True},
         token=token)
    assert _listed(client, token, "resolved=false") == ["one"]
    assert sorted(_listed(client, token, "resolved=true")) == ["done", "two"]


def test_a_claimed_accounts_open_spikes_follow_it_to_their_new_owner(client):
    share = make_share(OWNER, "site")
    _stored(share, 3, lambda i: {"resolved": i == 1})
    spike_moves.move_to_owner(share.owner_id, "user-new")
    assert [s.public_id for s in Spike.open_owner_index.query("user-new", scan_index_forward=False)] == ["s00002", "s00000"]
    assert list(Spike.open_owner_index.query(share.owner_id)) == []


def test_before_the_backfill_listings_filter_the_partition_and_after_it_read_the_index(client, monkeypatch, reads):
    token = sign_in(client, OWNER)
    share = make_share(OWNER, "kept")
    ids = _stored(share, 60, lambda i: {"resolved": i % 20 != 0})
    open_ids = [ids[-41], ids[-21], ids[-1]]
    _as_before_the_upgrade(monkeypatch)

    reads.clear()
    assert _listed(client, token, "resolved=false") == open_ids  # correct, the old way
    assert reads["owner_index"] == 1 and reads["open_owner_index"] == 0 and reads["items read"] == 60

    # The index is not ACTIVE yet (DynamoDB Local building it): items given, not marked done.
    monkeypatch.setattr(open_spikes, "_index_active", lambda: False)
    assert open_spikes.backfill() == 3 and not open_spikes.backfilled()
    assert _listed(client, token, "resolved=false") == open_ids
    monkeypatch.undo()
    reads = counting_reads(monkeypatch)

    assert open_spikes.backfill() == 0 and open_spikes.backfilled()
    reads.clear()
    assert _listed(client, token, "resolved=false") == open_ids
    assert reads["open_owner_index"] == 1 and reads["items read"] == 3, dict(reads)
    [resolved] = [s for s in Spike.scan() if s.resolved][:1]
    assert resolved.open_sort_key is None


def test_the_backfill_never_reopens_a_spike_resolved_meanwhile_and_is_not_repeated(client, monkeypatch):
    share = make_share(OWNER, "race")
    _stored(share, 4, lambda i: {})
    _as_before_the_upgrade(monkeypatch)
    found = open_spikes._missing

    def resolved_right_after_the_scan(checked_to):
        missing = found(checked_to)
        # The owner resolves one between the backfill's read and its update (the new code: off
        # the index), and reopens another and resolves it again.
        for spike in missing[:2]:
            stored = Spike.get(spike.spike_id)
            spike_store.set_resolved(stored, "2026-02-01T00:00:00.000Z")
        return missing
    monkeypatch.setattr(open_spikes, "_missing", resolved_right_after_the_scan)
    assert open_spikes.backfill() == 2
    monkeypatch.setattr(open_spikes, "_missing", found)
    assert open_spikes.backfill() == 0 and open_spikes.backfilled()
    stored = {s.public_id: s for s in Spike.scan()}
    assert sorted(p for p, s in stored.items() if s.open_sort_key) == sorted(p for p, s in stored.items()
                                                                          if not s.resolved)
    assert all(s.open_sort_key is None for s in stored.values() if s.resolved)
    assert len([s for s in stored.values() if s.resolved]) == 2

    # Done: a later deploy or start reads only the spikes received since the last look.
    def no_scan(*args, **kwargs):
        raise AssertionError("the spikes table scanned again after the backfill was done")
    monkeypatch.setattr(Spike, "scan", no_scan)
    assert open_spikes.backfill() == 0 and open_spikes.backfilled()


def test_while_dynamodb_builds_the_index_again_the_owners_open_feedback_is_read_from_the_partition(client, reads,
                                                                                                  monkeypatch):
    """A stack taken back to a version before open_owner_index loses the index; deployed forward
    again, CloudFormation has DynamoDB build it anew while the new code already runs and the
    backfill's marker still says done. DynamoDB refuses every Query of it meanwhile (missing,
    then "Cannot read from backfilling global secondary index"), and every resolved=false (the
    MCP server's get_spikes, its resolve and delete by id prefix, an export) answered 503 for as
    long as the build took. They read the owner's partition meanwhile, as before the backfill."""
    import boto3
    dynamodb = boto3.client("dynamodb", region_name=Spike.Meta.region)
    monkeypatch.setattr(open_spikes, "_refused_until", 0.0)  # and back after the test
    token = sign_in(client, OWNER)
    share = make_share(OWNER, "rebuilt")
    ids = _stored(share, 30, lambda i: {"resolved": i % 10 != 0})
    open_ids = [ids[-21], ids[-11], ids[-1]]
    assert open_spikes.backfill() == 0 and open_spikes.backfilled()
    dynamodb.update_table(TableName=Spike.Meta.table_name,
                          GlobalSecondaryIndexUpdates=[{"Delete": {"IndexName": "open_owner_index"}}])
    reads.clear()
    assert _listed(client, token, "resolved=false") == open_ids
    assert reads["owner_index"] == 1, dict(reads)
    status, first, _ = call(client, "GET", "/spikes?resolved=false&limit=2", token=token)
    assert [spike["id"] for spike in first["data"]] == open_ids[:2]
    assert _listed(client, token, f"resolved=false&cursor={first['next_cursor']}") == open_ids[2:]
    exported = client.http.get("/spikes/export?resolved=false&format=jsonl",
                               headers={"Authorization": f"Bearer {token}"})
    assert exported.status_code == 200
    assert [json.loads(line)["id"] for line in exported.body.decode().splitlines()] == open_ids
    # A background export's run continues where the last one stopped, whichever index that read.
    scope = spike_store.Scope("owner", share.owner_id)
    [first_row] = spike_listings.newest(scope, Filters(resolved=False), 1)
    for key in (spike_listings.key_of(scope, Filters(resolved=False), first_row),
                {"spike_id": first_row.spike_id, "owner_id": share.owner_id, "open_sort_key": first_row.sort_key}):
        continued = spike_listings.iterate(scope, Filters(resolved=False), position={"after": key})
        assert [row.public_id for row in continued] == open_ids[1:]
    # The MCP server's resolve and delete by id prefix look among the owner's open ones too.
    newest_open = spike_listings.newest(spike_store.Scope("owner", share.owner_id), Filters(resolved=False), 10)
    assert [row.public_id for row in newest_open] == open_ids
    # Asked again a minute later: built by then (its items kept their open_sort_key), it serves.
    dynamodb.update_table(TableName=Spike.Meta.table_name, AttributeDefinitions=[
        {"AttributeName": "owner_id", "AttributeType": "S"}, {"AttributeName": "open_sort_key", "AttributeType": "S"}],
        GlobalSecondaryIndexUpdates=[{"Create": {
            "IndexName": "open_owner_index", "Projection": {"ProjectionType": "ALL"},
            "KeySchema": [{"AttributeName": "owner_id", "KeyType": "HASH"},
                          {"AttributeName": "open_sort_key", "KeyType": "RANGE"}]}}])
    reads.clear()
    assert _listed(client, token, "resolved=false") == open_ids and reads["open_owner_index"] == 0
    later = clock.now() + datetime.timedelta(seconds=open_spikes.REFUSED_FOR_SECONDS)
    clock.use(lambda: later)
    try:
        assert _listed(client, token, "resolved=false") == open_ids
    finally:
        clock.use(None)
    assert reads["open_owner_index"] == 1 and reads["owner_index"] == 1, dict(reads)
