"""What the scheduled ``share_deletions`` function does: finish share deletions a request
started and could not complete, remove the files of direct uploads whose function died
before it stored their share, and remove presigned uploads never completed. Each step is
idempotent: a run that dies is redone by the next."""
from __future__ import annotations

from typing import Dict, Optional

from chalicelib import clock

from chalicelib.errors import NotFound
from chalicelib.logs import get_logger
from chalicelib.services import metering, pending_work
from chalicelib.services.presigned_uploads import unfinished_upload_seconds
from chalicelib.services.share_deletion import finish_deletion
from chalicelib.store import accounts as account_store
from chalicelib.store import charges, held_charges, share_tombstones, share_work
from chalicelib.store import shares as share_store
from chalicelib.store.files import ShareFiles
from chalicelib.store.models import OutboxItem, Share
from chalicelib.store.transactions import together
from chalicelib.store.shares import DELETING, PENDING

log = get_logger("spikes.share_cleanup")


# The share_deletions job runs every 15 minutes (api/jobs.py).
RUN_INTERVAL_SECONDS = 15 * 60
# A deletion is dated by the clock of the request that started it, which may run a little ahead
# of the job's: one dated up to this far ahead is finished now, not a run later.
CLOCK_SKEW_SECONDS = 60
# How long a run deletes spikes: its function may run 5 minutes (infra/stack.py), and the
# uploads' steps come after. A larger share is finished by the next runs.
DELETION_SECONDS_PER_RUN = 180
# A deletion started this recently may have spikes its project index does not list yet (it
# follows the table within about a second): finished only once all it counts were found.
INDEX_LAG_SECONDS = 60


def finish_pending_deletions(share_files: ShareFiles, now: float, limit: int = 100,
                             until: Optional[float] = None) -> Dict[str, int]:
    """The scheduled job: finish deletions that a request started and could not complete, the
    oldest first, at most ``limit`` a run (store/share_work.py; those an earlier version listed
    in the ledger are moved to items first), deleting spikes until ``until`` (an epoch; then the
    rest is the next run's: a share of a million spikes outlasted the function, every run, and
    the steps after it never ran). One whose step raises is moved back, later each time, and
    parked after too many attempts (services/pending_work.py), so deletions that keep failing
    cannot starve the rest."""
    share_work.move_legacy(share_work.DELETIONS, now)
    pending = share_work.due(share_work.DELETIONS, limit, now, early=CLOCK_SKEW_SECONDS)
    work = pending_work.Pass(share_work.DELETIONS, now)
    finished = 0
    for unit in pending:
        if work.stopped or (until is not None and clock.epoch() >= until):
            break
        just_started = not unit.attempts and unit.at > now - INDEX_LAG_SECONDS  # its time: the tombstone's
        ran, done = work.attempt(unit, lambda: _finish_deletion(share_files, unit.name, until, just_started))
        finished += bool(ran and done)
    return {"pending": len(pending), "finished": finished, "failed": work.failed}


def _finish_deletion(share_files: ShareFiles, share_id: str, until: Optional[float],
                     just_started: bool) -> Optional[bool]:
    # Consistently: read as it was before its tombstone, a share just deleted lost its deletion.
    share = share_store.get_by_id(share_id, consistent=True)
    if share is None or share.status != DELETING:
        if share is None:  # removed, but the function died before dropping the export
            share_files.drop_export(share_id)
        share_work.forget(share_work.DELETIONS, share_id)
        return False
    return finish_deletion(share_files, share, until, just_started)


# No direct upload runs longer than a Lambda function may (15 minutes): a marker older than
# that belongs to a function that died.
ABANDONED_UPLOAD_SECONDS = share_work.ABANDONED_UPLOAD_SECONDS


def finish_abandoned_uploads(share_files: ShareFiles, now: float, limit: int = 100) -> Dict[str, int]:
    """The scheduled job: remove the files of direct uploads whose function died before storing
    the share (their share does not exist), and forget the markers of those that finished. Only
    markers older than ``ABANDONED_UPLOAD_SECONDS`` are read, oldest first: younger ones may
    still be running."""
    share_work.move_legacy(share_work.DIRECT_UPLOADS, now, ABANDONED_UPLOAD_SECONDS)
    removed = 0
    work = pending_work.Pass(share_work.DIRECT_UPLOADS, now)
    for unit in share_work.due(share_work.DIRECT_UPLOADS, limit, now):
        if work.stopped:
            break
        ran, gone = work.attempt(unit, lambda: _remove_abandoned(share_files, unit.name))
        removed += bool(ran and gone)
    return {"abandoned_uploads_removed": removed, "abandoned_uploads_failed": work.failed}


