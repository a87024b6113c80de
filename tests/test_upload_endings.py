"""How a presigned upload ends when it is refused, kept or raced (docs/security.md, findings 44
to 46): a completion a cap refuses copies nothing and the upload stays completable until its
deadline; a kept upload whose charge a cap refused is billed once there is room, not held for
good; a completion racing an expiry or a deletion leaves no file behind and counts its charge in
one period only. On moto and on DynamoDB Local; each test failed before its fix."""
from __future__ import annotations

from datetime import timedelta

import pytest

from chalicelib import deps
from chalicelib.services import quotas
from chalicelib.services import share_deletion
from chalicelib.store import held_charges, share_tombstones
from chalicelib.store import shares as share_store
from chalicelib.store.files import ShareFiles
from chalicelib.store.models import OutboxItem, User
from chalicelib.store.transactions import ConditionFailed
from tests.conftest import call
from tests.test_agent_review_4 import FILES, upload_files
from tests.test_agent_tier import SHARE_EVENT, configured, outbox  # noqa: F401 - fixtures
from tests.test_shares import s3_keys, start_presigned
from tests.test_upload_counts import (DECEMBER, JANUARY, NEW_YEAR, NEW_YEARS_EVE, SHARE_COST, account_cost, complete,
                                      expire_now, held_over_a_full_keys_cap, key_use, moment, new_key, run_job,
                                      signed_in)  # noqa: F401


def held():
    return [item.identifier for item in OutboxItem.query(held_charges.HELD_QUEUE)]


def share_events():
    return [item.identifier for item in outbox() if item.event_name == SHARE_EVENT]


def uploaded(client, token):
    """A presigned upload started and its files uploaded: its share id."""
    started = start_presigned(client, token, FILES)[1]
    upload_files(started)
    return started["share_id"]


def files_of(share_id):
    """(served, staged) object keys of the share."""
    return s3_keys(f"shares/{share_id}/"), s3_keys(f"uploads/{share_id}/")


# --- 44. A completion refused by a cap copies nothing -------------------------------------------

def test_a_completion_refused_by_a_cap_copies_no_file_and_completes_later(backend_client, configured, moment):
    client = backend_client
    token, uid = signed_in(client, quotas.AGENT)
    assert call(client, "PATCH", "/me", {"monthly_cap_cents": 1}, token=token)[0] == 200
    share_id = uploaded(client, token)
    moment["at"] = NEW_YEAR
    assert start_presigned(client, token, FILES, name="january")[0] == 201  # January's whole cap
    status, refused, _ = complete(client, token, share_id)
    assert (status, refused["code"], refused["cap"]) == (429, "BUDGET_EXCEEDED", "account"), refused
    # Refused before anything was done: no file copied, the staging area kept, nothing moved.
    assert files_of(share_id) == ([], [f"uploads/{share_id}/index.html"])
    assert (account_cost(uid, DECEMBER), account_cost(uid, JANUARY)) == (SHARE_COST, SHARE_COST)
    assert f"share-{share_id}" in held() and share_events() == []

    assert call(client, "PATCH", "/me", {"monthly_cap_cents": 2}, token=token)[0] == 200
    status, done, _ = complete(client, token, share_id)
    assert (status, done["status"]) == (200, "active"), done
    assert files_of(share_id) == ([f"shares/{share_id}/index.html"], [])
    assert (account_cost(uid, DECEMBER), account_cost(uid, JANUARY)) == (0, 2 * SHARE_COST)
    assert share_events() == [f"share-{share_id}"]


def test_a_refused_upload_never_completed_expires_at_its_deadline_and_gives_back_once(
        backend_client, configured, moment):
    client = backend_client
    token, uid = signed_in(client, quotas.AGENT)
    key, key_id, december = held_over_a_full_keys_cap(client, token, moment, feedback=False)
    assert complete(client, key, december["share_id"])[0] == 429
    # Completable until its deadline (a day after it started) ...
    assert run_job(client, moment, NEW_YEARS_EVE + timedelta(hours=23, minutes=55))["unfinished_uploads_expired"] == 0
    # ... then expired: its held charge dropped and its key's share given back, once.
    for hours in (24, 48):
        run_job(client, moment, NEW_YEARS_EVE + timedelta(hours=hours, minutes=5))
        assert share_store.get_by_id(december["share_id"]) is None and held() == []
        assert (key_use(key_id, DECEMBER), key_use(key_id, JANUARY)) == ((0, 0), (1, SHARE_COST))
        assert (account_cost(uid, DECEMBER), account_cost(uid, JANUARY)) == (0, SHARE_COST)
    assert len(share_events()) == 1  # January's
    assert files_of(december["share_id"]) == ([], [])


# --- 45. A kept upload whose charge a cap refused is billed once there is room --------------------

