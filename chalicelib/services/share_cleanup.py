"""What the scheduled ``share_deletions`` function does: finish share deletions a request
started and could not complete, and remove the files of direct uploads whose function died
before it stored their share. Each step is idempotent: a run that dies is redone by the next."""
from __future__ import annotations

from typing import Dict

from chalicelib.logs import get_logger
from chalicelib.services.shares import finish_deletion
from chalicelib.store import ledger
from chalicelib.store import shares as share_store
from chalicelib.store.files import ShareFiles
from chalicelib.store.shares import DELETING

log = get_logger("spikes.share_cleanup")


def finish_pending_deletions(share_files: ShareFiles, limit: int = 100) -> Dict[str, int]:
    """The scheduled job: finish deletions that a request started and could not complete."""
    pending = ledger.pending_deletions()
    finished = failed = 0
    for share_id in pending[:limit]:
        try:
            share = share_store.get_by_id(share_id)
            if share is None or share.status != DELETING:
                if share is None:  # removed, but the function died before dropping the export
                    share_files.drop_export(share_id)
                ledger.forget_pending_deletion(share_id)
                continue
            finish_deletion(share_files, share)
            finished += 1
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
    for marker in ledger.pending_uploads()[:limit]:
        share_id, started = ledger.parse_upload_marker(marker)
        if now - started < ABANDONED_UPLOAD_SECONDS:
            continue  # may still be running
        try:
            if share_store.get_by_id(share_id) is None:
                share_files.delete_all(share_id)
                removed += 1
            ledger.forget_pending_upload(marker)
        except Exception:  # noqa: BLE001 - the next run retries
            log.exception("share.abandoned_upload_failed", share_id=share_id)
            failed += 1
    return {"abandoned_uploads_removed": removed, "abandoned_uploads_failed": failed}
