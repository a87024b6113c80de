"""Agent-tier findings of the fourth session (docs/security.md, "Found in the fourth session"):
a presigned upload's share charge is billed only once the upload completes, and given back
when it expires unfinished (or is deleted before completion). Each test failed before its fix.
In-process with moto; the races also on DynamoDB Local."""
from __future__ import annotations

from datetime import timedelta

import pytest
import requests

from chalicelib import clock
from chalicelib.services import metering, quotas
from chalicelib.services.accounts import user_id_for
from chalicelib.store import charges, held_charges, share_tombstones, share_work
from chalicelib.store import shares as share_store
from chalicelib.store.models import OutboxItem, Share, User
from infra import policy
from tests.factories import queued
from tests import aws_calls
from tests.conftest import call, sign_in
from tests.test_agent_tier import EMAIL, SHARE_EVENT, agent, configured, outbox, report  # noqa: F401 - fixtures
from tests.test_shares import INDEX, _run_share_job, start_presigned

FILES = [{"path": "index.html", "size": len(INDEX), "content_type": "text/html"}]


def upload_files(started):
    for target in started["uploads"]:
        assert requests.put(target["url"], data=INDEX, headers=target["headers"], timeout=10).status_code == 200


def held():
    return list(OutboxItem.query(held_charges.HELD_QUEUE))


def share_events():
    return [item for item in outbox() if item.event_name == SHARE_EVENT]


def usage(client, token):
    status, body, _ = call(client, "GET", "/usage", token=token)
    assert status == 200, body
    return body


# --- 31. An expired, never-finished presigned upload is not billed ------------------------------

def test_an_agent_tier_upload_that_expires_unfinished_is_not_billed(client, agent, configured):
    token, _, _ = agent
    key = call(client, "POST", "/auth/api-key", {"name": "ci", "monthly_cap_cents": 1}, token=token)[1]["api_key"]
    status, started, _ = start_presigned(client, key, FILES)
    assert status == 201, started
    # Charged when it starts (the caps hold for uploads in flight) ...
    before = usage(client, key)
    assert before["cost_this_period_cents"] == 1 and before["shares"] == 1
    assert (before["key"]["shares"], before["key"]["cost_this_period_cents"]) == (1, 1)
    status, refused, _ = start_presigned(client, key, FILES, name="second")
    assert (status, refused["code"], refused["cap"]) == (429, "BUDGET_EXCEEDED", "key"), refused
    # ... but nothing reaches Stripe while it is not finished.
    assert outbox() == [] and len(held()) == 1
    assert report()["sent"] == 0 and configured.meter_events == {}

    result = _run_share_job(client, after=timedelta(hours=25))
    assert result["unfinished_uploads_expired"] == 1, result
    # The share never existed: its charge is given back, everywhere.
    after = usage(client, key)
    assert after["cost_this_period_cents"] == 0 and after["shares"] == 0
    assert (after["key"]["shares"], after["key"]["cost_this_period_cents"]) == (0, 0)
    assert held() == [] and outbox() == []
    assert report()["sent"] == 0 and configured.meter_events == {}
    # The budget it held is free again.
    assert start_presigned(client, key, FILES, name="third")[0] == 201


def test_a_completed_agent_tier_upload_is_billed_once(client, agent, configured):
    token, _, customer = agent
    status, started, _ = start_presigned(client, token, FILES)
    assert status == 201, started
    upload_files(started)
    assert report()["sent"] == 0
    status, done, _ = call(client, "POST", f"/shares/{started['share_id']}/complete", token=token)
    assert (status, done["status"]) == (200, "active"), done
    assert held() == [] and len(share_events()) == 1
    assert report()["sent"] == 1
    assert configured.meter_totals() == {(SHARE_EVENT, customer): 1}
    assert f"share-{started['share_id']}" in configured.meter_events
    # Completing again, and the job, change nothing.
    assert call(client, "POST", f"/shares/{started['share_id']}/complete", token=token)[0] == 200
    _run_share_job(client, after=timedelta(days=2))
    assert usage(client, token)["cost_this_period_cents"] == 1 and outbox() == [] and held() == []


