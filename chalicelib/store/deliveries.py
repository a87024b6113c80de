"""Outbound webhook deliveries (the outbox): keys, indexes and the conditional writes that
move a delivery from pending to delivered, failed, paused or cancelled. docs/data-model.md
(``deliveries``) lists the access patterns."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Callable, List, Optional, Tuple

from chalicelib.store import ledger, webhook_releases
from chalicelib.store.models import Delivery, LedgerItem, Share
from pynamodb.exceptions import PutError

from chalicelib.store.transactions import ConditionFailed, Transaction, conditional_failed, run, update_if

PENDING, DELIVERED, FAILED, PAUSED, CANCELLED = "pending", "delivered", "failed", "paused", "cancelled"
# The due_index partitions (a sparse index: finished deliveries carry none): pending deliveries
# are in DUE, by the time of their next attempt; a share's held (paused) events in
# HELD_PREFIX + its id, by the time they were held, so ending them is a bounded query.
DUE = "due"
HELD_PREFIX = "held#"
# Finished deliveries stay listable this long, then the table's TTL removes them.
KEEP_FINISHED_SECONDS = 30 * 24 * 60 * 60
# Set once every event held by an earlier version is indexed by its share (``upgrade_held``).
HELD_UPGRADE_MARKER = "migration#held-deliveries"


def expiry_for(recorded: float, max_event_age: int) -> int:
    """The TTL an event carries until it finishes: the horizon (``max_event_age`` seconds after
    it was recorded; services/held_deliveries.py), then the listing period. Every item carries
    one from the start, reset when it finishes: none stays for good, whatever happens to it."""
    return int(recorded) + max_event_age + KEEP_FINISHED_SECONDS


def recorded_at(delivery: Delivery) -> float:
    """When the event was recorded (its ``created_at``), in epoch seconds."""
    moment = datetime.strptime(delivery.created_at, "%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.replace(tzinfo=timezone.utc).timestamp()


def add_to(tx: Transaction, delivery: Optional[Delivery]) -> None:
    """Put a new delivery into the transaction of the change it reports (nothing for None)."""
    if delivery is not None:
        tx.save("webhook_event", delivery, condition=Delivery.delivery_id.does_not_exist())


def insert(delivery: Delivery) -> None:
    """A new delivery (a fresh random id). Refused by its own condition, it is this write sent
    again after its answer was lost (the SDK retries a 500): done, not an error (finding 70)."""
    try:
        delivery.save(condition=Delivery.delivery_id.does_not_exist())
    except PutError as exc:
        if not conditional_failed(exc):
            raise
        try:
            stored = Delivery.get(delivery.delivery_id, consistent_read=True)
        except Delivery.DoesNotExist:
            raise exc from None
        if (stored.share_id, stored.created_at) != (delivery.share_id, delivery.created_at):
            raise


def final_event_id(share_id: str) -> str:
    """A share's ``share.deleted`` delivery id: one per share, so the job finds it by a
    consistent read (not the eventually consistent share index) once the share is gone."""
    return f"dlv_deleted_{share_id}"


def final_event(share_id: str) -> Optional[Delivery]:
    """The share's ``share.deleted`` delivery: where its webhook pointed when it was deleted,
    and with which secret (None: it had no webhook then, or was deleted by an earlier version)."""
    try:
        return Delivery.get(final_event_id(share_id), consistent_read=True)
    except Delivery.DoesNotExist:
        return None


def due(now: int, limit: int) -> List[Delivery]:
    return list(Delivery.due_index.query(DUE, Delivery.next_attempt_at <= now, limit=limit))


def claim(delivery: Delivery, now: int, claim_seconds: int) -> bool:
    """Take a due delivery for one attempt: hide it from other runs for ``claim_seconds`` and
    count the attempt (a run that dies after sending must not let it look unsent). Its
    ``last_attempt_at`` is set with the outcome (``finish``, ``reschedule``), so an event
    cancelled or held without a request keeps the time of the last one really made. False when
    another run took it first."""
    return update_if(delivery, [Delivery.next_attempt_at.set(now + claim_seconds), Delivery.attempts.add(1)],
                     (Delivery.status == PENDING) & (Delivery.next_attempt_at == delivery.next_attempt_at))


def defer(delivery: Delivery, until: int) -> bool:
    """Not attempted in this run: due again at ``until``, no attempt counted. False when another
    run took it first."""
    return update_if(delivery, [Delivery.next_attempt_at.set(until)],
                     (Delivery.status == PENDING) & (Delivery.next_attempt_at == delivery.next_attempt_at))


def _outcome(status_code: Optional[int], error: Optional[str]) -> list:
    return [Delivery.last_status_code.set(status_code) if status_code is not None else Delivery.last_status_code.remove(),
            Delivery.last_error.set(error[:500]) if error else Delivery.last_error.remove()]


def finish(delivery: Delivery, status: str, now: int, status_code: Optional[int], error: Optional[str],
           attempted: bool = True) -> None:
    """delivered, failed or cancelled: out of the due index, kept for the log, then expired.
    Not ``attempted`` (claimed, then cancelled without a request): the claim's count is undone."""
    actions = [Delivery.status.set(status), Delivery.due.remove(), Delivery.next_attempt_at.remove(),
               Delivery.expires_at.set(now + KEEP_FINISHED_SECONDS), *_outcome(status_code, error)]
    actions.append(Delivery.last_attempt_at.set(now) if attempted else Delivery.attempts.add(-1))
    if status == DELIVERED:
        actions.append(Delivery.delivered_at.set(now))
    delivery.update(actions=actions)


