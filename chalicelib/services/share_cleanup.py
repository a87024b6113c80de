"""What the scheduled ``share_deletions`` function does: finish share deletions a request
started and could not complete, remove the files of direct uploads whose function died
before it stored their share, and remove presigned uploads never completed. Each step is
idempotent: a run that dies is redone by the next."""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from chalicelib import clock
from chalicelib.errors import NotFound
from chalicelib.logs import get_logger
from chalicelib.services import metering
from chalicelib.services.presigned_uploads import unfinished_upload_seconds
from chalicelib.services.share_deletion import finish_deletion
from chalicelib.store import accounts as account_store
from chalicelib.store import charges, held_charges, ledger
from chalicelib.store import shares as share_store
from chalicelib.store.files import ShareFiles
from chalicelib.store.models import OutboxItem, Share
from chalicelib.store.transactions import together
from chalicelib.store.shares import DELETING, PENDING

log = get_logger("spikes.share_cleanup")


# The share_deletions job runs every 15 minutes (api/jobs.py).
RUN_INTERVAL_SECONDS = 15 * 60
# How long a run deletes spikes: its function may run 5 minutes (infra/stack.py), and the
# uploads' steps come after. A larger share is finished by the next runs.
DELETION_SECONDS_PER_RUN = 180


def finish_pending_deletions(share_files: ShareFiles, now: float, limit: int = 100,
                             until: Optional[float] = None) -> Dict[str, int]:
    """The scheduled job: finish deletions that a request started and could not complete, at
    most ``limit`` a run, deleting spikes until ``until`` (an epoch; then the rest is the next
    run's: a share of a million spikes outlasted the function, every run, and the steps after
    it never ran). When more are pending, each run's window starts ``limit`` further on
    (by the run's slot of the clock), so deletions that keep failing cannot starve the rest."""
    pending = ledger.members(ledger.PENDING_DELETIONS)
    start = (int(now // RUN_INTERVAL_SECONDS) * limit) % len(pending) if len(pending) > limit else 0
    finished = failed = 0
    for share_id in (pending[start:] + pending[:start])[:limit]:
        if until is not None and clock.epoch() >= until:
            break
        try:
            share = share_store.get_by_id(share_id)
            if share is None or share.status != DELETING:
                if share is None:  # removed, but the function died before dropping the export
                    share_files.drop_export(share_id)
                ledger.forget(ledger.PENDING_DELETIONS, share_id)
                continue
            finished += finish_deletion(share_files, share, until)
        except Exception:  # noqa: BLE001 - one stuck share must not block the others; next run retries
            log.exception("share.deletion_failed", share_id=share_id)
            failed += 1
    return {"pending": len(pending), "finished": finished, "failed": failed}


# No direct upload runs longer than a Lambda function may (15 minutes): a marker older than
# that belongs to a function that died.
ABANDONED_UPLOAD_SECONDS = 15 * 60


def finish_abandoned_uploads(share_files: ShareFiles, now: float, limit: int = 100) -> Dict[str, int]:
    """The scheduled job: remove the files of direct uploads whose function died before storing
    the share (their share does not exist), and forget the markers of those that finished."""
    removed = failed = 0
    for marker, share_id in _older_than(ledger.members(ledger.DIRECT_UPLOADS), now - ABANDONED_UPLOAD_SECONDS)[:limit]:
        try:
            if share_store.get_by_id(share_id) is None:
                share_files.delete_all(share_id)
                removed += 1
            ledger.forget(ledger.DIRECT_UPLOADS, marker)
        except Exception:  # noqa: BLE001 - the next run retries
            log.exception("share.abandoned_upload_failed", share_id=share_id)
            failed += 1
    return {"abandoned_uploads_removed": removed, "abandoned_uploads_failed": failed}


def _older_than(markers: List[str], cutoff: float) -> List[Tuple[str, str]]:
    """(marker, share id) of the markers started before ``cutoff``, oldest first: younger ones
    may still be running, and must not keep the old ones from being reached."""
    parsed = sorted((started, marker, share_id) for marker in markers
                    for share_id, started in [ledger.parse_upload_marker(marker)])
    return [(marker, share_id) for started, marker, share_id in parsed if started < cutoff]


def expire_unfinished_uploads(share_files: ShareFiles, now: float, presign_ttl_seconds: int,
                              limit: int = 100) -> Dict[str, int]:
    """The scheduled job: a presigned upload never completed leaves a pending share that
    nobody can open and that counts against its owner's share limit. Once it is older than
    ``unfinished_upload_seconds``, it is deleted (files, staging area, slug, its place in the
    limit and in its key's usage, and on the agent tier its held charge, given back), unless it
    received feedback meanwhile (kept: its owner decides; it exists, so its charge is released,
    counted now; while a cap has no room for it, it stays held and the job looks at it again a
    day later, so it is billed once there is room, never held for good). A completion
    that races the job wins or gets 404; never a share half deleted, nor one both kept and
    given back or billed and deleted."""
    expired = kept = failed = 0
    cutoff = now - unfinished_upload_seconds(presign_ttl_seconds)
    for marker, share_id in _older_than(ledger.members(ledger.PRESIGNED_UPLOADS), cutoff)[:limit]:
        try:
            share = share_store.get_by_id(share_id, consistent=True)
            if share is not None and share.status == PENDING:
                held = held_charges.get(metering.share_identifier(share_id))
                try:
                    share_store.tombstone_unfinished(share, also=together(
                        held_charges.dropping(held), charges.uncounting_pending(share)))
                except share_store.HoldsFeedback:
                    if held is not None and not _released(share, held, int(now)):
                        # Still held (no room under a cap): looked at again in a day, as now.
                        ledger.remember(ledger.PRESIGNED_UPLOADS, ledger.upload_marker(share_id, now))
                    log.warning("share.unfinished_upload_kept", share_id=share_id, reason="has feedback")
                    kept += 1
                except (share_store.NoLongerPending, NotFound):
                    pass  # completed or deleted meanwhile
                else:
                    # If this fails, the deletion is recorded: finish_pending_deletions finishes it.
                    finish_deletion(share_files, share)
                    log.info("share.unfinished_upload_expired", share_id=share_id)
                    expired += 1
            else:
                # Its URLs have expired: what they PUT after the share was deleted while pending is
                # read by nothing, and nothing else would remove it (docs/security.md 138).
                share_files.delete_staged(share_id)
            ledger.forget(ledger.PRESIGNED_UPLOADS, marker)  # done with, or never stored
        except Exception:  # noqa: BLE001 - the next run retries
            log.exception("share.unfinished_upload_failed", share_id=share_id)
            failed += 1
    return {"unfinished_uploads_expired": expired, "unfinished_uploads_kept": kept,
            "unfinished_uploads_failed": failed}


def _released(share: Share, held: OutboxItem, now: int) -> bool:
    """A kept upload exists: its charge is released now, counted in this period under its caps.
    False when a cap refused it (or it was completed or deleted meanwhile): it stays as it is
    until the job's next look, a completion releases it or a deletion drops it."""
    release = metering.release_at(held, account_store.get(share.owner_id), now)
    if held_charges.release_while_pending(share, release.write):
        return True
    log.warning("share.unfinished_upload_charge_held", share_id=share.share_id)
    return False