def test_a_kept_upload_a_cap_refused_is_billed_once_there_is_room(backend_client, configured, moment):
    client = backend_client
    token, _ = signed_in(client, quotas.AGENT)
    key, key_id, december = held_over_a_full_keys_cap(client, token, moment)
    assert run_job(client, moment, NEW_YEARS_EVE + timedelta(hours=24, minutes=5))["unfinished_uploads_kept"] == 1
    assert held() == [f"share-{december['share_id']}"]  # no room: still held
    assert call(client, "PATCH", f"/auth/api-key/{key_id}", {"monthly_cap_cents": 2}, token=token)[0] == 200
    # The job looks at it again a day later, and bills it then: once, in January.
    for hours in (48, 72):
        assert run_job(client, moment, NEW_YEARS_EVE + timedelta(hours=hours, minutes=10))["unfinished_uploads_failed"] == 0
        assert held() == [] and share_store.get_by_id(december["share_id"]).status == "pending"
        assert len(share_events()) == 2 and f"share-{december['share_id']}" in share_events()  # and January's
        assert (key_use(key_id, DECEMBER), key_use(key_id, JANUARY)) == ((0, 0), (2, 2 * SHARE_COST))


# --- 46. A completion racing an expiry or a deletion ---------------------------------------------

def test_files_a_completion_copies_while_the_expiry_removes_them_are_not_left_behind(
        backend_client, configured, moment, monkeypatch):
    client = backend_client
    token, _ = signed_in(client, quotas.FREE)
    share_id = uploaded(client, token)
    real_publish, real_delete_all = ShareFiles.publish, ShareFiles.delete_all

    def publish_during_the_expiry(files, copied_id, verified):
        def remove_around_the_copies(deleting, removed_id):  # the served files, the copies, the staging area
            deleting._delete_prefix(f"shares/{removed_id}/")
            real_publish(files, copied_id, verified)
            deleting.delete_staged(removed_id)
        monkeypatch.setattr(ShareFiles, "delete_all", remove_around_the_copies)
        assert expire_now(copied_id)["unfinished_uploads_expired"] == 1
        monkeypatch.setattr(ShareFiles, "delete_all", real_delete_all)
    monkeypatch.setattr(ShareFiles, "publish", publish_during_the_expiry)
    status, error, _ = complete(client, token, share_id)
    assert (status, error["code"]) == (404, "NOT_FOUND")
    assert share_store.get_by_id(share_id) is None and files_of(share_id) == ([], [])


def test_an_expiry_that_read_the_charge_before_a_completion_moved_it_gives_nothing_back(
        backend_client, configured, moment, monkeypatch):
    client = backend_client
    token, uid = signed_in(client, quotas.AGENT)
    share_id = uploaded(client, token)
    stale_share = share_store.get_by_id(share_id, consistent=True)
    stale_charge = held_charges.get(f"share-{share_id}")  # the job read it in December ...
    moment["at"] = NEW_YEAR
    real_publish = ShareFiles.publish

    def expiry_lands(files, copied_id, verified):  # ... and lands once the completion moved it
        with pytest.raises(ConditionFailed):
            share_tombstones.tombstone_unfinished(stale_share, also=held_charges.dropping(stale_charge))
        real_publish(files, copied_id, verified)
    monkeypatch.setattr(ShareFiles, "publish", expiry_lands)
    assert complete(client, token, share_id)[0] == 200
    assert (account_cost(uid, DECEMBER), account_cost(uid, JANUARY)) == (0, SHARE_COST)
    assert held() == [] and share_events() == [f"share-{share_id}"]


def test_a_deletion_that_read_the_charge_before_a_completion_moved_it_gives_it_back_from_there(
        backend_client, configured, moment, monkeypatch):
    client = backend_client
    token, uid = signed_in(client, quotas.AGENT)
    key, key_id = new_key(client, token)
    share_id = uploaded(client, key)
    stale_charge = held_charges.get(f"share-{share_id}")  # the deletion reads it in December ...
    moment["at"] = NEW_YEAR
    real_publish, real_get = ShareFiles.publish, held_charges.get
    reads = []

    def first_read_stale(identifier):
        reads.append(identifier)
        return stale_charge if len(reads) == 1 else real_get(identifier)

    def deletion_lands(files, copied_id, verified):  # ... and lands once the completion moved it
        monkeypatch.setattr(held_charges, "get", first_read_stale)
        share_deletion.delete_share(deps.share_files(), User.get(uid), copied_id)
        monkeypatch.setattr(held_charges, "get", real_get)
        real_publish(files, copied_id, verified)
    monkeypatch.setattr(ShareFiles, "publish", deletion_lands)
    status, error, _ = complete(client, key, share_id)
    assert (status, error["code"]) == (404, "NOT_FOUND")
    # Given back from January, where the completion had moved it; nothing billed, nothing held.
    assert (account_cost(uid, DECEMBER), account_cost(uid, JANUARY)) == (0, 0)
    assert (key_use(key_id, DECEMBER), key_use(key_id, JANUARY)) == ((0, 0), (0, 0))
    assert held() == [] and share_events() == [] and files_of(share_id) == ([], [])
