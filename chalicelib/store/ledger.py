"""The ledger table: counters and markers. Key formats are defined here (so spikes, shares, usage,
rate limits, billing and the scheduled job agree on them), but for those one module alone uses:
``keyusage#`` (store/charges.py), the legacy sets and the ``migration#…`` markers (their modules).

Kinds of item (pk):
- ``quota#<share_id>#<period>``  spikes a share received in a period while its owner's tier had
                                 a limit (the quota counter, conditioned on the limit)
- ``quota#<share_id>#<period>#<n>``  the same while the tier had no limit, in shards (below)
- ``spikes#<share_id>#<n>``      spikes a share holds now (its total), in shards; ``spikes#<share_id>``
                                 holds what was counted before the total was sharded
- ``usage#<user_id>#<period>``   spikes the owner's shares received in a period; on the agent
                                 tier also ``cost``, what the account was charged (thousandths of a cent)
- ``keyusage#<key_id>#<period>`` spikes and shares an API key created, and its ``cost``
- ``usage-archive#<user_id>#<period>``  a closed period's usage summary (the scheduled job)
- ``rl#<limit>#<subject hash>``  a rate-limit subject: attribute ``w<window>`` per fixed window
- ``stripe-event#<event_id>``    a Stripe event applied (idempotency marker)
- ``job#<job>#<run>``            a scheduled pass and its checkpoint
- ``pro-features#owners``        Stripe events' runs an earlier version listed (store/pro_feature_runs.py moves them)
- ``deletions#shares``           ids of shares whose deletion started and is not finished
- ``uploads#shares``             direct uploads whose share may not be stored yet (``<share_id>@<epoch>``)
- ``uploads#presigned``          presigned uploads not completed yet (``<share_id>@<epoch>``)
- ``webhooks#release``           webhook releases an earlier version recorded (store/webhook_releases.py moves them)
Counters are keyed by period, so a new period starts from zero by construction.

Shards: every post to a share used to update the same counter items, and concurrent transactions
on one item conflict (DynamoDB cancels them; DynamoDB Local queues them): a hot share was
serialized on its counters. Counters nobody conditions on are now split into ``COUNTER_SHARDS``
items, the shard chosen by the spike's id (so its deletion finds it again), and summed on read.
A limited tier's period counter stays one item: its condition is what keeps the quota exact.
"""
from __future__ import annotations

import zlib
from typing import Any, Dict, Iterable, List, Optional, Tuple

from pynamodb.attributes import NumberAttribute
from pynamodb.constants import ALL_NEW
from pynamodb.exceptions import PutError

from chalicelib.crypto import subject_hash
from chalicelib.store.models import LedgerItem
from chalicelib.store.transactions import Transaction, conditional_failed, update_if

# Counters outlive their period long enough for reports, then the table TTL removes them.
RETENTION_SECONDS = 400 * 24 * 3600
RUNNING, DONE = "running", "done"


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


def user_usage_key(user_id: str, period: str) -> str:
    return f"usage#{user_id}#{period}"


def usage_archive_key(user_id: str, period: str) -> str:
    return f"usage-archive#{user_id}#{period}"


def rate_limit_key(limit_name: str, subject: str) -> str:
    return f"rl#{limit_name}#{subject_hash(subject)}"


def stripe_event_key(event_id: str) -> str:
    return f"stripe-event#{event_id}"


def job_key(job: str, run: str) -> str:
    return f"job#{job}#{run}"


# --- counters --------------------------------------------------------------------------------

def count(key: str) -> int:
    try:
        return int(LedgerItem.get(key).count or 0)
    except LedgerItem.DoesNotExist:
        return 0


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


def cost_within(cost: int, cost_limit: Optional[int]):
    """The condition that adding ``cost`` keeps the item's cost at most ``cost_limit``."""
    if cost_limit is None:
        return None
    return LedgerItem.cost.does_not_exist() | (LedgerItem.cost <= cost_limit - cost)


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


# A subject's windows live in one item, one number attribute per fixed window (``w<index>``).
# Windows older than the previous one are removed on the next hit; a subject silent for longer
# than this many windows leaves its stale attribute to the item's TTL (it is never read).
STALE_WINDOWS_DROPPED = 3


