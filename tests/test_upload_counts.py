"""What a presigned upload counts, and when (docs/security.md, findings 40 and 41): a share is
counted in the period it is completed in (its usage event's time, the account's and the key's
usage, under that period's caps), and an upload never completed gives back its key's count on
every tier, exactly once. On moto and on DynamoDB Local; each test failed before its fix."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from chalicelib import clock, deps
from chalicelib.services import quotas, share_cleanup
from chalicelib.services.accounts import user_id_for
from chalicelib.store import charges, held_charges, share_tombstones
from chalicelib.store import shares as share_store
from chalicelib.store.models import OutboxItem, Share, User
from tests.conftest import call, sign_in
from tests.test_agent_review_4 import FILES, upload_files
from tests.test_agent_tier import EMAIL, SHARE_EVENT, configured, outbox  # noqa: F401 - fixtures
from tests.test_shares import start_presigned
from tests.test_usage import SCHEDULE_EVENT

NEW_YEARS_EVE = datetime(2026, 12, 31, 23, 50, tzinfo=timezone.utc)
NEW_YEAR = datetime(2027, 1, 1, 0, 10, tzinfo=timezone.utc)
DECEMBER, JANUARY = "2026-12", "2027-01"
SHARE_COST = 1000  # 1 cent, in thousandths


@pytest.fixture
def moment():
    """The clock, pinned (``moment["at"]``) and moved by the test."""
    now = {"at": NEW_YEARS_EVE}
    clock.use(lambda: now["at"])
    yield now
    clock.use(None)


def signed_in(client, tier):
    token = sign_in(client, EMAIL)
    uid = user_id_for(EMAIL)
    if tier == quotas.AGENT:
        User(uid).update(actions=[User.tier.set(tier), User.stripe_customer_id.set("cus_agent")])
    elif tier == quotas.PRO:
        User(uid).update(actions=[User.tier.set(tier)])
    return token, uid


def new_key(client, token, **fields):
    status, body, _ = call(client, "POST", "/auth/api-key", {"name": "ci", **fields}, token=token)
    assert status in (200, 201), body
    return body["api_key"], body["key_id"]


def spent(item):
    return (int(item.shares or 0) if item else 0, int(item.cost or 0) if item else 0)


def account_cost(uid, period):
    return spent(charges.account_period(uid, period))[1]


def key_use(key_id, period):
    """(shares, cost) of the key's usage of ``period``."""
    return spent(charges.key_period(key_id, period))


def complete(client, token, share_id):
    return call(client, "POST", f"/shares/{share_id}/complete", token=token)


def uploaded_by_a_key(client, tier):
    """A new key of a ``tier`` account started an upload and sent its files, not completed yet:
    the key, its id, the account's id and the upload as started."""
    token, uid = signed_in(client, tier)
    key, key_id = new_key(client, token)
    started = start_presigned(client, key, FILES)[1]
    upload_files(started)
    return key, key_id, uid, started


def held_over_a_full_keys_cap(client, token, moment, feedback=True):
    """A December upload made with a key capped at 1 cent (with feedback, or its files), and a
    January share made with the key (completed) filling its January cap: (key, key_id, the
    December upload)."""
    key, key_id = new_key(client, token, monthly_cap_cents=1)
    december = start_presigned(client, key, FILES)[1]
    if feedback:
        assert call(client, "POST", "/spikes", {"type": "page", "projectKey": december["share_id"],
                                                "comments": "seen before completion"})[0] == 201
    else:
        upload_files(december)
    moment["at"] = NEW_YEAR
    january = start_presigned(client, key, FILES, name="january")[1]
    upload_files(january)
    assert complete(client, key, january["share_id"])[0] == 200
    return key, key_id, december


def run_job(client, moment, at):
    """The share_deletions scheduled function at ``at`` (checked against its own role)."""
    moment["at"] = at
    return client.lambda_.invoke("share_deletions", SCHEDULE_EVENT).payload


# --- 40. A share is counted in the period it is completed in ------------------------------------

def test_an_upload_completed_after_the_month_ended_is_billed_and_counted_in_the_new_month(
        backend_client, configured, moment):
    client = backend_client
    key, key_id, uid, started = uploaded_by_a_key(client, quotas.AGENT)
    assert account_cost(uid, DECEMBER) == SHARE_COST and key_use(key_id, DECEMBER) == (1, SHARE_COST)

    moment["at"] = NEW_YEAR
    status, done, _ = complete(client, key, started["share_id"])
    assert (status, done["status"]) == (200, "active"), done
    # Reported as January's usage: the time the share came to exist ...
    [event] = [item for item in outbox() if item.event_name == SHARE_EVENT]
    assert int(event.timestamp) == int(NEW_YEAR.timestamp()) and event.event_key.startswith("2027-01-01T00:10:00Z")
    # ... and counted there too, no longer in December.
    assert (account_cost(uid, DECEMBER), account_cost(uid, JANUARY)) == (0, SHARE_COST)
    assert (key_use(key_id, DECEMBER), key_use(key_id, JANUARY)) == ((0, 0), (1, SHARE_COST))
    assert call(client, "GET", "/usage", token=key)[1]["cost_this_period_cents"] == 1


