"""Reporting the agent tier's usage events to Stripe's Billing Meters, off the request path
(the scheduled ``usage_report`` function, every 5 minutes).

Each run reads the queues oldest first, leases each event with a conditional write, sends it
to the account's current Stripe customer (read then, not when the event was queued) with
Stripe's ``identifier`` and an idempotency key both derived from our ids, and once Stripe
accepted it keeps a copy for 35 days (what Stripe may report invalid later) and deletes it. Stripe unreachable, rate-limiting or erroring leaves events where
they are, retried with backoff; an event Stripe refuses for good goes to the dead queue.

A retry must be the very request Stripe may already hold: Stripe answers a repeated key with
its first answer, and refuses it (``IdempotencyError``) when the parameters differ. So the
timestamp sent is fixed on the event while an attempt is unanswered (a crash between Stripe's
answer and the delete, a timeout, a 5xx), from a conditional write just before the send (not
the lease: a crash between the two is an event Stripe never saw, sent as usual later). Stripe deduplicates keys and identifiers for 24
hours only: an event unanswered for longer (``RESEND_WINDOW_SECONDS``) is not sent again, which
could bill it twice, but moved to the dead queue for review, as is one whose key Stripe holds
with other parameters (whether that first request was billed cannot be told). ``stripe`` is
imported on first use (cold starts of the API, which imports the jobs' blueprint, stay light).
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable, Dict, Optional

from chalicelib import clock
from chalicelib.logs import get_logger
from chalicelib.settings import Settings
from chalicelib.store import accounts as account_store
from chalicelib.store import meter_events
from chalicelib.store.models import OutboxItem

log = get_logger("spikes.usage_report")

LEASE_SECONDS = 120
MAX_BACKOFF_SECONDS = 3600
# Stripe takes meter events up to 35 days old; older ones are sent as of 34 days ago (the day
# left covers the resend window below).
MAX_EVENT_AGE_SECONDS = 34 * 24 * 3600
# Stripe keeps idempotency keys and meter event identifiers for at least 24 hours; an hour's
# margin for clocks and for the attempt itself.
RESEND_WINDOW_SECONDS = 23 * 3600


def report(settings: Settings, client_factory: Callable[[], Any], now: Optional[float] = None,
           time_left_ms: Optional[Callable[[], float]] = None) -> Dict[str, Any]:
    """Send due usage events to Stripe, oldest first, until none is left, Stripe fails or the
    Lambda's time runs short. Safe to run concurrently and to repeat."""
    time_left_ms = time_left_ms or (lambda: float("inf"))
    result = {"sent": 0, "retry_later": 0, "dead": 0, "skipped": 0, "status": "done"}
    if not settings.stripe_secret_key:
        result["status"] = "billing-not-configured"
        return result
    client = client_factory()
    for queue in meter_events.QUEUES:
        now_ts = clock.epoch() if now is None else now
        for item in meter_events.due(queue, now_ts):
            # Always at least one event per run, so reporting progresses under any timeout.
            if (result["sent"] or result["dead"] or result["skipped"]) and time_left_ms() < settings.job_time_reserve_ms:
                result["status"] = "paused"
                return result
            outcome = _report_one(client, item, now_ts)
            result[outcome] += 1
            if outcome == "retry_later":  # Stripe is down or refusing us: stop, keep the order
                result["status"] = "stripe-unavailable"
                return result
    log.info("usage.reported", **result)
    return result


def _retryable():
    import stripe
    return (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError, stripe.AuthenticationError,
            stripe.PermissionError)


def _unseen_by_stripe(exc: Exception) -> bool:
    """Stripe refused to look at the request (rate limit, API key), or the connection was never
    opened (refused, unresolvable, connect timeout): Stripe cannot hold the event. A timeout
    or a connection lost after sending, a 5xx or a 409 may follow work Stripe did."""
    import stripe
    from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
    if isinstance(exc, (stripe.RateLimitError, stripe.AuthenticationError, stripe.PermissionError)):
        return True
    cause = exc.__cause__ if isinstance(exc, stripe.APIConnectionError) else None
    reason = getattr(cause.args[0], "reason", None) if cause is not None and cause.args else None
    return isinstance(reason, (NewConnectionError, ConnectTimeoutError))