def hit_rate_window(limit_name: str, subject: str, window_index: int, expires_at: int) -> Tuple[int, int]:
    """Count one hit in the window; (hits in it, hits in the window before). One UpdateItem:
    ADD to this window, REMOVE older ones, and ALL_NEW returns the previous window too."""
    current, previous = f"w{window_index}", f"w{window_index - 1}"
    stale = [NumberAttribute(attr_name=f"w{window_index - 2 - n}") for n in range(STALE_WINDOWS_DROPPED)]
    response = LedgerItem._get_connection().update_item(
        rate_limit_key(limit_name, subject), return_values=ALL_NEW,
        actions=[NumberAttribute(attr_name=current).add(1), LedgerItem.expires_at.set(expires_at),
                 *(attribute.remove() for attribute in stale)])
    attributes = response.get("Attributes", {})
    return int(attributes[current]["N"]), int(attributes.get(previous, {}).get("N", 0))


def rate_window(limit_name: str, subject: str, window_index: int) -> Tuple[int, int]:
    """What ``hit_rate_window`` would count on, read without counting a hit (one GetItem)."""
    current, previous = f"w{window_index}", f"w{window_index - 1}"
    attributes = LedgerItem._get_connection().get_item(rate_limit_key(limit_name, subject), consistent_read=True,
                                                       attributes_to_get=[current, previous]).get("Item", {})
    return int(attributes.get(current, {}).get("N", 0)), int(attributes.get(previous, {}).get("N", 0))


# --- markers ---------------------------------------------------------------------------------

def stripe_event_seen(event_id: str) -> bool:
    try:
        LedgerItem.get(stripe_event_key(event_id), consistent_read=True)
        return True
    except LedgerItem.DoesNotExist:
        return False


def stripe_event_marker(event_id: str, outcome: str, detail: Dict[str, Any], expires_at: int,
                        owner_id: Optional[str] = None) -> LedgerItem:
    """``owner_id``: the account the event is about, so its marker is found by owner (the sparse
    ``owner_index``) when the account is exported or deleted; none for an event about no account."""
    return LedgerItem(stripe_event_key(event_id), state=outcome, expires_at=expires_at, detail=detail,
                      owner_id=owner_id)


def mark_stripe_event(tx: Transaction, marker: LedgerItem) -> None:
    """In the event's transaction ("marker"): refused when the event was applied before."""
    tx.save("marker", marker, condition=LedgerItem.pk.does_not_exist())


def save_once(item: LedgerItem) -> bool:
    """Write a marker or summary unless one exists. True when this call wrote it."""
    try:
        item.save(condition=LedgerItem.pk.does_not_exist())
        return True
    except PutError as exc:
        if conditional_failed(exc):
            return False
        raise


def save_usage_archive(user_id: str, period: str, spikes: int, detail: Dict[str, Any], now: float) -> bool:
    """A closed period's summary, written once. True when this call wrote it."""
    return save_once(LedgerItem(usage_archive_key(user_id, period), count=spikes, state="closed",
                                expires_at=int(now) + RETENTION_SECONDS, detail=detail))


# --- resumable jobs --------------------------------------------------------------------------

def start_job(key: str, detail: Dict[str, Any], now: float, owner_id: Optional[str] = None) -> LedgerItem:
    """The job's item: created as running with ``detail`` (a run of one user's: ``owner_id``,
    on the ledger's owner index), or the one already there."""
    item = LedgerItem(key, count=0, state=RUNNING, expires_at=int(now) + RETENTION_SECONDS, detail=detail,
                      owner_id=owner_id)
    if save_once(item):
        return item
    return LedgerItem.get(key, consistent_read=True)


def checkpoint_job(job: LedgerItem, detail: Dict[str, Any], done: bool) -> bool:
    """Store progress if nobody else did since ``job`` was read (its version is ``count``).
    False when another invocation checkpointed first: that one carries on."""
    version = int(job.count or 0)
    return update_if(job, [LedgerItem.count.add(1), LedgerItem.detail.set(detail),
                           LedgerItem.state.set(DONE if done else RUNNING)],
                     (LedgerItem.count == version) & (LedgerItem.state == RUNNING))


# --- sets an earlier version kept work in (store/pending_queue.py moves them into items) ------
# Members of one item's string set: every writer contended on that item, DynamoDB's 400 KB item
# limit bounded how many the installation could hold, and two regions writing it lost members.
# Only read and emptied now (tests/test_architecture.py).

def forget(work: str, member: str) -> None:
    LedgerItem(work).update(actions=[LedgerItem.members.delete({member})])


def members(work: str) -> List[str]:
    try:
        return sorted(LedgerItem.get(work, consistent_read=True).members or [])
    except LedgerItem.DoesNotExist:
        return []
