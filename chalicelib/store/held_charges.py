"""A presigned upload's share charge, held until the upload completes (docs/agents.md).

The share of a presigned upload is charged when the upload starts (its cost in the owner's and
the key's period usage, so the caps hold for uploads in flight), but its usage event goes to
the ``meter#held`` queue of the ``outbox`` table, which the reporting job never reads. It
ends one of two ways, each in a transaction with a condition on the share that decides which:
- released (moved to a reporting queue) with the completion's pending -> active write, or when
  the share_deletions job keeps an unfinished upload that received feedback;
- dropped (deleted, its cost and the key's share given back) with the tombstone that expires
  the unfinished upload, or deletes it before it was completed.
Both delete the held item on condition that it is still there: a charge is released or
dropped once, never both. Stripe hears only of released charges, so nothing it was sent ever
needs cancelling.
"""
from __future__ import annotations

from typing import Callable, Optional

from chalicelib.store import charges, ledger, meter_events
from chalicelib.store.models import LedgerItem, OutboxItem, Share
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


def _take(tx: Transaction, held: OutboxItem) -> None:
    tx.delete("held", OutboxItem(HELD_QUEUE, held.event_key), condition=OutboxItem.event_key.exists())


def release(tx: Transaction, held: OutboxItem) -> None:
    """In the completion's transaction: the event becomes due for the reporting job."""
    _take(tx, held)
    meter_events.add(tx, held.identifier, held.event_name, held.user_id, held.customer_id, int(held.timestamp))


def drop(tx: Transaction, held: OutboxItem) -> None:
    """In the tombstone's transaction: the event goes, and what the share was charged is given
    back to the period it was charged in (the account's cost; the key's share and cost)."""
    _take(tx, held)
    tx.update("refund", LedgerItem(ledger.user_usage_key(held.user_id, held.period)),
              actions=[LedgerItem.cost.add(-int(held.cost or 0))])
    if held.key_id:
        actions = [LedgerItem.shares.add(-1)]
        if held.key_cost:
            actions.append(LedgerItem.cost.add(-int(held.key_cost)))
        tx.update("key-refund", LedgerItem(charges.key_usage_key(held.key_id, held.period)), actions=actions)


def releasing(held: Optional[OutboxItem]) -> Optional[Callable[[Transaction], None]]:
    """``release`` as a transaction's extra writes; None when nothing is held (not the agent tier)."""
    return None if held is None else (lambda tx: release(tx, held))


def dropping(held: Optional[OutboxItem]) -> Optional[Callable[[Transaction], None]]:
    """``drop`` as a transaction's extra writes; None when nothing is held (not the agent tier)."""
    return None if held is None else (lambda tx: drop(tx, held))


def release_while_pending(share: Share, held: OutboxItem) -> bool:
    """Release the charge of a share kept pending (the job keeps an unfinished upload that
    received feedback: it exists, its owner decides). False when the share changed meanwhile
    (completed, which released it, or deleted, which dropped it)."""
    def write(tx: Transaction) -> None:
        tx.check("share", Share, share.pk, Share.status == PENDING)
        release(tx, held)
    try:
        run(write)
        return True
    except ConditionFailed:
        return False
