"""The agent tier's charges in the ledger table: a key's usage item per period
(``keyusage#<key_id>#<period>``: what it created and its ``cost``), the cost a share adds to
its owner's period usage, and reading a usage item. Costs are thousandths of a cent; every
charge is conditioned on its cap (``ledger.cost_within``), inside the transaction that stores
what it bills."""
from __future__ import annotations

from typing import Callable, Optional

from chalicelib.store import ledger
from chalicelib.store.ledger import cost_within
from chalicelib.store.models import LedgerItem, Share
from chalicelib.store.transactions import Transaction


def key_usage_key(key_id: str, period: str) -> str:
    return f"keyusage#{key_id}#{period}"


def period_item(key: str) -> Optional[LedgerItem]:
    """A usage item (``usage#…``, ``keyusage#…``: counts and ``cost``), or None."""
    try:
        return LedgerItem.get(key)
    except LedgerItem.DoesNotExist:
        return None


def account_period(user_id: str, period: str) -> Optional[LedgerItem]:
    """An account's usage item for ``period`` (what it stored and its ``cost``), or None."""
    return period_item(ledger.user_usage_key(user_id, period))


def key_period(key_id: str, period: str) -> Optional[LedgerItem]:
    """An API key's usage item for ``period``, or None."""
    return period_item(key_usage_key(key_id, period))


def charge_account(tx: Transaction, owner_id: str, period: str, cost: int, cost_limit: Optional[int],
                   now: float) -> None:
    """In a share's transaction on the agent tier ("usage"): the owner's period cost (also when a
    held charge moves to the period it is released in)."""
    tx.update("usage", LedgerItem(ledger.user_usage_key(owner_id, period)),
              actions=[LedgerItem.cost.add(cost), LedgerItem.expires_at.set(int(now) + ledger.RETENTION_SECONDS)],
              condition=cost_within(cost, cost_limit))


def count_key_use(tx: Transaction, key_id: str, period: str, kind: str, cost: int, cost_limit: Optional[int],
                  now: float) -> None:
    """In the transaction of a spike or share made with an API key ("key-usage"): what the key
    created, and what it was charged (refused past ``cost_limit``)."""
    actions = [(LedgerItem.spikes if kind == "spike" else LedgerItem.shares).add(1),
               LedgerItem.expires_at.set(int(now) + ledger.RETENTION_SECONDS)]
    if cost:
        actions.append(LedgerItem.cost.add(cost))
    tx.update("key-usage", LedgerItem(key_usage_key(key_id, period)), actions=actions,
              condition=cost_within(cost, cost_limit) if cost else None)


def charge_maker(tx: Transaction, key_id: str, period: str, cost: int, cost_limit: Optional[int], now: float,
                 name: str) -> None:
    """In the transaction of a spike or share made with a key that ``key_id`` made (directly or
    down its tree): the charge counted in that key's cost too, refused past its ``cost_limit``."""
    tx.update(name, LedgerItem(key_usage_key(key_id, period)),
              actions=[LedgerItem.cost.add(cost), LedgerItem.expires_at.set(int(now) + ledger.RETENTION_SECONDS)],
              condition=cost_within(cost, cost_limit))


def refund_account(tx: Transaction, owner_id: str, period: str, cost: int, name: str = "refund") -> None:
    """A share's ``cost`` taken off the owner's usage of ``period``: it never came to exist, or
    it is counted in another period."""
    tx.update(name, LedgerItem(ledger.user_usage_key(owner_id, period)), actions=[LedgerItem.cost.add(-cost)])


def uncount_key_use(tx: Transaction, key_id: str, period: str, cost: int, name: str = "key-refund") -> None:
    """A share taken off a key's usage of ``period`` with what it was charged (``cost``)."""
    actions = [LedgerItem.shares.add(-1)]
    if cost:
        actions.append(LedgerItem.cost.add(-cost))
    tx.update(name, LedgerItem(key_usage_key(key_id, period)), actions=actions)


def move_key_share(tx: Transaction, key_id: str, from_period: str, to_period: str, cost: int,
                   cost_limit: Optional[int], now: float) -> None:
    """A presigned upload's share completed in a later period than it started in: the key's
    count of it (and ``cost``) moves there ("key-usage", refused past ``cost_limit``)."""
    uncount_key_use(tx, key_id, from_period, cost, name="key-usage-before")
    count_key_use(tx, key_id, to_period, "share", cost, cost_limit, now)


def uncounting_pending(share: Share) -> Optional[Callable[[Transaction], None]]:
    """For the tombstone of a presigned upload never completed: the key's count of it given
    back ("key-refund"), where the share records it (a tier that holds no charge); else None."""
    if share.counted_key_id is None or share.counted_period is None:
        return None
    return lambda tx: uncount_key_use(tx, share.counted_key_id, share.counted_period, 0)
