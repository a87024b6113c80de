"""An owner's reads of feedback (``GET /spikes``: the CLI's pull and push, the MCP server's
get_spikes; exports) leave out exactly that owner's shares whose deletion started and is not
finished, however many other accounts have pending: found by the owner's tombstones in the
shares table's ``owner_status_index`` (docs/data-model.md, docs/security.md 213)."""
from __future__ import annotations

import collections
import json
from typing import List

import pytest
from botocore.exceptions import ClientError
from pynamodb.connection import Connection
from pynamodb.exceptions import QueryError

from chalicelib import clock, deps
from chalicelib.services import share_cleanup, share_deletion
from chalicelib.store import share_work
from chalicelib.store import shares as share_store
from chalicelib.store.models import Delivery, Share
from chalicelib.store.shares import DELETING, share_pk
from tests.conftest import call, sign_in
from tests.factories import legacy_work, queued
from tests.test_clients import ureq
from tests.test_shares import share_site


def _post(client, share: dict, *spike_ids: str) -> None:
    for spike_id in spike_ids:
        assert call(client, "POST", "/spikes", {"id": spike_id, "type": "page", "projectKey": share["share_id"],
                                                "page": "/", "rating": "like", "comments": spike_id})[0] in (200, 201)


def _deleted_with_spikes_left(client, token: str, monkeypatch, name: str, *spike_ids: str) -> dict:
    """A share whose deletion outlasted its request: answered, its spikes left for the job."""
    share = share_site(client, token, name)
    _post(client, share, *spike_ids)
    monkeypatch.setattr(share_deletion, "REQUEST_DELETION_SECONDS", 0)
    assert call(client, "DELETE", f"/shares/{share['share_id']}", token=token)[0] == 200
    return share


def _others_pending(count: int, after: float) -> None:
    """``count`` deletions of other accounts' shares pending, each started after ``after``."""
    with Share.batch_write() as batch:
        for number in range(count):
            share_id = f"sh_other{number:07d}"
            batch.save(Share(share_pk(share_id), share_id=share_id, owner_id=f"u_other{number % 7}",
                             status=DELETING, created_at="2026-12-01T00:00:00Z"))
    units = [{"PutRequest": {"Item": {  # as DELETIONS.record writes them, 25 a call
        "delivery_id": {"S": f"{share_work.DELETIONS.prefix}sh_other{number:07d}"},
        "due": {"S": share_work.DELETIONS.partition}, "next_attempt_at": {"N": str(int(after) + 10 + number)}}}}
        for number in range(count)]
    for start in range(0, count, 25):
        deps.dynamodb_client().batch_write_item(RequestItems={Delivery.Meta.table_name: units[start:start + 25]})


def _everything_the_owner_reads(client, token: str) -> List[List[str]]:
    """The ids of GET /spikes, of the CLI's push (a bare array) and of the export; GET /spikes?resolved=false
    (the MCP server's get_spikes, read from open_owner_index) lists the same open spikes as GET /spikes."""
    listed = [spike["id"] for spike in call(client, "GET", "/spikes", token=token)[1]["data"]]
    open_listed = [spike["id"] for spike in call(client, "GET", "/spikes?resolved=false", token=token)[1]["data"]]
    assert open_listed == listed
    status, raw = ureq(client, "GET", f"/spikes?token={token}")
    assert status == 200
    exported = client.http.get("/spikes/export?format=jsonl", headers={"Authorization": f"Bearer {token}"})
    return [listed, [spike["id"] for spike in json.loads(raw)],
            [json.loads(line)["id"] for line in exported.body.decode().splitlines()]]


def test_other_accounts_pending_deletions_do_not_bring_an_owners_deleted_share_back(client, user_token, monkeypatch):
    """The listing left out the newest 300 pending deletions of the whole installation: once
    more were pending (one account deleting many shares, or the job behind), an owner's
    deleted share was not among them and its feedback came back in their pull."""
    kept = share_site(client, user_token, "Kept")
    _post(client, kept, "k0")
    _deleted_with_spikes_left(client, user_token, monkeypatch, "Gone", "g0", "g1")
    _others_pending(301, clock.epoch())
    assert len(queued(share_work.DELETIONS)) == 302
    assert _everything_the_owner_reads(client, user_token) == [["k0"]] * 3