def reschedule(delivery: Delivery, attempted_at: int, next_attempt_at: int, status_code: Optional[int],
               error: Optional[str]) -> None:
    delivery.update(actions=[Delivery.next_attempt_at.set(next_attempt_at), Delivery.last_attempt_at.set(attempted_at),
                             *_outcome(status_code, error)])


def hold(delivery: Delivery, share_key: str, reason: str, now: int) -> bool:
    """Paused share: keep the event out of the due index (the claimed attempt did not happen),
    with a check that the share is still paused. False when its webhook was resumed, changed or
    removed since it was read: held then, the event would wait for a resume nobody calls."""
    return hold_while(delivery, reason, now, lambda tx: tx.check(
        "paused", Share, share_key, Share.webhook_paused_at.exists() & Share.webhook_url.exists()))


def hold_while(delivery: Delivery, reason: str, now: int, check: Callable[[Transaction], None]) -> bool:
    """Hold the event, as for a pause, with ``check`` in the same transaction (a paused share;
    an owner who still does not pay); False when the check fails. A release ends it
    (services/held_deliveries.py)."""
    def build(tx: Transaction) -> None:
        check(tx)
        tx.update("held", delivery, [Delivery.status.set(PAUSED), Delivery.due.set(HELD_PREFIX + delivery.share_id),
                                     Delivery.next_attempt_at.set(now), Delivery.attempts.add(-1),
                                     Delivery.last_error.set(reason)])
    try:
        run(build)
        return True
    except ConditionFailed:
        return False


def recent(share_id: str, limit: int) -> List[Delivery]:
    return list(Delivery.share_index.query(share_id, scan_index_forward=False, limit=limit))


def held_page(share_id: str, limit: int) -> Tuple[List[Delivery], bool]:
    """Up to ``limit`` of a share's held events, oldest first (the index is eventually
    consistent: one held a moment ago may be missing), and whether there may be more."""
    result = Delivery.due_index.query(HELD_PREFIX + share_id, limit=limit, page_size=limit)
    page = list(result)
    return page, result.last_evaluated_key is not None


def release(delivery: Delivery, now: int) -> bool:
    """A held event becomes due now, with a fresh retry window; False when it is no longer held."""
    return update_if(delivery, [Delivery.status.set(PENDING), Delivery.due.set(DUE), Delivery.next_attempt_at.set(now),
                                Delivery.retry_from.set(now)], Delivery.status == PAUSED)


def cancel_held(delivery: Delivery, now: int, reason: str) -> bool:
    """A held event that will not be sent: cancelled, kept for the log, then expired."""
    return update_if(delivery, [Delivery.status.set(CANCELLED), Delivery.due.remove(), Delivery.next_attempt_at.remove(),
                                Delivery.expires_at.set(now + KEEP_FINISHED_SECONDS), Delivery.last_error.set(reason)],
                     Delivery.status == PAUSED)


# --- upgrade: events held before held events were indexed by share -----------------------------

def upgrade_held(now: float, max_event_age: int) -> int:
    """Events an earlier version held (``paused``, with no ``due`` and no ``expires_at``) are
    invisible to releases, which read ``held#<share>``: each gets that partition and its TTL, and
    its share a release first, so the delivery job ends those whose webhook is no longer paused
    (a URL an earlier downgrade removed included) and a run that stops halfway loses none.
    Returns how many moved. Idempotent; scans, so it runs at deploy and local start only, each
    time, also once marked done: an earlier version may hold events again after that (its last
    invocations during the deploy, or it deployed or started again on the same tables)."""
    moved, marked = 0, set()
    old_form = (Delivery.status == PAUSED) & Delivery.due.does_not_exist()
    for delivery in Delivery.scan(old_form):
        if delivery.share_id not in marked:
            webhook_releases.record(None, delivery.share_id, now)
            marked.add(delivery.share_id)
        moved += update_if(delivery, [Delivery.due.set(HELD_PREFIX + delivery.share_id),
                                      Delivery.next_attempt_at.set(int(now)),
                                      Delivery.expires_at.set(expiry_for(recorded_at(delivery), max_event_age))], old_form)
    LedgerItem(HELD_UPGRADE_MARKER, state=ledger.DONE).save()
    return moved