def test_uploads_held_over_the_end_of_a_month_cannot_pass_the_next_months_cap(backend_client, configured, moment):
    client = backend_client
    token, uid = signed_in(client, quotas.AGENT)
    assert call(client, "PATCH", "/me", {"monthly_cap_cents": 2}, token=token)[0] == 200
    # December's cap, filled with two uploads held over its end.
    held_over = [start_presigned(client, token, FILES, name=f"held {n}")[1] for n in range(2)]
    for started in held_over:
        upload_files(started)
    assert start_presigned(client, token, FILES, name="refused")[0] == 429

    moment["at"] = NEW_YEAR  # January's cap: one new share, then one of December's
    status, january, _ = start_presigned(client, token, FILES, name="january")
    assert status == 201, january
    assert complete(client, token, held_over[0]["share_id"])[0] == 200
    status, refused, _ = complete(client, token, held_over[1]["share_id"])
    assert (status, refused["code"], refused["cap"]) == (429, "BUDGET_EXCEEDED", "account"), refused
    assert refused["period_ends"] == "2027-02-01T00:00:00Z"
    # Refused: still pending, still held (counted in December), and nothing reported for it.
    assert Share.get(f"share#{held_over[1]['share_id']}").status == "pending"
    assert {item.identifier for item in OutboxItem.query(held_charges.HELD_QUEUE)} == \
        {f"share-{held_over[1]['share_id']}", f"share-{january['share_id']}"}
    assert (account_cost(uid, DECEMBER), account_cost(uid, JANUARY)) == (SHARE_COST, 2 * SHARE_COST)
    assert [item.identifier for item in outbox()] == [f"share-{held_over[0]['share_id']}"]

    # Raising the cap lets it complete, counted in January.
    assert call(client, "PATCH", "/me", {"monthly_cap_cents": 3}, token=token)[0] == 200
    assert complete(client, token, held_over[1]["share_id"])[0] == 200
    assert (account_cost(uid, DECEMBER), account_cost(uid, JANUARY)) == (0, 3 * SHARE_COST)


def test_a_key_cap_holds_for_an_upload_completed_in_the_next_month(backend_client, configured, moment):
    client = backend_client
    token, uid = signed_in(client, quotas.AGENT)
    key, key_id = new_key(client, token, monthly_cap_cents=1)
    december = start_presigned(client, key, FILES)[1]
    upload_files(december)

    moment["at"] = NEW_YEAR
    january = start_presigned(client, key, FILES, name="january")[1]  # the key's whole January cap
    status, refused, _ = complete(client, key, december["share_id"])
    assert (status, refused["code"], refused["cap"]) == (429, "BUDGET_EXCEEDED", "key"), refused
    assert (key_use(key_id, DECEMBER), key_use(key_id, JANUARY)) == ((1, SHARE_COST), (1, SHARE_COST))
    assert (account_cost(uid, DECEMBER), account_cost(uid, JANUARY)) == (SHARE_COST, SHARE_COST)
    assert january["status"] == "pending" and outbox() == []


def test_an_upload_kept_for_its_feedback_is_counted_when_the_job_releases_it(backend_client, configured, moment):
    client = backend_client
    token, uid = signed_in(client, quotas.AGENT)
    started = start_presigned(client, token, FILES)[1]
    assert call(client, "POST", "/spikes", {"type": "page", "projectKey": started["share_id"],
                                            "comments": "seen before completion"})[0] == 201
    job_time = NEW_YEARS_EVE + timedelta(days=2)
    assert run_job(client, moment, job_time)["unfinished_uploads_kept"] == 1
    [event] = [item for item in outbox() if item.event_name == SHARE_EVENT]
    assert int(event.timestamp) == int(job_time.timestamp())
    assert (account_cost(uid, DECEMBER), account_cost(uid, JANUARY)) == (100, SHARE_COST)  # December: the spike


def test_a_kept_upload_is_released_in_the_next_month_only_within_its_keys_cap(backend_client, configured, moment):
    client = backend_client
    token, uid = signed_in(client, quotas.AGENT)
    key, key_id, december = held_over_a_full_keys_cap(client, token, moment)
    # A day after December's upload started: kept, but no room to bill it.
    assert run_job(client, moment, NEW_YEARS_EVE + timedelta(hours=24, minutes=5))["unfinished_uploads_kept"] == 1
    assert len([item for item in outbox() if item.event_name == SHARE_EVENT]) == 1  # January's
    assert held_charges.get(f"share-{december['share_id']}") is not None
    assert (key_use(key_id, DECEMBER), key_use(key_id, JANUARY)) == ((1, SHARE_COST), (1, SHARE_COST))
    # With room under the key's cap, its completion bills it in January.
    assert call(client, "PATCH", f"/auth/api-key/{key_id}", {"monthly_cap_cents": 2}, token=token)[0] == 200
    upload_files(december)
    assert complete(client, key, december["share_id"])[0] == 200
    assert (key_use(key_id, DECEMBER), key_use(key_id, JANUARY)) == ((0, 0), (2, 2 * SHARE_COST))
    shares_billed = [item.identifier for item in outbox() if item.event_name == SHARE_EVENT]
    assert len(shares_billed) == 2 and f"share-{december['share_id']}" in shares_billed  # and January's


