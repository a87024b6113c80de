"""A presigned upload's share charge, held until the upload completes (docs/agents.md).

The share of a presigned upload is charged when the upload starts (its cost in the owner's and
the key's period usage, so the caps hold for uploads in flight), but its usage event goes to
the ``meter#held`` queue of the ``outbox`` table, which the reporting job never reads. It
ends one of two ways, each in a transaction with a condition on the share that decides which:
- released (moved to a reporting queue) with the completion's pending -> active write, or when
  the share_deletions job keeps an unfinished upload that received feedback: its usage is
  then the release's, at that time and in that period (where Stripe bills it, so the caps
  count it there too);
- dropped (deleted, its cost and the key's share given back) with the tombstone that expires
  the unfinished upload, or deletes it before it was completed.
Both delete the held item on condition that it is still there, in the period it was read in:
a charge is released or dropped once, never both, and always from the period that counts it.
Before a completion copies any file, a charge held in an earlier period is moved to the
completion's (``move``), so a cap with no room refuses the completion before anything is done.
Stripe hears only of released charges, so nothing it was sent ever needs cancelling.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Callable, Optional

from pynamodb.expressions.condition import Condition

from chalicelib import clock
from chalicelib.store import charges, meter_events
from chalicelib.store.models import OutboxItem, Share
from chalicelib.store.shares import PENDING
from chalicelib.store.transactions import ConditionFailed, Transaction, run

HELD_QUEUE = "meter#held"


def hold(tx: Transaction, identifier: str, event_name: str, user_id: str, customer_id: Optional[str],
         timestamp: int, period: str, cost: int, key_id: Optional[str], key_cost: int) -> None:
    """In the transaction that stores the pending share ("event"): its usage event, held, with
    what was charged for it (the account's ``cost``; the key's use and ``key_cost``)."""
    actions = [OutboxItem.identifier.set(identifier), OutboxItem.event_name.set(event_name),
               OutboxItem.user_id.set(user_id), OutboxItem.value.set(1), OutboxItem.timestamp.set(timestamp),
               OutboxItem.period.set(period), OutboxItem.cost.set(cost), OutboxItem.attempts.set(0),
               OutboxItem.next_attempt_at.set(0)]
    if customer_id:
        actions.append(OutboxItem.customer_id.set(customer_id))
    if key_id:
        actions += [OutboxItem.key_id.set(key_id), OutboxItem.key_cost.set(key_cost)]
    tx.update("event", OutboxItem(HELD_QUEUE, identifier), actions=actions)


def get(identifier: str) -> Optional[OutboxItem]:
    """The held charge of ``identifier`` (``share-<id>``), or None: none was held (not the
    agent tier), or it was released or dropped already."""
    try:
        return OutboxItem.get(HELD_QUEUE, identifier, consistent_read=True)
    except OutboxItem.DoesNotExist:
        return None


def _as_read(held: OutboxItem) -> Condition:
    """The held item is still there, counted in the period it was read in (``move`` changes it)."""
    return OutboxItem.period == held.period if held.period else OutboxItem.event_key.exists()


def _take(tx: Transaction, held: OutboxItem) -> None:
    tx.delete("held", OutboxItem(HELD_QUEUE, held.event_key), condition=_as_read(held))


def release(tx: Transaction, held: OutboxItem, at: int, account_limit: Optional[int] = None,
            key_limit: Optional[int] = None) -> None:
    """In the completion's transaction: the event becomes due for the reporting job, as usage
    at ``at`` (the completion), and counted in that period: from a share started in an earlier
    one, its charge moves out of that period's usage ("usage-before", "key-usage-before") into
    this one's, refused past the caps this period has ("usage": ``account_limit``, "key-usage":
    ``key_limit``, thousandths of a cent), as a new charge would be."""
    _take(tx, held)
    meter_events.add(tx, held.identifier, held.event_name, held.user_id, held.customer_id, at)
    period = clock.period_of(datetime.fromtimestamp(at, timezone.utc))
    if held.period and period != held.period:
        _recount(tx, held, period, at, account_limit, key_limit)


def move(share: Share, held: OutboxItem, at: int, account_limit: Optional[int] = None,
         key_limit: Optional[int] = None) -> None:
    """Before a completion at ``at`` copies any file: the charge, still held and the share still
    pending, moves from the period it was charged in to that of ``at``, under that period's caps
    (as ``release`` would move it). Raises ConditionFailed: "usage" or "key-usage" (no room),
    "share" (no longer pending), "held" (released, dropped or moved meanwhile). A commit whose
    answer was lost is answered as made: its token, and (where the token is not honoured) the
    charge read back in ``period``, not refused by the cap its own charge now fills."""
    period = clock.period_of(datetime.fromtimestamp(at, timezone.utc))

    def write(tx: Transaction) -> None:
        tx.check("share", Share, share.pk, Share.status == PENDING)
        tx.update("held", OutboxItem(HELD_QUEUE, held.event_key), actions=[OutboxItem.period.set(period)],
                  condition=_as_read(held))
        _recount(tx, held, period, at, account_limit, key_limit)
    try:
        run(write, idempotent=True)
    except ConditionFailed as failed:
        now = get(held.event_key) if "held" in failed else None
        if now is None or now.period != period:
            raise
    held.period = period  # as now stored: the activation's release takes it from there


def _recount(tx: Transaction, held: OutboxItem, period: str, at: int, account_limit: Optional[int],
             key_limit: Optional[int]) -> None:
    """The held charge's cost (and its key's share and cost) out of its period, into ``period``."""
    cost = int(held.cost or 0)
    charges.refund_account(tx, held.user_id, held.period, cost, name="usage-before")
    charges.charge_account(tx, held.user_id, period, cost, account_limit, at)
    if held.key_id:
        charges.move_key_share(tx, held.key_id, held.period, period, int(held.key_cost or 0), key_limit, at)


def drop(tx: Transaction, held: OutboxItem) -> None:
    """In the tombstone's transaction: the event goes, and what the share was charged is given
    back to the period that counts it (the account's cost; the key's share and cost)."""
    _take(tx, held)
    charges.refund_account(tx, held.user_id, held.period, int(held.cost or 0))
    if held.key_id:
        charges.uncount_key_use(tx, held.key_id, held.period, int(held.key_cost or 0))


def dropping(held: Optional[OutboxItem]) -> Optional[Callable[[Transaction], None]]:
    """``drop`` as a transaction's extra writes; None when nothing is held (not the agent tier)."""
    return None if held is None else (lambda tx: drop(tx, held))


def release_while_pending(share: Share, releasing: Callable[[Transaction], None]) -> bool:
    """Release the charge of a share kept pending (the job keeps an unfinished upload that
    received feedback: it exists, its owner decides) with ``releasing`` (``release``'s writes).
    False when the share changed meanwhile (completed, which released it, or deleted, which
    dropped it) or a cap of the period it would move to refused it (it stays held)."""
    def write(tx: Transaction) -> None:
        tx.check("share", Share, share.pk, Share.status == PENDING)
        releasing(tx)
    try:
        run(write)
        return True
    except ConditionFailed:
        return False
