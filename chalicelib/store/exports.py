"""Background exports (services/background_exports.py): one ledger item per export,
``export#<id>``, holding its state, and one pending unit, ``export#<id>`` in the deliveries
``due_index`` partition ``exports``, by which the scheduled job finds the running ones (no Scan).

The item: ``owner_id`` (the account that started it; none without one), ``state`` (running,
done, failed), ``count`` (spikes written to the parts sent),
``detail`` (who started it, what it reads, its S3 multipart upload, the parts sent with their
ETags, the read's position after the last spike sent, bytes), ``expires_at`` (the table's TTL),
``version`` and ``lease_until``. A run takes the export with a conditional write (``claim``: no
other run's lease holds it, and its version is as read), and every write of the state after that
is conditioned on the version the run last wrote: a run whose lease ran out and was taken by
another finds its next write refused (``LeaseLost``) and stops, so no two runs advance one export.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from chalicelib.store.models import LedgerItem
from chalicelib.store.pending_queue import PendingQueue
from chalicelib.store import transactions
from chalicelib.store.transactions import update_if

RUNNING, DONE, FAILED = "running", "done", "failed"
KEY_PREFIX = "export#"
# Exports were never listed in a ledger set: the queue's legacy item is never read.
QUEUE = PendingQueue(partition="exports", prefix=KEY_PREFIX, legacy_item="")


class LeaseLost(Exception):
    """Another run took the export (this run's lease ran out): this run writes nothing more."""


@dataclass
class Job:
    export_id: str
    state: str
    count: int
    detail: Dict[str, Any]
    version: int
    lease_until: int
    expires_at: int
    changes: Dict[str, Any] = field(default_factory=dict)


def _item(export_id: str) -> LedgerItem:
    return LedgerItem(KEY_PREFIX + export_id)


def _job(item: LedgerItem) -> Job:
    return Job(item.pk[len(KEY_PREFIX):], item.state or RUNNING, int(item.count or 0), dict(item.detail or {}),
               int(item.version or 0), int(item.lease_until or 0), int(item.expires_at or 0))


def create(export_id: str, detail: Dict[str, Any], now: int, expires_at: int, owner_id: Optional[str] = None) -> Job:
    """A new running export (a fresh random id: refused only by an id taken, which is raised) and
    its pending unit, so the job continues what the request leaves, in one transaction: written
    one after the other, a request killed (or failing) between them left a running export no
    run would ever take. ``owner_id``: the account that started it, by which the ledger's
    ``owner_index`` finds it (store/owned_items.py)."""
    item = LedgerItem(KEY_PREFIX + export_id, state=RUNNING, count=0, detail=detail, version=0, lease_until=0,
                      expires_at=expires_at, owner_id=owner_id)

    def write(tx: transactions.Transaction) -> None:
        tx.save("export", item, condition=LedgerItem.pk.does_not_exist())
        QUEUE.record(export_id, now, tx=tx)
    transactions.run(write, idempotent=True)  # a commit whose answer was lost is answered as done
    return _job(item)


def get(export_id: str) -> Optional[Job]:
    """The export as last written (a consistent read), None when there is none."""
    try:
        return _job(LedgerItem.get(KEY_PREFIX + export_id, consistent_read=True))
    except LedgerItem.DoesNotExist:
        return None


def is_running(export_id: str) -> bool:
    stored = get(export_id)
    return stored is not None and stored.state == RUNNING


def claim(export_id: str, now: int, lease_seconds: int) -> Optional[Job]:
    """Take a running export for one run, until ``now + lease_seconds``: the job as taken, or
    None when it is not running, another run's lease holds it, or another run took it first."""
    job = get(export_id)
    if job is None or job.state != RUNNING or job.lease_until > now:
        return None
    as_read = (LedgerItem.version == job.version) & (LedgerItem.state == RUNNING)
    if not update_if(_item(export_id), [LedgerItem.lease_until.set(now + lease_seconds), LedgerItem.version.add(1)],
                     as_read):
        return None
    job.version += 1
    job.lease_until = now + lease_seconds
    return job


def save(job: Job, detail: Dict[str, Any], count: Optional[int] = None, state: Optional[str] = None,
         expires_at: Optional[int] = None, release: bool = False) -> None:
    """Write the run's new state (``detail`` whole; the spikes sent, a final ``state``, a new
    expiry; ``release``: the lease given up, for the next run). Conditioned on the version this
    run wrote last; ``LeaseLost`` when another run has taken the export since."""
    actions = [LedgerItem.detail.set(detail), LedgerItem.version.add(1)]
    if count is not None:
        actions.append(LedgerItem.count.set(count))
    if state is not None:
        actions.append(LedgerItem.state.set(state))
    if expires_at is not None:
        actions.append(LedgerItem.expires_at.set(expires_at))
    if release or state is not None:
        actions.append(LedgerItem.lease_until.set(0))
    if not update_if(_item(job.export_id), actions, LedgerItem.version == job.version):
        raise LeaseLost(job.export_id)
    job.version += 1
    job.detail = copy.deepcopy(detail)
    job.count = job.count if count is None else count
    job.state = job.state if state is None else state
    job.expires_at = job.expires_at if expires_at is None else expires_at


def finish_unit(export_id: str) -> bool:
    """Forget the export's pending unit (it is done or failed): False when it was gone already."""
    return QUEUE.finish(export_id)
