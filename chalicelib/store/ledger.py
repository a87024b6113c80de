"""The ledger table: counters and markers. Key formats are defined here (so usage, rate limits,
billing and the scheduled job agree on them), but for those one module alone uses: counting
spikes, ``quota#`` and ``spikes#`` (store/spike_counters.py), ``keyusage#`` (store/charges.py),
the legacy sets and the ``migration#…`` markers (their modules).

Kinds of item (pk):
- ``quota#<share_id>#<period>``  spikes a share received in a period while its owner's tier had
                                 a limit (the quota counter, conditioned on the limit)
- ``quota#<share_id>#<period>#<n>``  the same while the tier had no limit, in shards
                                 (store/spike_counters.py)
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
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from pynamodb.attributes import NumberAttribute
from pynamodb.constants import ALL_NEW
from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.exceptions import PutError, PynamoDBException

from chalicelib.crypto import subject_hash
from chalicelib.store.models import LedgerItem
from chalicelib.store.transactions import Transaction, conditional_failed, update_if

# Counters outlive their period long enough for reports, then the table TTL removes them.
RETENTION_SECONDS = 400 * 24 * 3600
RUNNING, DONE = "running", "done"


# --- keys ------------------------------------------------------------------------------------

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


def cost_within(cost: int, cost_limit: Optional[int]):
    """The condition that adding ``cost`` keeps the item's cost at most ``cost_limit``."""
    if cost_limit is None:
        return None
    return LedgerItem.cost.does_not_exist() | (LedgerItem.cost <= cost_limit - cost)


# A subject's windows live in one item, one number attribute per fixed window (``w<index>``).
# Windows older than the previous one are removed on the next hit; a subject silent for longer
# than this many windows leaves its stale attribute to the item's TTL (it is never read).
STALE_WINDOWS_DROPPED = 3


def hit_rate_window(limit_name: str, subject: str, window_index: int, expires_at: int,
                    hits: int = 1) -> Tuple[int, int]:
    """Count ``hits`` in the window; (hits in it, hits in the window before). One UpdateItem:
    ADD to this window, REMOVE older ones, and ALL_NEW returns the previous window too."""
    current, previous = f"w{window_index}", f"w{window_index - 1}"
    stale = [NumberAttribute(attr_name=f"w{window_index - 2 - n}") for n in range(STALE_WINDOWS_DROPPED)]
    response = LedgerItem._get_connection().update_item(
        rate_limit_key(limit_name, subject), return_values=ALL_NEW,
        actions=[NumberAttribute(attr_name=current).add(hits), LedgerItem.expires_at.set(expires_at),
                 *(attribute.remove() for attribute in stale)])
    attributes = response.get("Attributes", {})
    return int(attributes[current]["N"]), int(attributes.get(previous, {}).get("N", 0))


def hit_rate_window_unless_failing(limit_name: str, subject: str, window_index: int, expires_at: int,
                                   hits: int) -> Optional[Tuple[int, int]]:
    """``hit_rate_window``, or None when the store did not count them (throttled or unreachable
    after the client's own retries): for work already done, which a 503 would have done again."""
    try:
        return hit_rate_window(limit_name, subject, window_index, expires_at, hits)
    except (PynamoDBException, BotoCoreError, ClientError):
        return None


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
