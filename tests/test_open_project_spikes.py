"""A project's open feedback (``GET /spikes?project=<id>&resolved=false``, an export with
``resolved=false``) is read from ``open_project_index``, which holds open spikes only, as an
owner's is from ``open_owner_index``: the read no longer grows with the resolved feedback the
project stored. It answers exactly what filtering the project's partition answers, and is used
only once the open spikes' backfill is done and the index is ACTIVE (``PROJECT_MARKER``); until
then the partition is filtered as before (store/open_spikes.py)."""
from __future__ import annotations

import json
from typing import List, Optional, Tuple

import pytest

from chalicelib.store import open_spikes
from chalicelib.store import spikes as spike_store
from chalicelib.store.models import LedgerItem, Spike
from chalicelib.store.spike_filters import Filters
from tests.conftest import call, sign_in
from tests.factories import as_before_migrations, make_share
from tests.test_open_spikes import OWNER, _as_before_the_upgrade, _stored, counting_reads

QUERIES = ("resolved=false&limit=1000", "resolved=false&reviewer=rev-a", "resolved=false&rating=no",
           "resolved=false&page=Home", "resolved=false&reviewer=rev-a&page=Home", "resolved=false&reviewer=nobody")


@pytest.fixture
def reads(monkeypatch):
    return counting_reads(monkeypatch)


def _fields(i: int) -> dict:
    return {"resolved": i % 100 not in (5, 60), "rating": "no" if i % 300 == 60 else "love",
            "page": "Home" if i % 200 == 5 else "Other", "reviewer_id": "rev-a" if i % 3 == 0 else "anon"}


def _page(client, token: str, project: str, query: str, cursor: Optional[str] = None) -> Tuple[List[str], Optional[str]]:
    path = f"/spikes?project={project}&{query}" + (f"&cursor={cursor}" if cursor else "")
    status, data, _ = call(client, "GET", path, token=token)
    assert status == 200, data
    return [spike["id"] for spike in data["data"]], data["next_cursor"]


def _project_index_not_ready(monkeypatch) -> None:
    as_before_migrations(monkeypatch, open_spikes.PROJECT_MARKER)


def _project_index_ready(monkeypatch) -> None:
    LedgerItem(open_spikes.PROJECT_MARKER, state="done").save()
    as_before_migrations(monkeypatch)  # none forgotten, but what this test's functions remember is after it


def test_a_projects_open_feedback_is_read_from_open_spikes_only_and_answers_as_the_filter_did(client, monkeypatch):
    token = sign_in(client, OWNER)
    share = make_share(OWNER, "busy")
    _stored(share, 600, _fields)  # 12 open among 600, some by rev-a, on Home, rated no
    assert open_spikes.serves("project", Filters(resolved=False))
    reads = counting_reads(monkeypatch)
    indexed = {query: _page(client, token, share.share_id, query)[0] for query in QUERIES}
    assert reads["open_project_index"] == len(QUERIES) and reads["project_index"] == 0, dict(reads)
    assert reads["items read"] == 12 * len(QUERIES), "open spikes only, whatever the other filters"
    assert len(indexed[QUERIES[0]]) == 12 and indexed[QUERIES[-1]] == []

    monkeypatch.undo()
    _project_index_not_ready(monkeypatch)
    reads = counting_reads(monkeypatch)
    filtered = {query: _page(client, token, share.share_id, query)[0] for query in QUERIES}
    assert reads["project_index"] >= len(QUERIES) and reads["open_project_index"] == 0
    assert reads["items read"] == 600 * len(QUERIES)
    assert indexed == filtered
    # resolved=true and the unfiltered listing read the partition either way.
    _project_index_ready(monkeypatch)
    reads.clear()
    assert len(_page(client, token, share.share_id, "limit=20")[0]) == 20
    assert len(_page(client, token, share.share_id, "resolved=true&limit=20")[0]) == 20
    assert reads["open_project_index"] == 0 and reads["project_index"] == 2


