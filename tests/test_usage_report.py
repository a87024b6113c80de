"""The usage_report job against Stripe's idempotency and its 24-hour deduplication
(docs/security.md, findings 38 and 39): a retry is the very request Stripe may hold, a key
Stripe holds with other parameters is not taken for "already reported", and an event whose
answer was lost is not sent again once Stripe no longer deduplicates it. Each test failed
before its fix. In-process with moto and the local fake of Stripe; the store's lease also on
DynamoDB Local."""
from __future__ import annotations

import json
import time

import pytest

from chalicelib import deps
from chalicelib.services import usage_report
from chalicelib.store import meter_events
from chalicelib.store.models import OutboxItem
from chalicelib.store.transactions import run
from tests.fakes.stripe_api import DEDUPE_SECONDS
from tests.test_agent_tier import SHARE_EVENT, agent, configured, dead_port, outbox, report  # noqa: F401 - fixtures
from tests.test_shares import share_site

DAY = 24 * 3600
METER_EVENTS = "/v1/billing/meter_events"


def sends(fake):
    return [(r.headers.get("idempotency-key"), r.form) for r in fake.calls(METER_EVENTS)]


def age(item: OutboxItem, seconds: float) -> None:
    """The event was charged ``seconds`` ago (queued while Stripe was out of reach, say)."""
    item.update(actions=[OutboxItem.timestamp.set(int(time.time() - seconds))])


def logged(capsys, event: str) -> list:
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("event") == event]


# --- 38. A retry is the same request; a key held with other parameters is not "reported" --------

def test_an_old_events_retry_sends_the_timestamp_of_its_first_attempt(client, agent, configured):
    """An event older than 34 days goes out as of 34 days ago. That clamp moved with every
    attempt, so a retry under the same key differed from the request Stripe kept (here a 500,
    which Stripe repeats to the same request): Stripe answered IdempotencyError, and the job
    took that for "already reported" and deleted an event Stripe never billed."""
    token, _, customer = agent
    share_site(client, token)
    [item] = outbox()
    age(item, 40 * DAY)
    start = time.time()
    configured.fail_next(500, saved=True)  # Stripe began, failed, and keeps that answer under the key
    assert report(now=start)["status"] == "stripe-unavailable"
    assert report(now=start + 2 * 3600)["status"] == "stripe-unavailable"
    first, second = sends(configured)
    assert first == second  # the same key, the same timestamp: Stripe's saved answer again
    assert int(first[1]["timestamp"]) == int(start - usage_report.MAX_EVENT_AGE_SECONDS)
    [queued] = outbox()
    assert int(queued.attempts) == 2 and configured.meter_totals() == {}
    # Unanswered for longer than Stripe deduplicates: not guessed at, kept aside for review.
    configured.advance(DEDUPE_SECONDS + 3600)
    result = report(now=start + DEDUPE_SECONDS + 3600)
    assert result["dead"] == 1 and result["sent"] == 0 and outbox() == []
    [dead] = outbox(meter_events.DEAD_QUEUE)
    assert "Unanswered since" in dead.last_error and dead.identifier in dead.last_error
    assert len(sends(configured)) == 2 and configured.meter_totals() == {}


def test_a_key_stripe_holds_with_other_parameters_is_not_taken_for_reported(client, agent, configured, capsys):
    """An IdempotencyError says the key was used with other parameters (by the job before this
    fix, whose timestamps moved), not that the event was billed: it goes to the dead queue with
    what to check, and is logged as an error, instead of being deleted as sent."""
    token, _, customer = agent
    share = share_site(client, token)
    [item] = outbox()
    key = f"spikes-meter-{item.identifier}-{customer}"
    configured.fail_next(500, saved=True)
    with pytest.raises(Exception):  # the old job's attempt, with a timestamp since moved on
        deps.stripe_client().v1.billing.meter_events.create(
            params={"event_name": SHARE_EVENT, "identifier": item.identifier, "timestamp": int(item.timestamp) - 60,
                    "payload": {"stripe_customer_id": customer, "value": "1"}},
            options={"idempotency_key": key, "max_network_retries": 0})
    capsys.readouterr()
    result = report()
    assert result["sent"] == 0 and result["dead"] == 1 and outbox() == []
    [dead] = outbox(meter_events.DEAD_QUEUE)
    assert dead.identifier == f"share-{share['share_id']}" and dead.customer_id == customer
    assert dead.last_error.startswith("IdempotencyError") and "unknown" in dead.last_error
    [entry] = logged(capsys, "usage.report_unknown")
    assert entry["level"] == "error" and entry["identifier"] == dead.identifier
    assert configured.meter_totals() == {}