def test_an_agent_tier_upload_deleted_before_completion_is_not_billed(client, agent, configured):
    token, _, _ = agent
    started = start_presigned(client, token, FILES)[1]
    assert usage(client, token)["cost_this_period_cents"] == 1
    assert call(client, "DELETE", f"/shares/{started['share_id']}", token=token)[0] == 200
    assert usage(client, token)["cost_this_period_cents"] == 0
    assert held() == [] and outbox() == [] and report()["sent"] == 0
    # A completed share deleted later was billed: it existed.
    started = start_presigned(client, token, FILES, name="kept")[1]
    upload_files(started)
    assert call(client, "POST", f"/shares/{started['share_id']}/complete", token=token)[0] == 200
    assert call(client, "DELETE", f"/shares/{started['share_id']}", token=token)[0] == 200
    assert usage(client, token)["cost_this_period_cents"] == 1 and len(share_events()) == 1


def test_an_unfinished_agent_tier_upload_kept_for_its_feedback_is_billed(client, agent, configured):
    token, _, customer = agent
    started = start_presigned(client, token, FILES)[1]
    assert call(client, "POST", "/spikes", {"type": "page", "projectKey": started["share_id"],
                                            "comments": "seen before completion"})[0] == 201
    result = _run_share_job(client, after=timedelta(days=2))
    assert result["unfinished_uploads_kept"] == 1, result
    # The share stays, with its feedback, in its owner's limit: it exists, so it is billed.
    assert held() == [] and len(share_events()) == 1
    assert usage(client, token)["cost_this_period_cents"] == 2  # 1 + 0.1, rounded up
    report()
    assert configured.meter_totals()[(SHARE_EVENT, customer)] == 1
    # Completing it later bills nothing more.
    upload_files(started)
    assert call(client, "POST", f"/shares/{started['share_id']}/complete", token=token)[0] == 200
    assert outbox() == [] and report()["sent"] == 0


def test_free_tier_presigned_uploads_hold_no_charge(client, configured):
    token = sign_in(client, "free@example.com")
    assert start_presigned(client, token, FILES)[0] == 201
    assert held() == [] and outbox() == []
    assert _run_share_job(client, after=timedelta(days=2))["unfinished_uploads_expired"] == 1


# --- the races, on moto and on DynamoDB Local ----------------------------------------------------

@pytest.fixture
def agent_on_backend(backend_client, configured):
    token = sign_in(backend_client, EMAIL)
    uid = user_id_for(EMAIL)
    User(uid).update(actions=[User.tier.set(quotas.AGENT), User.stripe_customer_id.set("cus_agent")])
    return backend_client, token, uid


def period_cost(uid):
    item = charges.account_period(uid, clock.current_period())
    return int(item.cost or 0) if item else 0


def expire(share_id):
    """What the job does to one unfinished upload, as the share_deletions function."""
    with aws_calls.acting_as(policy.SHARE_DELETIONS_FUNCTION):
        share = share_store.get_by_id(share_id, consistent=True)
        charge = held_charges.get(metering.share_identifier(share_id))
        share_tombstones.tombstone_unfinished(share, also=held_charges.dropping(charge))


def test_an_expiry_landing_during_the_completion_drops_the_charge_and_refuses_it(agent_on_backend, monkeypatch):
    client, token, uid = agent_on_backend
    started = start_presigned(client, token, FILES)[1]
    upload_files(started)
    real_activate = share_store.activate

    def expired_just_before(share, locked=False, also=None):  # after the completion read the held charge
        expire(share.share_id)
        return real_activate(share, locked, also)
    monkeypatch.setattr(share_store, "activate", expired_just_before)
    status, error, _ = call(client, "POST", f"/shares/{started['share_id']}/complete", token=token)
    assert (status, error["code"]) == (404, "NOT_FOUND")
    # Expired: not kept, and not billed.
    assert Share.get(f"share#{started['share_id']}").status == "deleting"
    assert held() == [] and outbox() == [] and period_cost(uid) == 0
    assert queued(share_work.DELETIONS) == [started["share_id"]]


def test_a_completion_landing_during_the_expiry_keeps_the_share_and_its_charge(agent_on_backend):
    client, token, uid = agent_on_backend
    started = start_presigned(client, token, FILES)[1]
    upload_files(started)
    stale = share_store.get_by_id(started["share_id"], consistent=True)
    charge = held_charges.get(metering.share_identifier(started["share_id"]))  # the job read it ...
    assert call(client, "POST", f"/shares/{started['share_id']}/complete", token=token)[0] == 200  # ... then this
    with pytest.raises(share_tombstones.NoLongerPending):
        share_tombstones.tombstone_unfinished(stale, also=held_charges.dropping(charge))
    # Kept, and billed once.
    assert Share.get(f"share#{started['share_id']}").status == "active"
    assert held() == [] and len(share_events()) == 1 and period_cost(uid) == 1000