def test_an_owners_parked_deletion_stays_left_out_until_it_is_finished(client, user_token, monkeypatch):
    """A deletion whose step kept failing is parked, out of the queue's partition: the listing,
    which read only that partition, showed its feedback again (only lookups by id hid it)."""
    kept = share_site(client, user_token, "Kept")
    _post(client, kept, "k0")
    gone = _deleted_with_spikes_left(client, user_token, monkeypatch, "Gone", "g0")
    now = int(clock.epoch())
    [unit] = share_work.due(share_work.DELETIONS, 10, now + 60)
    assert share_work.DELETIONS.fail(unit, "S3 refused", now, now) == 1
    assert share_work.DELETIONS.park(gone["share_id"], 1, now)
    assert queued(share_work.DELETIONS) == []
    assert _everything_the_owner_reads(client, user_token) == [["k0"]] * 3
    assert call(client, "GET", "/spikes/g0", token=user_token)[0] == 404
    assert share_work.DELETIONS.requeue(gone["share_id"], "requeued", now)
    assert share_cleanup.finish_pending_deletions(deps.share_files(), now=now + 60)["finished"] == 1
    assert _everything_the_owner_reads(client, user_token) == [["k0"]] * 3


def test_a_deletion_an_earlier_version_listed_in_the_ledger_is_left_out_before_the_job_moves_it(
        client, user_token, monkeypatch):
    """A deletion the version before the queue started sits in the ledger's set until the job
    moves it (100 a run): its tombstone is what the listing reads, so it is left out at once."""
    kept = share_site(client, user_token, "Kept")
    _post(client, kept, "k0")
    gone = _deleted_with_spikes_left(client, user_token, monkeypatch, "Gone", "g0")
    assert share_work.DELETIONS.consume(gone["share_id"])  # as that version wrote it: in the set
    legacy_work(share_work.DELETIONS.legacy_item, gone["share_id"])
    assert _everything_the_owner_reads(client, user_token) == [["k0"]] * 3


def _reads(monkeypatch) -> collections.Counter:
    """Each DynamoDB call of the code, and the items its Queries read (``items read``)."""
    counted: collections.Counter = collections.Counter()
    original = Connection._make_api_call

    def counting(self, operation_name, operation_kwargs):
        answer = original(self, operation_name, operation_kwargs)
        counted[operation_name] += 1
        if operation_name == "Query":
            counted["items read"] += answer.get("ScannedCount", 0)
        return answer
    monkeypatch.setattr(Connection, "_make_api_call", counting)
    return counted


def test_other_accounts_pending_deletions_cost_an_owners_listing_nothing(client, monkeypatch):
    """Every owner listing read the ids of up to 300 pending deletions, other people's, to
    leave them out. It reads only the owner's: none pending, one Query that reads no item."""
    token = sign_in(client, "reader@example.com")
    _post(client, share_site(client, token, "Mine"), "m0", "m1")
    call(client, "GET", "/spikes", token=token)  # warm: the session's reads cached alike below
    reads = _reads(monkeypatch)
    assert call(client, "GET", "/spikes", token=token)[1]["data"]
    alone = dict(reads)
    _others_pending(300, clock.epoch())
    reads.clear()
    assert [spike["id"] for spike in call(client, "GET", "/spikes", token=token)[1]["data"]] == ["m1", "m0"]
    assert dict(reads) == alone
    # The owner's deletions in progress (none read), then their spikes: the two listed.
    assert (alone["Query"], alone["items read"]) == (2, 2), alone


def test_while_an_upgrade_builds_the_index_the_listing_reads_the_pending_deletions(client, user_token, monkeypatch):
    """The new code runs while DynamoDB still builds ``owner_status_index`` from the shares
    stored: until it answers, the newest pending deletions of every owner are left out, as
    before."""
    kept = share_site(client, user_token, "Kept")
    _post(client, kept, "k0")
    _deleted_with_spikes_left(client, user_token, monkeypatch, "Gone", "g0")

    def building(*args, **kwargs):
        raise QueryError("Failed to query items", cause=ClientError(
            {"Error": {"Code": "ValidationException",
                       "Message": "Cannot read from backfilling global secondary index: owner_status_index"}},
            "Query"))
    monkeypatch.setattr(Share.owner_status_index, "query", building)
    assert _everything_the_owner_reads(client, user_token) == [["k0"]] * 3

    def failing(*args, **kwargs):
        raise QueryError("Failed to query items", cause=ClientError(
            {"Error": {"Code": "ValidationException", "Message": "One or more parameter values were invalid"}},
            "Query"))
    monkeypatch.setattr(Share.owner_status_index, "query", failing)
    with pytest.raises(QueryError):
        share_store.deleting_of("u1", 10)