def report_dying_before_the_delete(monkeypatch) -> float:
    """A run whose Lambda is killed after Stripe accepted the event, before its delete: when."""
    original = OutboxItem.delete

    def crash_once(self, *args, **kwargs):
        monkeypatch.setattr(OutboxItem, "delete", original)
        raise RuntimeError("Lambda killed after Stripe answered")
    monkeypatch.setattr(OutboxItem, "delete", crash_once)
    start = time.time()
    with pytest.raises(RuntimeError):
        report(now=start)
    return start


# --- 39. An event whose answer was lost is not billed twice after Stripe forgot it ---------------

def test_an_accepted_event_left_queued_past_stripes_dedupe_window_is_not_billed_twice(client, agent, configured,
                                                                                    monkeypatch):
    """Stripe accepted the event, the run died before deleting it, and the next run to get
    through came more than 24 hours later (the schedule stopped, DynamoDB or Stripe out):
    Stripe had forgotten the key and the identifier, and counted the event again."""
    token, _, customer = agent
    share_site(client, token)
    start = report_dying_before_the_delete(monkeypatch)
    assert configured.meter_totals() == {(SHARE_EVENT, customer): 1} and len(outbox()) == 1
    configured.advance(DEDUPE_SECONDS + 3600)
    result = report(now=start + DEDUPE_SECONDS + 3600)
    assert configured.meter_totals() == {(SHARE_EVENT, customer): 1}  # billed once
    assert result["dead"] == 1 and result["sent"] == 0
    [dead] = outbox(meter_events.DEAD_QUEUE)
    assert "longer than Stripe deduplicates" in dead.last_error and len(sends(configured)) == 1
    assert dead.unanswered_since == int(start)  # recorded before the send


def test_a_lost_answer_is_resent_as_the_same_request_within_the_window(client, agent, configured, env):
    """A timeout after Stripe did the work: the next attempt, within the window, repeats the
    request, gets Stripe's first answer and deletes the event; billed once."""
    token, _, customer = agent
    share_site(client, token)
    env(STRIPE_TIMEOUT_SECONDS="0.3")
    configured.delays.append(1.0)  # Stripe answers after the client gave up
    start = time.time()
    assert report(now=start)["status"] == "stripe-unavailable"
    [queued] = outbox()
    assert queued.unanswered_since == int(start) and "APIConnectionError" in queued.last_error
    later = start + usage_report.RESEND_WINDOW_SECONDS - 60
    configured.advance(later - start)
    assert report(now=later)["sent"] == 1 and outbox() == []
    first, second = sends(configured)
    assert first == second and configured.meter_totals() == {(SHARE_EVENT, customer): 1}


def test_attempts_stripe_never_saw_do_not_start_the_window(client, agent, configured, env):
    """Connections refused and rate limits prove Stripe holds nothing: an outage of days is
    waited out, and an old event is then sent as of 34 days before that send."""
    token, _, customer = agent
    share_site(client, token)
    [item] = outbox()
    age(item, 40 * DAY)
    start = time.time()
    configured.fail_next(429, "rate_limit_error", "Too many requests")
    assert report(now=start)["status"] == "stripe-unavailable"
    env(STRIPE_API_BASE=f"http://127.0.0.1:{dead_port()}")
    for hour in range(1, 47, 6):
        assert report(now=start + hour * 3600)["status"] == "stripe-unavailable"
    [queued] = outbox()
    assert queued.unanswered_since is None and int(queued.attempts) >= 5
    env(STRIPE_API_BASE=configured.url)
    configured.advance(2 * DAY)
    assert report(now=start + 2 * DAY)["sent"] == 1 and outbox(meter_events.DEAD_QUEUE) == []
    assert configured.meter_totals() == {(SHARE_EVENT, customer): 1}
    sent = configured.meter_event_log[0]
    assert sent["timestamp"] == int(start + 2 * DAY - usage_report.MAX_EVENT_AGE_SECONDS)


