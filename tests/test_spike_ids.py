"""A lookup by id reads only the caller's spikes, however many other projects hold the same
id (docs/security.md, finding 33); spikes stored before ``owner_project`` existed are found
before and after the backfill that gives it to them (store/spike_ids.py)."""
from __future__ import annotations

from botocore.exceptions import ClientError
from pynamodb.exceptions import QueryError

from chalicelib import deps
from chalicelib.services import spike_posts
from chalicelib.services.spike_posts import NewSpike
from chalicelib.store import spike_ids, spike_moves
from chalicelib.store import spikes as spike_store
from chalicelib.store.models import Spike
from tests.conftest import ADMIN_TOKEN, call, sign_in
from tests.factories import as_before_migrations, make_share

PAGE_SPIKE = {"type": "page", "page": "Home", "url": "https://example.com/", "rating": "love"}


def _as_stored_before_the_upgrade(public_id: str, monkeypatch) -> None:
    """Take ``owner_project`` off the spike(s) with this id and forget the backfill."""
    for spike in Spike.id_index.query(public_id):
        spike.update(actions=[Spike.owner_project.remove()])
    as_before_migrations(monkeypatch, spike_ids.BACKFILL_MARKER)


def _record(project_key: str, public_id: str) -> None:
    spike_posts.record(NewSpike(type="page", project_key=project_key, client_id=public_id), deps.settings(), "http://x")


def test_an_owners_lookup_reads_only_their_spike_however_many_projects_hold_its_id(client, dynamodb_calls):
    alice = sign_in(client, "alice@example.com")
    share = make_share("alice@example.com", "alice-site")
    status, posted, _ = call(client, "POST", "/spikes", {**PAGE_SPIKE, "id": "known-id", "projectKey": share.share_id})
    assert status == 201
    # Whoever saw the id (a reviewer of the share) posts it under many throwaway keys.
    for n in range(60):
        _record(f"throwaway-{n}", "known-id")
    dynamodb_calls.clear()
    status, body, _ = call(client, "GET", "/spikes/known-id", token=alice)
    assert status == 200 and body["projectKey"] == share.share_id
    # One Query, reading alice's item alone (through id_index: 60 foreign items in pages of 20).
    assert dynamodb_calls["Query"] == 1
    assert call(client, "PATCH", "/spikes/known-id", {"resolved": True}, token=alice)[1]["resolved"] is True
    # The admin sees every project's: the same id in several of them asks for ?project=.
    assert call(client, "GET", f"/spikes/known-id?token={ADMIN_TOKEN}")[0] == 409


def test_a_spike_stored_before_the_upgrade_is_found_before_and_after_the_backfill(client, monkeypatch,
                                                                                 dynamodb_calls):
    alice = sign_in(client, "alice@example.com")
    share = make_share("alice@example.com", "alice-site")
    call(client, "POST", "/spikes", {**PAGE_SPIKE, "id": "old-one", "projectKey": share.share_id})
    call(client, "POST", "/spikes", {**PAGE_SPIKE, "id": "old-loose", "projectKey": "loose"})
    for public_id in ("old-one", "old-loose"):
        _as_stored_before_the_upgrade(public_id, monkeypatch)

    # Before the backfill: a miss in the new index falls back to id_index.
    status, body, _ = call(client, "GET", "/spikes/old-one", token=alice)
    assert status == 200 and body["id"] == "old-one"
    assert call(client, "GET", f"/spikes/old-loose?token={ADMIN_TOKEN}")[0] == 200
    assert call(client, "GET", "/spikes/nothing-like-it", token=alice)[0] == 404

    assert spike_ids.backfill() == 2 and spike_ids.backfilled()
    [stored] = Spike.id_index.query("old-one")
    assert stored.owner_project == f"{share.owner_id}#{share.share_id}"
    [loose] = Spike.id_index.query("old-loose")
    assert loose.owner_project == "#key#loose"

    # After it, id_index is never read again.
    def refuse(*args, **kwargs):
        raise AssertionError("id_index read after the backfill")
    monkeypatch.setattr(Spike.id_index, "query", refuse)
    dynamodb_calls.clear()
    assert call(client, "GET", "/spikes/old-one", token=alice)[0] == 200
    assert call(client, "GET", f"/spikes/old-loose?token={ADMIN_TOKEN}")[0] == 200
    assert call(client, "GET", "/spikes/nothing-like-it", token=alice)[0] == 404
    assert dynamodb_calls["Query"] == 3 and dynamodb_calls["GetItem"] >= 1  # the session's reads
    assert spike_ids.backfill() == 0


