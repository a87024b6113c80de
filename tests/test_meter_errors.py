"""POST /webhooks/stripe/meter-errors: Stripe's event destination reporting meter events it found
invalid after accepting them (chalicelib/services/meter_errors.py, docs/agents.md). Thin events
signed exactly as Stripe signs them, no mocked verification; the report read back from the
local fake of Stripe (``GET /v2/core/events/{id}``); the usage report's copies of what it sent
(``meter-sent#<shard>``); the store's moves also on DynamoDB Local."""
from __future__ import annotations

import json
import time

import pytest

from chalicelib.services import parked_usage
from chalicelib.store import ledger, meter_events
from chalicelib.store.models import LedgerItem, OutboxItem, User
from chalicelib.store.transactions import run
from tests.conftest import call
from tests.fakes.stripe_events import DESTINATION_SECRET, WEBHOOK_SECRET, meter_error_report, sign, thin
from tests.test_agent_tier import SHARE_EVENT, agent, configured, outbox, report  # noqa: F401 - fixtures
from tests.test_shares import share_site
from tests.test_usage_report import logged

ROUTE = "/webhooks/stripe/meter-errors"
NOT_FOUND = "meter_event_customer_not_found"


@pytest.fixture
def destination(env, configured):
    env(STRIPE_EVENT_DESTINATION_SECRET=DESTINATION_SECRET)
    return configured


def deliver(client, notification, secret=DESTINATION_SECRET, timestamp=None, signature=None):
    raw = json.dumps(notification)
    headers = {"Stripe-Signature": signature if signature is not None else sign(raw, secret, timestamp)}
    return call(client, "POST", ROUTE, raw=raw.encode(), headers=headers)


def published(stripe, samples, **kwargs) -> dict:
    """Stripe creates a report and notifies the destination: (the thin notification)."""
    event = meter_error_report(samples, **kwargs)
    stripe.publish(event)
    return thin(event)


def sent_one(client, token) -> OutboxItem:
    """A share charged and reported: Stripe accepted it (200), a copy is kept."""
    share_site(client, token)
    assert report()["sent"] == 1 and outbox() == []
    [copy] = [item for queue in meter_events.SENT_QUEUES for item in OutboxItem.query(queue)]
    return copy


def test_the_report_keeps_a_copy_of_what_stripe_accepted_for_35_days(client, agent, configured):
    token, uid, customer = agent
    before = int(time.time())
    copy = sent_one(client, token)
    assert (copy.event_key, copy.user_id, copy.customer_id, int(copy.value)) == (copy.identifier, uid, customer, 1)
    assert copy.event_name == SHARE_EVENT and copy.identifier.startswith("share-")
    assert before + meter_events.SENT_TTL_SECONDS <= int(copy.expires_at) <= int(time.time()) + meter_events.SENT_TTL_SECONDS
    assert meter_events.sent_copy(copy.identifier, time.time()) is not None
    assert meter_events.sent_copy(copy.identifier, copy.expires_at + 1) is None  # expired, whatever TTL lags


def test_signatures_are_checked_with_the_destinations_own_secret(client, agent, destination):
    notification = published(destination, {NOT_FOUND: ["share-unknown"]})
    for secret, timestamp in ((WEBHOOK_SECRET, None), (DESTINATION_SECRET, int(time.time()) - 600)):
        status, body, _ = deliver(client, notification, secret, timestamp)  # another endpoint's; too old
        assert (status, body["code"]) == (400, "INVALID_SIGNATURE")
    status, body, _ = deliver(client, notification, signature="")
    assert (status, body["code"]) == (400, "INVALID_SIGNATURE")
    raw = json.dumps(notification)
    tampered = raw.replace(notification["id"], "evt_test_someone_elses")
    status, _, _ = call(client, "POST", ROUTE, raw=tampered.encode(), headers={"Stripe-Signature": sign(raw, DESTINATION_SECRET)})
    assert status == 400
    # A snapshot event (what /webhooks/stripe takes) signed with this secret is not a thin event.
    snapshot = {**notification, "object": "event", "data": {"object": {}}}
    status, body, _ = deliver(client, snapshot)
    assert (status, body["code"]) == (400, "INVALID_SIGNATURE") and "thin event" in body["error"]
    assert destination.calls(f"/v2/core/events/{notification['id']}") == []  # nothing read before verifying
    assert deliver(client, notification)[:2] == (200, {"received": True, "outcome": "applied"})


def test_without_the_destinations_secret_stripe_is_told_to_retry(client, configured):
    notification = published(configured, {NOT_FOUND: ["share-x"]})
    status, body, headers = deliver(client, notification)
    assert (status, body["code"], headers["Retry-After"]) == (503, "BILLING_NOT_CONFIGURED", "3600")


def test_other_event_types_are_acknowledged_and_ignored(client, destination):
    notification = published(destination, {}, event_type="v1.billing.meter.created")
    assert deliver(client, notification)[:2] == (200, {"received": True, "outcome": "ignored"})
    assert destination.calls(f"/v2/core/events/{notification['id']}") == []