def test_a_lease_keeps_an_unanswered_attempts_request_and_acts_only_on_what_it_read(store_backend):
    """The store's side, on moto and DynamoDB Local: the attempt recorded before the first send
    fixes the timestamp and starts the unanswered time; a lease after it keeps both; a lease
    from a stale read fails."""
    run(lambda tx: meter_events.add(tx, "share-sh_lease", SHARE_EVENT, "u1", "cus_1", 1_000))
    [stale] = list(OutboxItem.query(meter_events.queue_of("share-sh_lease")))
    [item] = list(OutboxItem.query(meter_events.queue_of("share-sh_lease")))
    assert meter_events.lease(item, 5_000, 120) is True
    assert meter_events.record_attempt(item, 5_000, 1_000, "cus_1") is True
    assert (item.send_timestamp, item.unanswered_since, item.lease_until) == (1_000, 5_000, 5_120)
    assert meter_events.lease(stale, 9_000, 120) is False  # it read no unanswered attempt
    meter_events.retry_later(item, 6_000, "APIError: boom", 5_000)  # a 5xx: still unanswered
    fresh = OutboxItem.get(item.queue, item.event_key, consistent_read=True)
    assert meter_events.lease(fresh, 9_000, 120) is True
    assert meter_events.record_attempt(fresh, 9_000, 4_000, "cus_1") is True
    assert (fresh.send_timestamp, fresh.unanswered_since) == (1_000, 5_000)  # the same request again
    assert fresh.unanswered_customer == "cus_1"
    meter_events.retry_later(fresh, 10_000, "RateLimitError", None)  # as if nothing had been unanswered
    fresh = OutboxItem.get(item.queue, item.event_key, consistent_read=True)
    assert fresh.unanswered_since is None and fresh.lease_until is None and fresh.unanswered_customer is None
    assert meter_events.lease(fresh, 20_000, 120) is True
    assert meter_events.record_attempt(fresh, 20_000, 7_000, "cus_1") is True
    assert (fresh.send_timestamp, fresh.unanswered_since) == (7_000, 20_000)
    # A retry to another customer (another key): no one customer's refusal covers both attempts.
    assert meter_events.record_attempt(fresh, 20_100, 7_000, "cus_2") is True
    fresh = OutboxItem.get(item.queue, item.event_key, consistent_read=True)
    assert fresh.unanswered_customer is None and fresh.unanswered_since == 20_000


# --- 42. A run that dies before sending leaves an event Stripe never saw, sent later ------------

def test_a_run_that_dies_before_sending_does_not_park_the_event_as_unknown(client, agent, configured, monkeypatch):
    """The lease used to count as the attempt: a run that died between it and the send (here
    the customer's read fails, as when DynamoDB throttles or the Lambda times out) left the
    event "unanswered", and a next run more than 23 hours later parked it in the dead queue
    as unknown although Stripe never saw it: usage left unbilled until someone looked."""
    token, uid, customer = agent
    share_site(client, token)

    def store_fails(user_id):
        raise RuntimeError("DynamoDB unavailable")
    monkeypatch.setattr(usage_report.account_store, "stripe_customer", store_fails)
    start = time.time()
    with pytest.raises(RuntimeError):
        report(now=start)
    [queued] = outbox()
    assert queued.lease_until is not None and queued.unanswered_since is None and queued.send_timestamp is None
    monkeypatch.undo()
    later = start + DEDUPE_SECONDS + 3600
    configured.advance(later - start)
    result = report(now=later)
    assert (result["sent"], result["dead"]) == (1, 0) and outbox() == [] and outbox(meter_events.DEAD_QUEUE) == []
    assert configured.meter_totals() == {(SHARE_EVENT, customer): 1} and len(sends(configured)) == 1


def test_the_attempt_is_recorded_only_under_the_runs_own_lease(store_backend):
    """On moto and DynamoDB Local: a run whose lease ran out and was taken over records no
    attempt (it must not send); a repeat of the same record (a retried write) succeeds."""
    run(lambda tx: meter_events.add(tx, "share-sh_attempt", SHARE_EVENT, "u1", "cus_1", 1_000))
    [slow] = list(OutboxItem.query(meter_events.queue_of("share-sh_attempt")))
    assert meter_events.lease(slow, 5_000, 120) is True and slow.unanswered_since is None
    [other] = list(OutboxItem.query(meter_events.queue_of("share-sh_attempt")))
    assert meter_events.lease(other, 5_200, 120) is True  # the first lease ran out
    assert meter_events.record_attempt(slow, 5_210, 1_000, "cus_1") is False
    assert meter_events.record_attempt(other, 5_210, 1_000, "cus_1") is True
    other.unanswered_since = None  # as if the write's first answer had been lost
    assert meter_events.record_attempt(other, 5_210, 1_000, "cus_1") is True
    stored = OutboxItem.get(other.queue, other.event_key, consistent_read=True)
    assert (stored.unanswered_since, stored.send_timestamp, stored.lease_until) == (5_210, 1_000, 5_320)
