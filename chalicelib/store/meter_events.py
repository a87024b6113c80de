"""The agent tier's usage events for Stripe (the ``outbox`` table): keys, queues and the
conditional writes that move an event from pending to sent (deleted) or dead.

An event is created in the transaction that stores the spike or share it bills, so it exists
exactly when that does (a presigned upload's share waits in ``meter#held`` until the upload
completes: store/held_charges.py). ``queue`` is ``meter#<shard>`` while pending (a few shards, so no
partition runs hot) or ``meter#dead`` once Stripe refused it for good; ``event_key`` is
``<ISO time>#<identifier>``, so a queue reads oldest first. docs/data-model.md (``outbox``)
lists the access patterns. An operator moves parked events back or drops them
(``tools/usage_events.py``), each with one conditional transaction. Once Stripe accepted an
event, a copy stays in ``meter-sent#<shard>`` (``event_key`` = the identifier) for Stripe's 35
days, so one Stripe reports invalid later can be sent again or parked (services/meter_errors.py).
"""
from __future__ import annotations

import hashlib
import re
from datetime import datetime, timezone
from typing import Iterator, Optional


from chalicelib import clock
from chalicelib.store.models import OutboxItem
from chalicelib.store.transactions import ConditionFailed, Transaction, run, update_if

SHARDS = 4
DEAD_QUEUE = "meter#dead"
QUEUES = tuple(f"meter#{shard}" for shard in range(SHARDS))
SENT_QUEUES = tuple(f"meter-sent#{shard}" for shard in range(SHARDS))
# Stripe takes meter events up to 35 days old, and reports the invalid ones within that time.
SENT_TTL_SECONDS = 35 * 24 * 3600
_REPORTED = re.compile(r"^(.*)-rpt(\d+)$")


def _shard(identifier: str) -> int:
    return int(hashlib.sha256(identifier.encode()).hexdigest()[:8], 16) % SHARDS


def queue_of(identifier: str) -> str:
    return QUEUES[_shard(identifier)]


def add(tx: Transaction, identifier: str, event_name: str, user_id: str, customer_id: Optional[str],
        timestamp: int) -> None:
    """In the transaction of what it bills ("event"): one unit of ``event_name`` for ``user_id``."""
    actions = [OutboxItem.identifier.set(identifier), OutboxItem.event_name.set(event_name),
               OutboxItem.user_id.set(user_id), OutboxItem.value.set(1), OutboxItem.timestamp.set(timestamp),
               OutboxItem.attempts.set(0), OutboxItem.next_attempt_at.set(0)]
    if customer_id:
        actions.append(OutboxItem.customer_id.set(customer_id))
    created = datetime.fromtimestamp(timestamp, timezone.utc)
    tx.update("event", OutboxItem(queue_of(identifier), f"{clock.iso(created)}#{identifier}"), actions=actions)


def due(queue: str, now: float) -> Iterator[OutboxItem]:
    """A queue's events whose next attempt is due, oldest first."""
    return OutboxItem.query(queue, filter_condition=OutboxItem.next_attempt_at <= now, page_size=100)


def lease(item: OutboxItem, now: float, seconds: int) -> bool:
    """Take the event for ``seconds``; False when another run holds it, it is gone, or its
    ``unanswered_since`` changed since it was read (the caller decides on the one it read).
    A lease alone sends nothing: a run that dies holding it leaves the event as it was."""
    unanswered = item.unanswered_since
    as_read = OutboxItem.unanswered_since.does_not_exist() if unanswered is None \
        else OutboxItem.unanswered_since == unanswered
    return update_if(item, [OutboxItem.lease_until.set(int(now) + seconds)],
                     OutboxItem.event_key.exists() & as_read
                     & (OutboxItem.lease_until.does_not_exist() | (OutboxItem.lease_until < int(now))))


def record_attempt(item: OutboxItem, now: float, send_timestamp: int, customer_id: str) -> bool:
    """The leased event is about to be sent to ``customer_id``: from now it counts as unanswered
    until the outcome is recorded (a crash after this leaves it so), and ``send_timestamp`` is
    fixed for the retries of this request. Written when no earlier attempt is unanswered, and
    when a retry goes to another customer than the unanswered attempts (``unanswered_customer``
    removed: their keys differ), conditioned on the lease still being this run's. Repeating the
    write with the same values succeeds (a retried UpdateItem whose first answer was lost).
    False: the lease was lost, do not send."""
    leased = OutboxItem.lease_until == int(item.lease_until)
    if item.unanswered_since is not None:
        if item.unanswered_customer in (None, customer_id):
            return True
        return update_if(item, [OutboxItem.unanswered_customer.remove()], leased)
    now = int(now)
    this_attempt = (OutboxItem.unanswered_since == now) & (OutboxItem.send_timestamp == int(send_timestamp))
    return update_if(item, [OutboxItem.unanswered_since.set(now), OutboxItem.send_timestamp.set(int(send_timestamp)),
                            OutboxItem.unanswered_customer.set(customer_id)],
                     leased & (OutboxItem.unanswered_since.does_not_exist() | this_attempt))


def sent(item: OutboxItem, customer_id: str, now: float) -> None:
    """Stripe accepted it: a copy of what was sent is kept for Stripe's 35 days, then the pending
    event is deleted. Two writes, not a transaction: a crash between them leaves the event
    pending, sent again under the same key (Stripe repeats its answer) and copied again (the
    same item)."""
    copy = {**_the_event(item), "customer_id": customer_id}
    OutboxItem(SENT_QUEUES[_shard(item.identifier)], item.identifier, **copy, attempts=0, next_attempt_at=0,
               send_timestamp=item.send_timestamp, requeues=item.requeues, sent_at=int(now),
               expires_at=int(now) + SENT_TTL_SECONDS).save()
    item.delete()