def test_while_the_new_index_is_still_building_lookups_use_the_old_one(client, monkeypatch):
    alice = sign_in(client, "alice@example.com")
    share = make_share("alice@example.com", "alice-site")
    call(client, "POST", "/spikes", {**PAGE_SPIKE, "id": "during-deploy", "projectKey": share.share_id})

    def building(*args, **kwargs):
        raise QueryError("Failed to query items", cause=ClientError(
            {"Error": {"Code": "ValidationException",
                       "Message": "Cannot read from backfilling global secondary index: id_owner_index"}}, "Query"))
    monkeypatch.setattr(Spike.id_owner_index, "query", building)
    status, body, _ = call(client, "GET", "/spikes/during-deploy", token=alice)
    assert status == 200 and body["id"] == "during-deploy"
    bob = sign_in(client, "bob@example.com")
    assert call(client, "GET", "/spikes/during-deploy", token=bob)[0] == 404


def test_while_the_new_indexs_grant_spreads_lookups_use_the_old_one(client, monkeypatch):
    """IAM spreads a new grant in seconds to minutes after the deploy that adds it: a lookup
    denied the new index (AccessDeniedException) asks the old one, as while it builds."""
    alice = sign_in(client, "alice@example.com")
    share = make_share("alice@example.com", "alice-site")
    call(client, "POST", "/spikes", {**PAGE_SPIKE, "id": "during-deploy", "projectKey": share.share_id})

    def denied(*args, **kwargs):
        raise QueryError("Failed to query items", cause=ClientError(
            {"Error": {"Code": "AccessDeniedException", "Message": "not authorized to perform: dynamodb:Query"}},
            "Query"))
    monkeypatch.setattr(Spike.id_owner_index, "query", denied)
    status, body, _ = call(client, "GET", "/spikes/during-deploy", token=alice)
    assert status == 200 and body["id"] == "during-deploy"
    assert call(client, "GET", "/spikes/during-deploy", token=sign_in(client, "bob@example.com"))[0] == 404


def test_backfill_skips_nothing_a_concurrent_owner_change_touches(store_backend, monkeypatch):
    """An old function still running during the deploy moves a spike to another owner
    between the backfill's scan and its update: the update is refused (the owner changed) and
    the next pass gives the item its new owner's prefix. The marker is set only after a pass
    that found nothing left."""
    first = make_share("first@example.com", "moving-site")
    _record(first.share_id, "moving")
    _as_stored_before_the_upgrade("moving", monkeypatch)
    original_scan = Spike.scan
    scans = []

    def scan_then_move(*args, **kwargs):
        found = list(original_scan(*args, **kwargs))
        if not scans:
            for spike in Spike.id_index.query("moving"):
                spike.update(actions=[Spike.owner_id.set("usr_second")])  # as the old code moved it
        scans.append(len(found))
        return iter(found)
    monkeypatch.setattr(Spike, "scan", scan_then_move)
    assert spike_ids.backfill() == 1
    assert scans == [1, 1, 0] and spike_ids.backfilled()
    [stored] = Spike.id_owner_index.query("moving")
    assert stored.owner_project == f"usr_second#{first.share_id}"


def test_a_claimed_accounts_spikes_are_found_by_their_new_owner_only(store_backend):
    share = make_share("agent@example.com", "agent-site")
    _record(share.share_id, "agents-spike")
    assert spike_moves.move_to_owner(share.owner_id, "usr_person") == 1
    assert [s.partition for s in spike_ids.find("agents-spike", "usr_person")] == [share.share_id]
    assert spike_ids.find("agents-spike", share.owner_id) == []
    assert len(spike_ids.find("agents-spike")) == 1  # the admin