def _report_one(client, item: OutboxItem, now: float) -> str:
    import stripe
    unanswered_before = item.unanswered_since
    if not meter_events.lease(item, now, LEASE_SECONDS):
        return "skipped"  # another run is sending it
    if unanswered_before is not None and now - unanswered_before > RESEND_WINDOW_SECONDS:
        # Stripe may hold it (accepted, then the answer or our delete was lost) and no longer
        # deduplicates it: sent again, it could be billed twice.
        return _bury_unknown(item, f"Unanswered since {_iso(unanswered_before)}, longer than Stripe deduplicates "
                                   "(24 hours)")
    # The customer the account has now, not the one it had when charged: a customer deleted at
    # Stripe is replaced at the next checkout (billing.ensure_customer), and an event still
    # naming the deleted one would be refused, or accepted and billed to no one.
    customer_id = account_store.stripe_customer(item.user_id) or item.customer_id
    if not customer_id:
        meter_events.bury(item, "The account has no Stripe customer")
        return "dead"
    # Recorded just before the send, not at the lease: a run that dies before sending (the
    # customer's read failed, the Lambda timed out) leaves an event Stripe never saw, which is
    # sent later rather than parked as unknown.
    if not meter_events.record_attempt(item, now, int(max(item.timestamp, now - MAX_EVENT_AGE_SECONDS)), customer_id):
        return "skipped"  # the lease ran out and another run took the event
    # Stripe answers a key it holds with its first answer, for 24 hours: refused under the key
    # of every unanswered attempt (one customer, within the 23 hours above), none was billed.
    same_key = unanswered_before is not None and item.unanswered_customer == customer_id
    try:
        try:
            _send(client, item, customer_id)
        except stripe.InvalidRequestError:
            replacement = account_store.stripe_customer(item.user_id)
            if not replacement or replacement == customer_id:
                raise
            # Replaced between the read above and Stripe's answer: the event is the new one's.
            customer_id = replacement
            if not meter_events.record_attempt(item, now, int(item.send_timestamp), customer_id):
                return "skipped"
            _send(client, item, customer_id)
    except stripe.IdempotencyError as exc:
        # The key was used with other parameters (an earlier version of this job sent old events
        # with a timestamp that moved between attempts): that request may have been billed.
        item.customer_id = customer_id
        return _bury_unknown(item, f"IdempotencyError: Stripe holds this event's key with other parameters "
                                   f"({str(exc)[:200]})")
    except _retryable() as exc:
        delay = min(MAX_BACKOFF_SECONDS, 60 * 2 ** int(item.attempts or 0))
        unanswered = unanswered_before if _unseen_by_stripe(exc) else item.unanswered_since
        meter_events.retry_later(item, int(now) + delay, f"{type(exc).__name__}: {str(exc)[:200]}", unanswered)
        log.warning("usage.report_deferred", identifier=item.identifier, error=type(exc).__name__)
        return "retry_later"
    except stripe.StripeError as exc:
        item.customer_id = customer_id  # the dead event shows the customer Stripe refused
        answered = same_key and isinstance(exc, stripe.InvalidRequestError)
        item.unanswered_since = None if answered else unanswered_before
        detail = f"{type(exc).__name__}: {str(exc)[:300]}"
        if answered:
            detail += f" (refused under the key of the attempt unanswered since {_iso(unanswered_before)})"
        meter_events.bury(item, detail)
        log.error("usage.report_refused", identifier=item.identifier, error=type(exc).__name__, detail=str(exc)[:300])
        return "dead"
    meter_events.sent(item, customer_id, now)
    return "sent"


def _iso(epoch: float) -> str:
    return clock.iso(datetime.fromtimestamp(epoch, timezone.utc))


def _bury_unknown(item: OutboxItem, reason: str) -> str:
    error = (f"{reason}: whether Stripe billed it is unknown. Look for meter event identifier "
             f"{item.identifier} at Stripe before sending it again.")
    meter_events.bury(item, error)
    log.error("usage.report_unknown", identifier=item.identifier, detail=error)
    return "dead"


def _send(client, item: OutboxItem, customer_id: str) -> None:
    # One key per event and customer: Stripe keeps a request's answer, refusals included, under
    # its key and refuses the key with other parameters, so the event sent again to a replacement
    # customer needs its own (the identifier stays: Stripe still counts the event once). No
    # retries inside the library: each attempt's outcome is recorded on its own (the next run
    # retries). A requeued event (tools/usage_events.py) gets a key of its own as well: under the
    # old one Stripe would repeat the refusal or the IdempotencyError it keeps.
    requeued = f"-r{int(item.requeues)}" if item.requeues else ""
    client.v1.billing.meter_events.create(
        params={"event_name": item.event_name, "identifier": item.identifier, "timestamp": int(item.send_timestamp),
                "payload": {"stripe_customer_id": customer_id, "value": str(int(item.value))}},
        options={"idempotency_key": f"spikes-meter-{item.identifier}-{customer_id}{requeued}",
                 "max_network_retries": 0})
