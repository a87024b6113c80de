"""Counting spikes in the ledger: a share's period counter (its quota) and its total, and its
owner's period usage, written in the spike's transaction and counted down at its deletion, read
for the quota, the listings and a share's deletion. Their key formats are here; the ledger's
other kinds of item, and the owner's ``usage#`` key, are store/ledger.py's.

Shards: every post to a share used to update the same counter items, and concurrent transactions
on one item conflict (DynamoDB cancels them; DynamoDB Local queues them): a hot share was
serialized on its counters. Counters nobody conditions on are now split into ``COUNTER_SHARDS``
items, the shard chosen by the spike's id (so its deletion finds it again), and summed on read.
A limited tier's period counter stays one item: its condition is what keeps the quota exact.
"""
from __future__ import annotations

import zlib
from typing import Dict, Iterable, List, Optional

from chalicelib.store.ledger import RETENTION_SECONDS, cost_within, user_usage_key
from chalicelib.store.models import LedgerItem
from chalicelib.store.transactions import Transaction


# --- keys ------------------------------------------------------------------------------------

def share_quota_key(share_id: str, period: str) -> str:
    return f"quota#{share_id}#{period}"


def share_total_key(share_id: str) -> str:
    """The total as counted before it was sharded (still read and counted down)."""
    return f"spikes#{share_id}"


COUNTER_SHARDS = 8


def shard_of(spike_id: str) -> int:
    """The counter shard a spike is counted in: from its storage id, so its deletion finds it."""
    return zlib.crc32(spike_id.encode("utf-8")) % COUNTER_SHARDS


def share_total_shard_key(share_id: str, shard: int) -> str:
    return f"spikes#{share_id}#{shard}"


def share_total_keys(share_id: str) -> List[str]:
    return [share_total_key(share_id), *(share_total_shard_key(share_id, n) for n in range(COUNTER_SHARDS))]


# Names of the checks below, in a transaction's ConditionFailed.
HOLDS_NO_SPIKES = "holds-no-spikes"


def check_holds_no_spikes(tx: Transaction, share_id: str) -> None:
    """In a transaction: refused when the share holds a spike (any of its total's counters
    above 0)."""
    for n, key in enumerate(share_total_keys(share_id)):
        tx.check(f"{HOLDS_NO_SPIKES}-{n}", LedgerItem, key, LedgerItem.count.does_not_exist() | (LedgerItem.count <= 0))


def unlimited_quota_key(share_id: str, period: str, shard: int) -> str:
    return f"quota#{share_id}#{period}#{shard}"


def unlimited_quota_keys(share_id: str, period: str) -> List[str]:
    return [unlimited_quota_key(share_id, period, n) for n in range(COUNTER_SHARDS)]


# --- counters --------------------------------------------------------------------------------

def share_spike_counts(share_ids: List[str], consistent: bool = False) -> Dict[str, int]:
    """Spikes each share holds now, summed over its total's shards in batch reads (0 for
    shares without a counter)."""
    by_key = {key: share_id for share_id in share_ids for key in share_total_keys(share_id)}
    counts = {share_id: 0 for share_id in share_ids}
    for item in LedgerItem.batch_get(list(by_key), consistent_read=consistent):
        counts[by_key[item.pk]] += int(item.count or 0)
    return {share_id: max(0, count) for share_id, count in counts.items()}


def unlimited_count(share_id: str, period: str) -> int:
    """How many spikes the share received in ``period`` while its owner's tier had no limit."""
    return sum(int(item.count or 0) for item in LedgerItem.batch_get(unlimited_quota_keys(share_id, period),
                                                                      consistent_read=True))


def _usage(tx: Transaction, owner_id: str, period: str, expires: int, cost: int, cost_limit: Optional[int]) -> None:
    """The owner's period usage ("usage"): one more spike; on the agent tier with its ``cost``,
    refused past ``cost_limit``."""
    actions = [LedgerItem.count.add(1), LedgerItem.expires_at.set(expires)]
    if cost:
        actions.append(LedgerItem.cost.add(cost))
    tx.update("usage", LedgerItem(user_usage_key(owner_id, period)), actions=actions,
              condition=cost_within(cost, cost_limit) if cost else None)


def count_spike(tx: Transaction, share_id: str, owner_id: str, period: str, now: float, shard: int,
                period_limit: Optional[int], cost: int = 0, cost_limit: Optional[int] = None) -> None:
    """In the spike's transaction: the share's period counter ("quota"), its total ("total")
    and the owner's period usage ("usage"; on the agent tier with ``cost``, refused past
    ``cost_limit``). With ``period_limit`` (a limited tier) the period counter is the one item
    refused at that count; without, a shard nobody conditions on."""
    expires = int(now) + RETENTION_SECONDS
    if period_limit is None:
        tx.update("quota", LedgerItem(unlimited_quota_key(share_id, period, shard)),
                  actions=[LedgerItem.count.add(1), LedgerItem.expires_at.set(expires)])
    else:
        condition = LedgerItem.count < period_limit
        if period_limit > 0:
            condition = LedgerItem.count.does_not_exist() | condition
        tx.update("quota", LedgerItem(share_quota_key(share_id, period)),
                  actions=[LedgerItem.count.add(1), LedgerItem.expires_at.set(expires)], condition=condition)
    tx.update("total", LedgerItem(share_total_shard_key(share_id, shard)), actions=[LedgerItem.count.add(1)])
    _usage(tx, owner_id, period, expires, cost, cost_limit)


def count_own_spike(tx: Transaction, owner_id: str, period: str, now: float, cost: int = 0,
                    cost_limit: Optional[int] = None) -> None:
    """In the transaction of a spike a user posts under a project key of their own (no share,
    no quota): the owner's period usage ("usage", charged on the agent tier)."""
    _usage(tx, owner_id, period, int(now) + RETENTION_SECONDS, cost, cost_limit)


def uncount_spike(tx: Transaction, share_id: str, shard: Optional[int]) -> None:
    """In a spike's deletion: one fewer in the share's total ("total"; never below zero): in
    the spike's shard, or (``shard`` None) in the total counted before shards."""
    key = share_total_key(share_id) if shard is None else share_total_shard_key(share_id, shard)
    tx.update("total", LedgerItem(key), actions=[LedgerItem.count.add(-1)], condition=LedgerItem.count > 0)


def delete_share_counters(share_id: str, periods: Iterable[str]) -> None:
    with LedgerItem.batch_write() as batch:
        for key in share_total_keys(share_id):
            batch.delete(LedgerItem(key))
        for period in periods:
            batch.delete(LedgerItem(share_quota_key(share_id, period)))
            for key in unlimited_quota_keys(share_id, period):
                batch.delete(LedgerItem(key))