def _remove_abandoned(share_files: ShareFiles, marker: str) -> bool:
    share_id = share_work.parse_upload_marker(marker)[0]
    gone = share_store.get_by_id(share_id) is None
    if gone:
        share_files.delete_all(share_id)
    forgotten = share_work.forget(share_work.DIRECT_UPLOADS, marker)
    return gone and forgotten  # a run beside this one forgot it first: counted there


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
    age = unfinished_upload_seconds(presign_ttl_seconds)
    share_work.move_legacy(share_work.PRESIGNED_UPLOADS, now, age)
    outcomes = {"expired": 0, "kept": 0}
    work = pending_work.Pass(share_work.PRESIGNED_UPLOADS, now)
    for unit in share_work.due(share_work.PRESIGNED_UPLOADS, limit, now):
        if work.stopped:
            break
        ran, outcome = work.attempt(unit, lambda: _expire_unfinished(share_files, unit.name, now, age))
        if ran and outcome:
            outcomes[outcome] += 1
    expired, kept, failed = outcomes["expired"], outcomes["kept"], work.failed
    return {"unfinished_uploads_expired": expired, "unfinished_uploads_kept": kept,
            "unfinished_uploads_failed": failed}


def _expire_unfinished(share_files: ShareFiles, marker: str, now: float, age: int) -> str:
    """One unfinished upload's turn: "expired", "kept" or "" (completed or deleted meanwhile)."""
    share_id = share_work.parse_upload_marker(marker)[0]
    outcome = ""
    share = share_store.get_by_id(share_id, consistent=True)
    if share is not None and share.status == PENDING:
        held = held_charges.get(metering.share_identifier(share_id))
        try:
            share_tombstones.tombstone_unfinished(share, also=together(
                held_charges.dropping(held), charges.uncounting_pending(share)))
        except share_tombstones.HoldsFeedback:
            if held is not None and not _released(share, held, int(now)):
                # Still held (no room under a cap): looked at again in a day, as now.
                share_work.record_upload(share_work.PRESIGNED_UPLOADS, share_work.upload_marker(share_id, now),
                                         now + age)
            log.warning("share.unfinished_upload_kept", share_id=share_id, reason="has feedback")
            outcome = "kept"
        except (share_tombstones.NoLongerPending, NotFound):
            pass  # completed or deleted meanwhile
        else:
            # If this fails, the deletion is recorded: finish_pending_deletions finishes it.
            finish_deletion(share_files, share)
            # A completion racing this may copy its files after they were removed and die before
            # it removes them: looked at again once no completion can still run (210).
            share_work.record_upload(share_work.PRESIGNED_UPLOADS, share_work.upload_marker(share_id, now),
                                     now + ABANDONED_UPLOAD_SECONDS)
            log.info("share.unfinished_upload_expired", share_id=share_id)
            outcome = "expired"
    elif share is None:
        # Its URLs have expired: what they PUT after the share was deleted while pending is
        # read by nothing (docs/security.md 138), nor are the copies of a completion that died
        # after the deletion removed the share's files (210): nothing else would remove them.
        share_files.delete_all(share_id)
    else:
        share_files.delete_staged(share_id)  # completed, or being deleted (its files go then)
    share_work.forget(share_work.PRESIGNED_UPLOADS, marker)  # done with, or never stored
    return outcome


def _released(share: Share, held: OutboxItem, now: int) -> bool:
    """A kept upload exists: its charge is released now, counted in this period under its caps.
    False when a cap refused it (or it was completed or deleted meanwhile): it stays as it is
    until the job's next look, a completion releases it or a deletion drops it."""
    release = metering.release_at(held, account_store.get(share.owner_id), now)
    if held_charges.release_while_pending(share, release.write):
        return True
    log.warning("share.unfinished_upload_charge_held", share_id=share.share_id)
    return False