def test_an_export_of_open_feedback_reads_the_index_of_open_spikes(client, monkeypatch):
    token = sign_in(client, OWNER)
    share = make_share(OWNER, "exported")
    _stored(share, 300, _fields)
    listed = _page(client, token, share.share_id, "resolved=false&limit=1000")[0]
    reads = counting_reads(monkeypatch)
    response = client.http.get(f"/spikes/export?project={share.share_id}&resolved=false&format=jsonl",
                               headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    exported = [json.loads(line)["id"] for line in response.body.decode().splitlines() if line.strip()]
    assert exported == listed and len(exported) == 6
    assert reads["open_project_index"] >= 1 and reads["project_index"] == 0 and reads["items read"] == 6


@pytest.mark.parametrize("flip", ["to the index", "from the index"])
def test_a_cursor_continues_across_the_marker_and_races_with_resolve_reopen_and_delete(client, monkeypatch, flip):
    """A cursor holds ``sort_key`` and is read by either path; a spike resolved, reopened or
    deleted between two pages is listed by the index exactly as by the filter."""
    token = sign_in(client, OWNER)
    share = make_share(OWNER, "paged")
    _stored(share, 400, lambda i: {"resolved": i % 10 != 0})  # 40 open
    open_ids = _page(client, token, share.share_id, "resolved=false&limit=1000")[0]
    assert len(open_ids) == 40
    first_ready, second_ready = (False, True) if flip == "to the index" else (True, False)
    (_project_index_ready if first_ready else _project_index_not_ready)(monkeypatch)
    first, cursor = _page(client, token, share.share_id, "resolved=false&limit=7")
    assert first == open_ids[:7] and cursor
    # Between the pages: the page's last spike resolved, one further down resolved, one
    # resolved further down reopened, one deleted.
    by_id = {s.public_id: s for s in Spike.scan()}
    spike_store.set_resolved(by_id[open_ids[6]], "2026-02-01T00:00:00.000Z")
    spike_store.set_resolved(by_id[open_ids[10]], "2026-02-01T00:00:00.000Z")
    reopened = sorted((s for s in by_id.values() if s.resolved), key=lambda s: s.sort_key)[-100]
    spike_store.set_resolved(reopened, None)
    by_id[open_ids[12]].delete()
    (_project_index_ready if second_ready else _project_index_not_ready)(monkeypatch)
    reads = counting_reads(monkeypatch)
    rest = []
    while cursor:
        page, cursor = _page(client, token, share.share_id, "resolved=false&limit=7", cursor)
        rest += page
    assert reads["open_project_index" if second_ready else "project_index"] >= 1
    assert reads["project_index" if second_ready else "open_project_index"] == 0
    expected = [s.public_id for s in sorted(Spike.scan(), key=lambda s: s.sort_key, reverse=True)
                if not s.resolved and s.sort_key < by_id[open_ids[6]].sort_key]
    assert rest == expected and reopened.public_id in rest and open_ids[10] not in rest and open_ids[12] not in rest


def test_the_project_index_waits_for_the_backfill_and_for_being_active(client, monkeypatch):
    token = sign_in(client, OWNER)
    share = make_share(OWNER, "kept")
    _stored(share, 60, lambda i: {"resolved": i % 20 != 0})
    open_ids = _page(client, token, share.share_id, "resolved=false")[0]
    _as_before_the_upgrade(monkeypatch)
    _project_index_not_ready(monkeypatch)
    filters = Filters(resolved=False)

    # The index ACTIVE, its marker set by hand, the backfill not done: still the filter (old
    # spikes have no open_sort_key yet, so the index would miss them).
    _project_index_ready(monkeypatch)
    assert not open_spikes.serves("project", filters)
    reads = counting_reads(monkeypatch)
    assert _page(client, token, share.share_id, "resolved=false")[0] == open_ids
    assert reads["project_index"] == 1 and reads["open_project_index"] == 0
    monkeypatch.undo()
    _as_before_the_upgrade(monkeypatch)
    _project_index_not_ready(monkeypatch)

    # The backfill done while the project index still builds: the owner's index serves, the project's not yet.
    monkeypatch.setattr(open_spikes, "_project_index_active", lambda: False)
    assert open_spikes.backfill() == 3 and open_spikes.backfilled()
    assert open_spikes.serves("owner", filters) and not open_spikes.serves("project", filters)
    assert _page(client, token, share.share_id, "resolved=false")[0] == open_ids
    # The next deploy or start finds it ACTIVE: marked, and read from then on.
    monkeypatch.setattr(open_spikes, "_project_index_active", lambda: True)
    assert open_spikes.backfill() == 0 and open_spikes.project_ready()
    assert open_spikes.serves("project", filters)
    reads = counting_reads(monkeypatch)
    assert _page(client, token, share.share_id, "resolved=false")[0] == open_ids
    assert reads["open_project_index"] == 1 and reads["items read"] == 3, dict(reads)


@pytest.mark.parametrize("ready_first", [False, True], ids=["to the index", "from the index"])
def test_a_background_export_continues_across_the_marker(client, monkeypatch, ready_first):
    """A background export's position (``spikes.key_of``) written on one path is read on the
    other by its next run: the marker set, or not yet, between two runs of the exports job."""
    import moto.s3.models
    from chalicelib.services import background_exports
    from chalicelib.store import files
    from tests.test_background_exports import (TINY_PART_BYTES, _downloaded, _job_run, _one_shot, _read,
                                               _runs_until_done, _start)
    monkeypatch.setattr(moto.s3.models, "S3_UPLOAD_PART_MIN_SIZE", 1)
    monkeypatch.setattr(files, "EXPORT_PART_BYTES", TINY_PART_BYTES)
    monkeypatch.setattr(background_exports, "REQUEST_SLICE_SECONDS", 0)
    token = sign_in(client, OWNER)
    share = make_share(OWNER, "background")
    _stored(share, 120, lambda i: {"resolved": i % 2 == 1})  # 60 open
    query = f"?project={share.share_id}&format=jsonl&resolved=false"
    (_project_index_ready if ready_first else _project_index_not_ready)(monkeypatch)
    shown = _start(client, query, token)[1]
    _job_run(budget_checks=25)
    shown = _read(client, shown["id"], token)[1]
    assert shown["status"] == "running" and 0 < shown["spike_count"] < 60
    (_project_index_not_ready if ready_first else _project_index_ready)(monkeypatch)
    shown = _runs_until_done(client, shown, token)[0]
    lines = _downloaded(shown["download_url"]).splitlines()
    assert shown["status"] == "done" and lines == _one_shot(client, query, token).splitlines() and len(lines) == 60


def test_a_refused_query_of_the_project_index_reads_the_partition(client, monkeypatch):
    """DynamoDB refusing ``open_project_index`` (building it anew, its grant spreading) answers
    the project's open feedback from its partition, as before the marker, not a 503."""
    import boto3
    monkeypatch.setattr(open_spikes, "_refused_until", 0.0)  # and back after the test
    token = sign_in(client, OWNER)
    share = make_share(OWNER, "refused")
    _stored(share, 40, lambda i: {"resolved": i % 10 != 0})
    open_ids = _page(client, token, share.share_id, "resolved=false")[0]
    assert len(open_ids) == 4
    boto3.client("dynamodb", region_name=Spike.Meta.region).update_table(
        TableName=Spike.Meta.table_name, GlobalSecondaryIndexUpdates=[{"Delete": {"IndexName": "open_project_index"}}])
    reads = counting_reads(monkeypatch)
    assert _page(client, token, share.share_id, "resolved=false")[0] == open_ids
    assert reads["project_index"] >= 1, dict(reads)
    response = client.http.get(f"/spikes/export?project={share.share_id}&resolved=false&format=jsonl",
                               headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert [json.loads(line)["id"] for line in response.body.decode().splitlines() if line.strip()] == open_ids