def test_a_prefix_of_another_owner_id_finds_nothing_of_theirs(store_backend):
    """``owner_project`` starts with ``<owner id>#``: an id that is a prefix of another's
    (usr_ab, usr_abc) does not reach the other's spikes."""
    for owner in ("usr_ab", "usr_abc"):
        spike_store.new(spike_store.spike_id_for(f"user#{owner}#key#p", "same"), f"user#{owner}#key#p",
                        "2026-12-03T00:00:00.000Z", public_id="same", owner_id=owner, type="page",
                        project_key="p").save()
    assert [s.owner_id for s in spike_ids.find("same", "usr_ab")] == ["usr_ab"]
    assert [s.owner_id for s in spike_ids.find("same", "usr_abc")] == ["usr_abc"]


def test_project_picks_the_one_asked_for_however_many_projects_hold_the_id(store_backend):
    """Ids are unique per project only: an owner's 30 projects holding one id are 30 matches.
    ``project_key`` is part of the Query's filter, so the one asked for is found wherever it
    falls among them, and a lookup without it stops at the second match (a conflict)."""
    owner = "usr_many"
    for n in range(30):
        partition = spike_store.project_partition(f"proj-{n}", None, owner)
        spike_store.new(spike_store.spike_id_for(partition, "shared-id"), partition, "2026-12-04T00:00:00.000Z",
                        public_id="shared-id", owner_id=owner, type="page", project_key=f"proj-{n}").save()
    for n in (0, 17, 29):
        assert [s.project_key for s in spike_ids.find("shared-id", owner, f"proj-{n}")] == [f"proj-{n}"]
        assert [s.project_key for s in spike_ids.find("shared-id", None, f"proj-{n}")] == [f"proj-{n}"]  # admin
    assert spike_ids.find("shared-id", owner, "proj-30") == []
    assert spike_ids.find("shared-id", "usr_other", "proj-3") == []
    assert len(spike_ids.find("shared-id", owner)) == 2


def test_an_owner_acts_on_the_project_they_name_past_the_twentieth(client):
    """The CLI resolves and deletes with ``?project=`` when an id is in several projects: it
    must reach the project named, not only one of the first matches read (the index orders
    alice-9 after alice-10..alice-23)."""
    alice = sign_in(client, "alice@example.com")
    share = make_share("alice@example.com", "alice-site")
    assert call(client, "POST", "/spikes", {**PAGE_SPIKE, "id": "same-id", "projectKey": share.share_id},
                token=alice)[0] == 201
    for n in range(24):
        assert call(client, "POST", "/spikes", {**PAGE_SPIKE, "id": "same-id", "projectKey": f"alice-{n}"},
                    token=alice)[0] == 201
    assert call(client, "GET", "/spikes/same-id", token=alice)[0] == 409
    status, body, _ = call(client, "GET", "/spikes/same-id?project=alice-9", token=alice)
    assert status == 200 and body["projectKey"] == "alice-9"
    # A share named by its slug finds the spike posted to its id.
    status, body, _ = call(client, "GET", "/spikes/same-id?project=alice-site", token=alice)
    assert status == 200 and body["projectKey"] == share.share_id
    status, body, _ = call(client, "PATCH", "/spikes/same-id?project=alice-8", {"resolved": True}, token=alice)
    assert status == 200 and body["resolved"] is True and body["projectKey"] == "alice-8"
    assert call(client, "DELETE", "/spikes/same-id?project=alice-7", token=alice)[0] in (200, 204)
    assert call(client, "GET", "/spikes/same-id?project=alice-7", token=alice)[0] == 404
    assert call(client, "GET", "/spikes/same-id?project=alice-6", token=alice)[0] == 200
    bob = sign_in(client, "bob@example.com")
    assert call(client, "GET", "/spikes/same-id?project=alice-9", token=bob)[0] == 404