def sent_copy(identifier: str, now: float) -> Optional[OutboxItem]:
    """The copy of an event Stripe accepted, unless expired (TTL deletes lag behind)."""
    try:
        copy = OutboxItem.get(SENT_QUEUES[_shard(identifier)], identifier, consistent_read=True)
    except OutboxItem.DoesNotExist:
        return None
    return copy if int(copy.expires_at or 0) > now else None


def reported_identifier(identifier: str) -> str:
    """The identifier an event Stripe reported invalid is sent again under: one Stripe has not
    seen, since Stripe may still deduplicate the reported one (``-rpt<n>``, n counting up)."""
    match = _REPORTED.match(identifier)
    return f"{match.group(1)}-rpt{int(match.group(2)) + 1}" if match else f"{identifier}-rpt1"


def take_back(copy: OutboxItem, identifier: str, error: str, park: bool) -> bool:
    """Move a sent copy Stripe reported invalid back to its shard as a new event under
    ``identifier`` (due now), or with ``park`` to the dead queue (parked as refused, for an
    operator). One transaction: the copy deleted as read, the event put where none is. False
    when it is gone (another delivery of the report moved it)."""
    created = datetime.fromtimestamp(int(copy.timestamp), timezone.utc)
    event = {**_the_event(copy), "identifier": identifier}
    moved = OutboxItem(DEAD_QUEUE if park else queue_of(identifier), f"{clock.iso(created)}#{identifier}", **event,
                       attempts=1 if park else 0, next_attempt_at=0, last_error=error)
    return _move(copy, OutboxItem.sent_at == copy.sent_at, moved)


def retry_later(item: OutboxItem, next_attempt_at: int, error: str, unanswered_since: Optional[int]) -> None:
    """Not sent this time. ``unanswered_since``: what stays unanswered (None: Stripe cannot hold
    the event, as when it refused to look at the request)."""
    answered = [OutboxItem.unanswered_since.set(unanswered_since)] if unanswered_since is not None \
        else [OutboxItem.unanswered_since.remove(), OutboxItem.unanswered_customer.remove()]
    item.update(actions=[OutboxItem.attempts.add(1), OutboxItem.next_attempt_at.set(next_attempt_at),
                         OutboxItem.lease_until.remove(), OutboxItem.last_error.set(error), *answered])


def bury(item: OutboxItem, error: str) -> None:
    """Stripe refused the event for good, or whether Stripe holds it can no longer be known:
    kept in the dead queue, out of the way, for review."""
    dead = OutboxItem(DEAD_QUEUE, item.event_key, **_the_event(item), attempts=int(item.attempts or 0) + 1,
                      next_attempt_at=0, last_error=error, send_timestamp=item.send_timestamp,
                      unanswered_since=item.unanswered_since, requeues=item.requeues)

    def build(tx: Transaction) -> None:
        tx.save("dead", dead)
        tx.delete("pending", item)
    run(build)


def _the_event(item: OutboxItem) -> dict:
    """What an event is, as it moves between queues (its attempts' fields are the mover's)."""
    return {"identifier": item.identifier, "event_name": item.event_name, "user_id": item.user_id,
            "customer_id": item.customer_id, "value": item.value, "timestamp": item.timestamp}


def pending_count() -> int:
    """Events not yet reported (tests, operators)."""
    return sum(OutboxItem.count(queue) for queue in QUEUES)


# --- the dead queue, for an operator (services/parked_usage.py) ---------------------------------

def parked() -> Iterator[OutboxItem]:
    """The dead queue, oldest charge first (small: only what Stripe refused or may hold)."""
    return OutboxItem.query(DEAD_QUEUE, consistent_read=True)


def parked_event(identifier: str) -> Optional[OutboxItem]:
    """A parked event by its identifier (a Query of the dead queue, filtered)."""
    for item in OutboxItem.query(DEAD_QUEUE, filter_condition=OutboxItem.identifier == identifier,
                                 consistent_read=True):
        return item
    return None


def _parked_as_read(item: OutboxItem):
    """Still the parked event that was read: not requeued, dropped or parked again since."""
    unanswered = OutboxItem.unanswered_since.does_not_exist() if item.unanswered_since is None \
        else OutboxItem.unanswered_since == item.unanswered_since
    requeues = OutboxItem.requeues.does_not_exist() if not item.requeues else OutboxItem.requeues == item.requeues
    return OutboxItem.event_key.exists() & (OutboxItem.attempts == item.attempts) & unanswered & requeues


def requeue(item: OutboxItem, note: str) -> bool:
    """Move a parked event back to its shard as a new one: no lease, no attempt unanswered, no
    timestamp fixed, due now, one more requeue (its next idempotency key). One transaction,
    conditioned on the parked item as read; False when it is gone or changed."""
    pending = OutboxItem(queue_of(item.identifier), item.event_key, **_the_event(item), attempts=0,
                         next_attempt_at=0, last_error=note, requeues=int(item.requeues or 0) + 1)
    return _move(item, _parked_as_read(item), pending)


def _move(item: OutboxItem, as_read, moved: OutboxItem) -> bool:
    """One transaction: ``item`` deleted if still ``as_read``, ``moved`` put where none is.
    False when either condition failed (another mover was first)."""
    def build(tx: Transaction) -> None:
        tx.delete("from", item, condition=as_read)
        tx.save("to", moved, condition=OutboxItem.event_key.does_not_exist())
    try:
        run(build)
        return True
    except ConditionFailed:
        return False


def drop(item: OutboxItem) -> bool:
    """Delete a parked event as read; False when it is gone or changed."""
    try:
        run(lambda tx: tx.delete("parked", item, condition=_parked_as_read(item)))
        return True
    except ConditionFailed:
        return False