def test_a_missing_customer_replaced_since_is_sent_again_once_to_the_new_one(client, agent, destination, capsys):
    token, uid, old = agent
    copy = sent_one(client, token)
    destination.customers["cus_new"] = {"id": "cus_new", "object": "customer"}
    User(uid).update(actions=[User.stripe_customer_id.set("cus_new")])
    # Stripe samples the request by its idempotency key here, by the identifier elsewhere: both are ours.
    notification = published(destination, {NOT_FOUND: [f"spikes-meter-{copy.identifier}-{old}"]},
                             counts={NOT_FOUND: 3})
    capsys.readouterr()
    assert deliver(client, notification)[:2] == (200, {"received": True, "outcome": "applied"})
    [pending] = outbox()
    assert pending.identifier == f"{copy.identifier}-rpt1" and int(pending.attempts) == 0
    assert copy.identifier in pending.last_error and NOT_FOUND in pending.last_error
    [summary] = logged(capsys, "usage.meter_errors_reported")
    assert (summary["errors"], summary["sampled"], summary["unsampled"], summary["requeued"]) == (3, 1, 2, 1)
    assert summary["level"] == "error" and summary["meter"] == "mtr_test_1"
    # A redelivery changes nothing; the next run sends it to the account's customer now.
    assert deliver(client, notification)[:2] == (200, {"received": True, "outcome": "duplicate"})
    assert report()["sent"] == 1 and outbox() == []
    assert destination.meter_totals() == {(SHARE_EVENT, old): 1, (SHARE_EVENT, "cus_new"): 1}
    assert len(destination.calls(f"/v2/core/events/{notification['id']}")) == 1
    assert meter_events.sent_copy(copy.identifier, time.time()) is None
    assert meter_events.sent_copy(f"{copy.identifier}-rpt1", time.time()).customer_id == "cus_new"


def test_a_report_stripe_cannot_answer_is_delivered_again_and_then_handled(client, agent, destination):
    token, uid, _ = agent
    copy = sent_one(client, token)
    notification = published(destination, {"timestamp_too_far_in_past": [copy.identifier]})
    destination.fail_next(500)
    status, body, _ = deliver(client, notification)
    assert (status, body["code"]) == (503, "SERVICE_UNAVAILABLE")
    assert ledger.stripe_event_seen(notification["id"]) is False and outbox(meter_events.DEAD_QUEUE) == []
    assert deliver(client, notification)[:2] == (200, {"received": True, "outcome": "applied"})
    assert len(outbox(meter_events.DEAD_QUEUE)) == 1


def test_what_is_not_safe_to_resend_is_parked_for_the_operator(client, agent, destination):
    """The customer Stripe did not find is still the account's: nothing to send it to. Parked
    as refused, listed by `make usage-events`, and requeued by the operator once fixed."""
    token, uid, customer = agent
    copy = sent_one(client, token)
    notification = published(destination, {NOT_FOUND: [copy.identifier, "share-not-ours"]})
    assert deliver(client, notification)[:2] == (200, {"received": True, "outcome": "applied"})
    assert outbox() == []
    [listed] = parked_usage.parked()
    assert listed["identifier"] == f"{copy.identifier}-rpt1" and listed["parked_as"] == "refused"
    assert copy.identifier in listed["reason"] and listed["customer_id"] == customer and listed["user_id"] == uid
    marker = LedgerItem.get(ledger.stripe_event_key(notification["id"]))
    assert (marker.detail["parked"], marker.detail["unmatched"]) == (1, 1)
    assert parked_usage.requeue(listed["identifier"])["requeued"] is True
    assert report()["sent"] == 1
    assert destination.meter_totals() == {(SHARE_EVENT, customer): 2}  # the first one Stripe did not bill


def test_an_account_without_a_customer_now_is_parked(client, agent, destination):
    token, uid, _ = agent
    copy = sent_one(client, token)
    User(uid).update(actions=[User.stripe_customer_id.remove()])
    notification = published(destination, {"meter_event_no_customer_defined": [copy.identifier]},
                             event_type="v1.billing.meter.no_meter_found")
    assert deliver(client, notification)[:2] == (200, {"received": True, "outcome": "applied"})
    assert outbox() == [] and [p["identifier"] for p in parked_usage.parked()] == [f"{copy.identifier}-rpt1"]


def test_a_copy_is_moved_back_once_and_named_anew_each_time(store_backend):
    """On moto and DynamoDB Local: a copy read twice moves once (the second move is refused,
    nothing is written twice); each report of the same event gives it a new identifier."""
    run(lambda tx: meter_events.add(tx, "share-sh_copy", SHARE_EVENT, "u1", "cus_1", 1_000))
    [item] = list(OutboxItem.query(meter_events.queue_of("share-sh_copy")))
    meter_events.sent(item, "cus_2", 2_000)
    first, second = (meter_events.sent_copy("share-sh_copy", 2_001) for _ in range(2))
    assert first.customer_id == "cus_2" and int(first.expires_at) == 2_000 + meter_events.SENT_TTL_SECONDS
    again = meter_events.reported_identifier("share-sh_copy")
    assert again == "share-sh_copy-rpt1" and meter_events.reported_identifier(again) == "share-sh_copy-rpt2"
    assert meter_events.take_back(first, again, "reported", park=False) is True
    assert meter_events.take_back(second, again, "reported", park=True) is False
    assert list(meter_events.parked()) == [] and meter_events.sent_copy("share-sh_copy", 2_001) is None
    [pending] = list(OutboxItem.query(meter_events.queue_of(again)))
    assert (pending.identifier, int(pending.timestamp), pending.last_error) == (again, 1_000, "reported")