# --- 41. An upload never completed gives back its key's count, on every tier ----------------------

@pytest.mark.parametrize("tier", [quotas.FREE, quotas.PRO])
def test_an_upload_that_expires_unfinished_gives_back_its_keys_share(backend_client, configured, moment, tier):
    client = backend_client
    token, _ = signed_in(client, tier)
    key, key_id = new_key(client, token)
    started = start_presigned(client, key, FILES)[1]
    assert call(client, "GET", "/usage", token=key)[1]["key"]["shares"] == 1 and key_use(key_id, DECEMBER)[0] == 1
    assert run_job(client, moment, NEW_YEARS_EVE + timedelta(hours=25))["unfinished_uploads_expired"] == 1
    assert key_use(key_id, DECEMBER)[0] == 0 and share_store.get_by_id(started["share_id"]) is None
    assert call(client, "GET", "/usage", token=key)[1]["key"]["shares"] == 0


@pytest.mark.parametrize("tier", [quotas.FREE, quotas.PRO])
def test_an_upload_deleted_before_completion_gives_back_its_keys_share(backend_client, configured, moment, tier):
    client = backend_client
    token, _ = signed_in(client, tier)
    key, key_id = new_key(client, token)
    started = start_presigned(client, key, FILES)[1]
    assert call(client, "DELETE", f"/shares/{started['share_id']}", token=key)[0] == 200
    assert key_use(key_id, DECEMBER)[0] == 0
    # A completed share deleted later existed: the key made it.
    started = start_presigned(client, key, FILES, name="kept")[1]
    upload_files(started)
    assert complete(client, key, started["share_id"])[0] == 200
    assert call(client, "DELETE", f"/shares/{started['share_id']}", token=key)[0] == 200
    assert key_use(key_id, DECEMBER)[0] == 1


def test_a_free_tier_upload_completed_in_the_next_month_is_counted_there(backend_client, configured, moment):
    client = backend_client
    key, key_id, _, started = uploaded_by_a_key(client, quotas.FREE)
    moment["at"] = NEW_YEAR
    assert complete(client, key, started["share_id"])[0] == 200
    assert (key_use(key_id, DECEMBER)[0], key_use(key_id, JANUARY)[0]) == (0, 1)
    assert call(client, "GET", "/usage", token=key)[1]["key"]["shares"] == 1


# --- the races: a completion and an expiry (or a deletion) of the same upload -------------------

def expire_now(share_id):
    """What the job does to one unfinished upload, its pass run a day later."""
    later = clock.epoch() + 25 * 3600
    return share_cleanup.expire_unfinished_uploads(deps.share_files(), later, deps.settings().presign_ttl_seconds)


def test_an_expiry_landing_during_the_completion_gives_the_keys_share_back_once(backend_client, configured, moment,
                                                                                 monkeypatch):
    client = backend_client
    key, key_id, _, started = uploaded_by_a_key(client, quotas.FREE)
    real_activate = share_store.activate

    def expired_just_before(share, locked=False, also=None):
        assert expire_now(share.share_id)["unfinished_uploads_expired"] == 1
        return real_activate(share, locked, also)
    monkeypatch.setattr(share_store, "activate", expired_just_before)
    status, error, _ = complete(client, key, started["share_id"])
    assert (status, error["code"]) == (404, "NOT_FOUND")
    assert key_use(key_id, DECEMBER)[0] == 0


def test_a_completion_landing_during_the_expiry_keeps_the_keys_share(backend_client, configured, moment):
    client = backend_client
    key, key_id, _, started = uploaded_by_a_key(client, quotas.FREE)
    stale = share_store.get_by_id(started["share_id"], consistent=True)  # the job read it pending ...
    assert complete(client, key, started["share_id"])[0] == 200  # ... then this
    with pytest.raises(share_tombstones.NoLongerPending):
        share_tombstones.tombstone_unfinished(stale, also=charges.uncounting_pending(stale))
    assert Share.get(f"share#{started['share_id']}").status == "active" and key_use(key_id, DECEMBER)[0] == 1


def test_a_deletion_that_read_the_upload_pending_keeps_the_count_of_a_completion_meanwhile(
        backend_client, configured, moment):
    client = backend_client
    key, key_id, uid, started = uploaded_by_a_key(client, quotas.FREE)
    stale = share_store.get_by_id(started["share_id"], consistent=True)  # the deletion read it pending ...
    assert complete(client, key, started["share_id"])[0] == 200  # ... then this
    share_tombstones.tombstone(stale, uid, while_pending=charges.uncounting_pending(stale))
    # Deleted, as asked; but it existed, so the key's count of it stays.
    assert Share.get(f"share#{started['share_id']}").status == "deleting" and key_use(key_id, DECEMBER)[0] == 1
    assert User.get(uid).active_shares == 0
