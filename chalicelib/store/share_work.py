"""The share_deletions job's pending work (services/share_cleanup.py), one small item per unit
(store/pending_queue.py) in a partition of the deliveries table's ``due_index``:

- ``DELETIONS``: shares whose deletion started, ``share-deletion#<share_id>`` by the time it
  started, recorded in the tombstone's own transaction (no deletion starts unrecorded);
- ``DIRECT_UPLOADS``: direct uploads whose files are in S3 and whose share may not be stored
  yet, ``direct-upload#<share_id>@<epoch the upload started>``;
- ``PRESIGNED_UPLOADS``: presigned uploads not completed yet (their pending share counts
  against its owner's share limit), ``presigned-upload#<share_id>@<epoch it started>``.

Upload units are written outside the share's transaction and consumed when the upload ends.
Each is dated by when one left behind is old enough for the job (no upload could still be
running, its URLs have expired), and the job reads only units whose date has come, oldest
first; one whose step failed is moved later, so it waits its delay and no more.

These used to be members of three ledger items (``deletions#shares``, ``uploads#shares``,
``uploads#presigned``): string sets that every upload and deletion of every user wrote, that
DynamoDB's 400 KB item limit bounded for the whole installation (docs/security.md 206) and that
two regions writing at once lose members of. The job moves what an earlier version left there
into items, their times kept, a bounded number per run, until they are empty.
"""
from __future__ import annotations

from typing import Iterable, List, Set, Tuple

from chalicelib.store.models import Delivery
from chalicelib.store.pending_queue import PendingQueue, Unit
from chalicelib.store.transactions import Transaction

DELETIONS = PendingQueue(partition="share-deletions", prefix="share-deletion#", legacy_item="deletions#shares")
DIRECT_UPLOADS = PendingQueue(partition="direct-uploads", prefix="direct-upload#", legacy_item="uploads#shares")
PRESIGNED_UPLOADS = PendingQueue(partition="presigned-uploads", prefix="presigned-upload#",
                                 legacy_item="uploads#presigned")
QUEUES = (DELETIONS, DIRECT_UPLOADS, PRESIGNED_UPLOADS)
LEGACY_MOVED_PER_RUN = 100
# No direct upload runs longer than a Lambda function may (15 minutes): a unit older than that
# belongs to a function that died.
ABANDONED_UPLOAD_SECONDS = 15 * 60


def record_deletion(tx: Transaction, share_id: str, now: float) -> None:
    """In the tombstone's transaction: the deletion is pending (the same share again is the
    same unit, its time kept)."""
    DELETIONS.record(share_id, int(now), tx)


def deleting(limit: int) -> List[str]:
    """The shares of the ``limit`` newest pending deletions of every owner (not parked): what an
    owner's listing leaves out only while an upgrade's DynamoDB still builds the shares'
    ``owner_status_index`` (store/shares.deleting_of). One Query, eventually consistent."""
    items = Delivery.due_index.query(DELETIONS.partition, scan_index_forward=False, limit=limit, page_size=limit)
    return [item.delivery_id[len(DELETIONS.prefix):] for item in items]


def being_deleted(share_ids: Iterable[str]) -> Set[str]:
    """Those of ``share_ids`` whose deletion started and is not finished (pending or parked),
    read consistently: one GetItem each."""
    found = set()
    for share_id in set(share_ids):
        try:
            Delivery.get(DELETIONS.prefix + share_id, consistent_read=True, attributes_to_get=["delivery_id"])
            found.add(share_id)
        except Delivery.DoesNotExist:
            pass
    return found


def upload_marker(share_id: str, started: float) -> str:
    """An upload's unit name: ``<share_id>@<epoch seconds it started>``."""
    return f"{share_id}@{int(started)}"


def parse_upload_marker(marker: str) -> Tuple[str, int]:
    share_id, _, started = marker.rpartition("@")
    return share_id, int(started) if started.isdigit() else 0


def _started(marker: str) -> int:
    return parse_upload_marker(marker)[1]


def record_upload(queue: PendingQueue, marker: str, due_at: float) -> None:
    """An upload has started: the job may clean it up from ``due_at`` on."""
    queue.record(marker, int(due_at))


def forget(queue: PendingQueue, name: str) -> bool:
    """The unit is done with, pending or parked; False when it was gone already (another run
    or request forgot it first)."""
    return queue.finish(name)


def due(queue: PendingQueue, limit: int, now: float, early: int = 0) -> List[Unit]:
    """Up to ``limit`` units of ``queue`` whose date has come (``early``: or comes within that
    many seconds, unless moved back after failing), oldest first; eventually consistent: one
    consumed may show once more."""
    return queue.due(limit, now, early)


def move_legacy(queue: PendingQueue, now: float, age: int = 0) -> int:
    """Move up to ``LEGACY_MOVED_PER_RUN`` members of the set an earlier version kept for
    ``queue`` into items: a deletion (a share id, its start unknown) is due at once, an upload
    ``age`` seconds after it started. How many moved."""
    return queue.move_legacy(lambda member: _started(member) + age if queue is not DELETIONS else 0,
                             LEGACY_MOVED_PER_RUN, now)
