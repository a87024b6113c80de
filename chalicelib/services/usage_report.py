"""Reporting the agent tier's usage events to Stripe's Billing Meters, off the request path
(the scheduled ``usage_report`` function, every 5 minutes).

Each run reads the queues oldest first, leases each event with a conditional write, sends it
to the account's current Stripe customer (read then, not when the event was queued) with
Stripe's ``identifier`` and an idempotency key both derived from our ids, and deletes it
once Stripe accepted it: a run that dies between Stripe's answer and the delete re-sends
something Stripe already holds and keeps once. Stripe unreachable, rate-limiting or erroring
leaves events where they are, retried with backoff, for as long as it takes; an event Stripe
refuses for good goes to the dead queue. ``stripe`` is imported on first use (cold starts of
the API, which imports the jobs' blueprint, stay light).
"""
from __future__ import annotations

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
# Stripe takes meter events up to 35 days old; older ones are sent as of 34 days ago.
MAX_EVENT_AGE_SECONDS = 34 * 24 * 3600


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


def _report_one(client, item: OutboxItem, now: float) -> str:
    import stripe
    if not meter_events.lease(item, now, LEASE_SECONDS):
        return "skipped"  # another run is sending it
    # The customer the account has now, not the one it had when charged: a customer deleted at
    # Stripe is replaced at the next checkout (billing.ensure_customer), and an event still
    # naming the deleted one would be refused, or accepted and billed to no one.
    customer_id = account_store.stripe_customer(item.user_id) or item.customer_id
    if not customer_id:
        meter_events.bury(item, "The account has no Stripe customer")
        return "dead"
    try:
        try:
            _send(client, item, customer_id, now)
        except stripe.InvalidRequestError:
            replacement = account_store.stripe_customer(item.user_id)
            if not replacement or replacement == customer_id:
                raise
            # Replaced between the read above and Stripe's answer: the event is the new one's.
            customer_id = replacement
            _send(client, item, customer_id, now)
    except stripe.IdempotencyError:
        pass  # Stripe already has a request under this key: the event was reported
    except _retryable() as exc:
        delay = min(MAX_BACKOFF_SECONDS, 60 * 2 ** int(item.attempts or 0))
        meter_events.retry_later(item, int(now) + delay, f"{type(exc).__name__}: {str(exc)[:200]}")
        log.warning("usage.report_deferred", identifier=item.identifier, error=type(exc).__name__)
        return "retry_later"
    except stripe.StripeError as exc:
        item.customer_id = customer_id  # the dead event shows the customer Stripe refused
        meter_events.bury(item, f"{type(exc).__name__}: {str(exc)[:300]}")
        log.error("usage.report_refused", identifier=item.identifier, error=type(exc).__name__, detail=str(exc)[:300])
        return "dead"
    meter_events.sent(item)
    return "sent"


def _send(client, item: OutboxItem, customer_id: str, now: float) -> None:
    # One key per event and customer: Stripe keeps a request's answer, refusals included, under
    # its key and refuses the key with other parameters, so the event sent again to a replacement
    # customer needs its own (the identifier stays: Stripe still counts the event once).
    client.v1.billing.meter_events.create(
        params={"event_name": item.event_name, "identifier": item.identifier,
                "timestamp": int(max(item.timestamp, now - MAX_EVENT_AGE_SECONDS)),
                "payload": {"stripe_customer_id": customer_id, "value": str(int(item.value))}},
        options={"idempotency_key": f"spikes-meter-{item.identifier}-{customer_id}"})
