"""Usage events parked in the dead queue (``meter#dead``), for an operator: what each is and
why it was parked, putting one back to be sent, or dropping it (``python -m tools.usage_events``,
docs/agents.md).

Parked as "refused": Stripe answered with a refusal (no customer on the account, a customer
deleted at Stripe, a meter missing): requeue it once the cause is fixed. Parked as "unknown":
an attempt's answer was never recorded, or Stripe holds its key with other parameters, so
Stripe may have billed it: look its identifier up at Stripe first, then drop it if Stripe has
it, or requeue it with ``force`` if not. Requeuing one refuses without ``force``, and ``force``
applies to one named event only, never to all: an event is parked as unknown once its attempt
has gone unanswered longer than Stripe keeps identifiers, so Stripe will not recognise it as a
duplicate, and the operator's lookup is the only thing between a requeue and a double charge.

A requeued event goes back to its shard as a new one (no lease, no attempt unanswered, its
timestamp fixed again at its next send) and is sent under a new idempotency key: Stripe
answers a key it holds with that key's first answer, so the old key would repeat the refusal
or the ``IdempotencyError``. Its ``identifier`` stays, which makes Stripe count it once only
within 24 hours of the attempt Stripe may hold (``deduplicated_by_stripe`` in the answer).
Every write is conditioned on the parked event
being as listed; two operators at once cannot both act on it.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Dict, List, Optional

from chalicelib import clock
from chalicelib.errors import Conflict, NotFound
from chalicelib.logs import get_logger
from chalicelib.services import usage_report
from chalicelib.store import meter_events
from chalicelib.store.models import OutboxItem

log = get_logger("spikes.parked_usage")

UNKNOWN = "unknown"
REFUSED = "refused"


def _iso(epoch: Optional[float]) -> Optional[str]:
    return None if epoch is None else clock.iso(datetime.fromtimestamp(int(epoch), timezone.utc))


def parked_as(item: OutboxItem) -> str:
    """``unknown`` when Stripe may hold the event: an attempt was sent and its answer never
    recorded (``unanswered_since``), which an ``IdempotencyError`` also leaves. A refusal under
    the unanswered attempts' own key answers for them (the job then parks it without one)."""
    unknown = item.unanswered_since is not None or (item.last_error or "").startswith("IdempotencyError")
    return UNKNOWN if unknown else REFUSED


def describe(item: OutboxItem) -> Dict[str, Any]:
    return {"identifier": item.identifier, "parked_as": parked_as(item), "reason": item.last_error,
            "event_name": item.event_name, "user_id": item.user_id, "customer_id": item.customer_id,
            "value": int(item.value or 0), "charged_at": _iso(item.timestamp), "attempts": int(item.attempts or 0),
            "unanswered_since": _iso(item.unanswered_since), "sent_timestamp": _iso(item.send_timestamp),
            "requeued_before": int(item.requeues or 0)}


def parked() -> List[Dict[str, Any]]:
    """Every parked event, oldest charge first."""
    return [describe(item) for item in meter_events.parked()]


def _find(identifier: str) -> OutboxItem:
    item = meter_events.parked_event(identifier)
    if item is None:
        raise NotFound(f"No parked usage event {identifier!r} (list them with `list`)")
    return item


def _deduplicated_by_stripe(item: OutboxItem, now: float) -> bool:
    """Whether Stripe still keeps the identifier of the attempt it may hold (24 hours, less the
    report's margin)."""
    return item.unanswered_since is not None and now - int(item.unanswered_since) <= usage_report.RESEND_WINDOW_SECONDS


def _requeue_item(item: OutboxItem, force: bool) -> Dict[str, Any]:
    now = clock.epoch()
    if parked_as(item) == UNKNOWN and not force:
        stale = "" if _deduplicated_by_stripe(item, now) else \
            " Its first attempt is over 24 hours old, so Stripe would not recognise a resend as a duplicate."
        raise Conflict(f"Stripe may hold {item.identifier} (parked as unknown: {item.last_error}).{stale} Look it "
                       "up at Stripe (the meter's events for the customer): drop it if Stripe has it, requeue it "
                       "by its identifier with --force if not")
    note = f"Requeued at {clock.iso(clock.now())}; had been parked: {item.last_error}"
    if not meter_events.requeue(item, note[:1000]):
        raise Conflict(f"{item.identifier} changed or left the dead queue since it was read: list again")
    log.warning("usage.requeued", identifier=item.identifier, parked_as=parked_as(item), forced=force)
    answer: Dict[str, Any] = {"identifier": item.identifier, "requeued": True,
                              "forced": force and parked_as(item) == UNKNOWN}
    if answer["forced"]:
        answer["deduplicated_by_stripe"] = _deduplicated_by_stripe(item, now)
    return answer


def requeue(identifier: str, force: bool = False) -> Dict[str, Any]:
    """Put one parked event back to be sent by the next run of the usage report."""
    return _requeue_item(_find(identifier), force)


def requeue_all() -> Dict[str, Any]:
    """Every event parked as refused; those parked as unknown are listed with why they were
    left (each needs a lookup at Stripe, then ``requeue`` by its identifier with ``force``)."""
    requeued, left = [], []
    for item in meter_events.parked():
        try:
            requeued.append(_requeue_item(item, force=False)["identifier"])
        except Conflict as exc:
            left.append({"identifier": item.identifier, "error": exc.message})
    return {"requeued": requeued, "left": left}


def drop(identifier: str) -> Dict[str, Any]:
    """Delete a parked event for good: Stripe has it, or it is not to be billed."""
    item = _find(identifier)
    if not meter_events.drop(item):
        raise Conflict(f"{identifier} changed or left the dead queue since it was read: list again")
    log.warning("usage.parked_dropped", identifier=identifier, parked_as=parked_as(item), reason=item.last_error)
    return {"identifier": identifier, "dropped": True}