def test_while_the_indexs_grant_spreads_the_listing_reads_the_pending_deletions_and_says_so(
        client, user_token, monkeypatch, capsys):
    """CloudFormation updates the role's grant on a new index with the code: until IAM has spread
    it, DynamoDB answers AccessDeniedException (which need not name the index). The listings
    were answered 503; they leave out the newest pending deletions of every owner, as while the
    index builds, and each denial is an error line the operator alarm counts, so a grant missing
    for good is not hidden behind the fallback."""
    kept = share_site(client, user_token, "Kept")
    _post(client, kept, "k0")
    _deleted_with_spikes_left(client, user_token, monkeypatch, "Gone", "g0")

    def denied(*args, **kwargs):
        raise QueryError("Failed to query items", cause=ClientError(
            {"Error": {"Code": "AccessDeniedException", "Message": "User: arn:aws:sts::123456789012:assumed-role/"
                       "spikes-prod-api/spikes-prod is not authorized to perform: dynamodb:Query"}}, "Query"))
    monkeypatch.setattr(Share.owner_status_index, "query", denied)
    capsys.readouterr()
    assert _everything_the_owner_reads(client, user_token) == [["k0"]] * 3
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    denials = [line for line in lines if line.get("event") == "store.index_access_denied"]
    assert denials and all(line["level"] == "error" and line["index"] == "owner_status_index" for line in denials)


def test_a_spike_the_project_index_shows_late_is_deleted_with_its_share(client, user_token, monkeypatch):
    """DynamoDB puts an item on a secondary index a moment after its write: a spike posted just
    before the owner's DELETE could be missing from the project index the request deleted the
    share's spikes by. The request then removed the share's record (its tombstone, which the
    owner's listings leave out by) and forgot its deletion: the spike stayed for good, its
    reviewer's comments and address in the owner's pull and export of a share they deleted. A
    request removes the record only once it deleted as many spikes as the share's counted total
    (read consistently); else the job finishes the deletion once the index has caught up."""
    from chalicelib.store import spikes as spike_store
    from chalicelib.store.models import Spike
    kept = share_site(client, user_token, "Kept")
    _post(client, kept, "k0")
    gone = share_site(client, user_token, "Gone")
    _post(client, gone, "g0", "late")
    late = spike_store.spike_id_for(gone["share_id"], "late")
    query = Spike.partition_index.query

    def index_behind(partition, *args, **kwargs):
        return (spike for spike in query(partition, *args, **kwargs) if spike.spike_id != late)
    monkeypatch.setattr(Spike.partition_index, "query", index_behind)
    assert call(client, "DELETE", f"/shares/{gone['share_id']}?exported_spikes=false", token=user_token)[0] == 200
    assert share_cleanup.finish_pending_deletions(deps.share_files(), now=clock.epoch())["finished"] == 0  # as young
    monkeypatch.undo()
    assert _everything_the_owner_reads(client, user_token) == [["k0"]] * 3
    assert share_store.get_by_id(gone["share_id"], consistent=True).status == DELETING  # left to the job
    assert share_cleanup.finish_pending_deletions(deps.share_files(), now=clock.epoch() + 120)["finished"] == 1
    assert spike_store.get(late, consistent=True) is None and share_store.get_by_id(gone["share_id"]) is None
    assert _everything_the_owner_reads(client, user_token) == [["k0"]] * 3


def test_a_deletion_reads_its_shares_project_index_once(client, user_token, monkeypatch):
    """The request that starts a deletion checked its spikes against the share's counted total
    (230) by deleting them as the index listed them, then read the index again to delete them:
    two reads of a partition for one deletion. One read now deletes and is checked, and the
    share's counters go only after it (still read, consistently, before any spike goes)."""
    from chalicelib.store import spike_counters
    from chalicelib.store import spikes as spike_store
    from chalicelib.store.models import LedgerItem, Spike
    gone = share_site(client, user_token, "Gone")
    _post(client, gone, "g0", "g1", "g2")
    index_reads: collections.Counter = collections.Counter()
    original = Connection._make_api_call

    def counting(self, operation_name, operation_kwargs):
        if operation_name == "Query":
            index_reads[operation_kwargs.get("IndexName")] += 1
        return original(self, operation_name, operation_kwargs)
    monkeypatch.setattr(Connection, "_make_api_call", counting)
    assert call(client, "DELETE", f"/shares/{gone['share_id']}?exported_spikes=false", token=user_token)[0] == 200
    assert index_reads[Spike.partition_index.Meta.index_name] == 1, dict(index_reads)
    monkeypatch.undo()
    assert share_store.get_by_id(gone["share_id"], consistent=True) is None  # the deletion ended in the request
    assert list(Spike.partition_index.query(gone["share_id"])) == [] and spike_store.get(
        spike_store.spike_id_for(gone["share_id"], "g0"), consistent=True) is None
    assert spike_counters.share_spike_counts([gone["share_id"]], consistent=True)[gone["share_id"]] == 0
    assert [item.pk for item in LedgerItem.scan() if gone["share_id"] in item.pk] == []
