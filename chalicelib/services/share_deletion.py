"""Deleting a share: a tombstone first (its feedback kept as an export, off its owner's count,
recorded as a pending deletion), then its files, spikes, counters, slug and record, each step
idempotent so a retried request or the ``share_deletions`` job finishes it."""
from __future__ import annotations

import json
from typing import Callable, List, Optional

from chalicelib import clock
from chalicelib.errors import NotFound
from chalicelib.logs import get_logger
from chalicelib.services import metering, outbound_webhooks, ownership, presigned_uploads, shares
from chalicelib.store import charges, held_charges, share_tombstones, share_work, spike_counters
from chalicelib.store import spikes as spike_store
from chalicelib.store.files import ShareFiles
from chalicelib.store.models import Delivery, OutboxItem, Share, User
from chalicelib.store.shares import DELETING, PENDING
from chalicelib.store.transactions import ConditionFailed, Transaction

log = get_logger("spikes.shares")

# A request deletes spikes for this long, then answers and leaves the rest to the
# share_deletions job: API Gateway ends an answer at 29 s, the export is read before.
REQUEST_DELETION_SECONDS = 10


def delete_share(share_files: ShareFiles, user: User, key: str, with_export: bool = True,
                 presign_ttl_seconds: Optional[int] = None) -> List[dict]:
    """Delete a share and everything it has, resumably. First a tombstone: the share's spikes are
    exported to S3 (unless ``with_export`` is False), then one transaction marks the share
    ``deleting`` (from then on it is gone for viewers, listings and new feedback), takes it off the
    owner's count and records it as a pending deletion. Then its files, spikes, counters, slug and
    record go; what is left after ``REQUEST_DELETION_SECONDS`` is the scheduled job's. If that
    clean-up fails, the client gets 503; a retried DELETE (by id or slug) or the scheduled job
    finishes it, and the retry answers with the export kept at the start. An export too large for
    one answer is refused before anything is deleted, unless ``with_export`` is False (the caller
    downloaded the feedback through the export route): it would be lost with the answer.
    ``presign_ttl_seconds``: how long a presigned upload's URLs live (the settings')."""
    return shares.as_new_owner(lambda owner: _delete_share(share_files, owner, key, with_export,
                                                           presign_ttl_seconds), user)


def _delete_share(share_files: ShareFiles, user: User, key: str, with_export: bool,
                  presign_ttl_seconds: Optional[int]) -> List[dict]:
    share = shares.owned_as_read(user, key, include_deleting=True)
    retried = share.status == DELETING
    if not retried:
        _sweep_staging_later(share, presign_ttl_seconds)
        # Refused before anything is deleted, after reading about one answer's worth of it.
        # Without it (the caller downloaded the feedback) nothing is read: the whole of a share
        # of 200,000 spikes outgrew the function's memory and time, and could not be deleted.
        exported = shares.export_spikes(share) if with_export else []
        if with_export:
            share_files.keep_export(share.share_id, json.dumps(exported).encode("utf-8"))
        # Recorded with the tombstone: the receiver hears of it even after the share is gone.
        deleted_event = outbound_webhooks.event(share, outbound_webhooks.SHARE_DELETED) \
            if outbound_webhooks.wants_events(share) else None
        # A presigned upload deleted before completion never existed as a share: its held
        # charge is given back, unless a completion released it meanwhile (its "held" write
        # fails: read again, it is gone, or a completion moved it to its own period and it is
        # given back there), and so is the key's count of it, unless a completion came first.
        pending = share.status == PENDING
        held = held_charges.get(metering.share_identifier(share.share_id)) if pending else None
        uncount = charges.uncounting_pending(share) if pending else None
        try:
            _tombstone(share, user, deleted_event, pending, held, uncount)
        except NotFound:  # deleted, or moved by a claim since it was read (docs/security.md 75)
            ownership.raise_if_claimed(user)
            raise
    elif with_export:  # a retry: the export kept at the start, or what is left when none was
        kept = share_files.kept_export(share.share_id)
        if kept is not None:
            shares.check_answerable(share, kept)
        exported = json.loads(kept) if kept is not None else shares.export_spikes(share)
    else:
        exported = []
    if finish_deletion(share_files, share, until=clock.epoch() + REQUEST_DELETION_SECONDS,
                       just_started=not retried) is None:
        log.info("share.deletion_continues", share_id=share.share_id)  # the job finishes it
    return exported if with_export else []


def _sweep_staging_later(share: Share, presign_ttl_seconds: Optional[int]) -> None:
    """A share young enough for its upload URLs to live yet: they can still PUT to its staging
    area after the deletion removed it, and a completed upload forgot its marker, so the share
    is handed to the share_deletions job again, which removes that area once the URLs have
    expired (docs/security.md 175). A pending upload's marker is still there: added again, a no-op."""
    window = presigned_uploads.unfinished_upload_seconds(presign_ttl_seconds or 0)
    started = clock.parse_iso(share.created_at).timestamp()
    if clock.epoch() < started + window:
        share_work.record_upload(share_work.PRESIGNED_UPLOADS, presigned_uploads.upload_marker(share), started + window)


def _tombstone(share: Share, user: User, deleted_event: Optional[Delivery], pending: bool, held: Optional[OutboxItem],
               uncount: Optional[Callable[[Transaction], None]]) -> None:
    try:
        share_tombstones.tombstone(share, user.user_id, _deletion_writes(deleted_event, held), uncount)
    except ConditionFailed:
        held = held_charges.get(metering.share_identifier(share.share_id)) if pending else None
        share_tombstones.tombstone(share, user.user_id, _deletion_writes(deleted_event, held), uncount)


def _deletion_writes(deleted_event: Optional[Delivery], held: Optional[OutboxItem]) -> Callable[[Transaction], None]:
    def writes(tx: Transaction) -> None:
        outbound_webhooks.add_to(tx, deleted_event)
        if held is not None:
            held_charges.drop(tx, held)
    return writes


def finish_deletion(share_files: ShareFiles, share: Share, until: Optional[float] = None,
                    just_started: bool = False) -> Optional[bool]:
    """Everything after the tombstone; each step is idempotent, so running it again after a
    failure (or concurrently) finishes the job. With ``until`` (an epoch), None when it
    stopped then with spikes left: the deletion stays pending for the job. Else whether this
    call ended the deletion: False when a run beside it ended it first (two job runs
    overlapping), so the job's summary counts each deletion once. ``just_started``: the
    tombstone is seconds old (``delete_share_spikes``' ``counted``)."""
    share_files.delete_all(share.share_id)
    # Read before any of its spikes or counters goes (docs/security.md 230): see delete_share_spikes.
    counted = spike_counters.share_spike_counts([share.share_id], consistent=True)[share.share_id] if just_started else 0
    if delete_share_spikes(share.share_id, share.created_at, until, counted) is None:
        return None
    share_tombstones.remove(share)
    # The pending mark goes last: until then the job finds the deletion and drops the export
    # (the deleted feedback) even when the share record is already gone.
    share_files.drop_export(share.share_id)
    ended_here = share_work.forget(share_work.DELETIONS, share.share_id)
    log.info("share.deleted", share_id=share.share_id)
    return ended_here


def delete_share_spikes(share_id: str, created_at: Optional[str] = None, until: Optional[float] = None,
                        counted: int = 0) -> Optional[int]:
    """Remove every spike of a share as its project index lists them, then its counters, in one
    read of the index. Idempotent. None, counters kept, when ``until`` (an epoch) came with spikes
    left, or when fewer than ``counted`` went: DynamoDB puts a spike on that index a moment after
    its write, so one posted just before the tombstone could be missing, and the record's removal
    (the tombstone the owner's listings leave out by) left it for good (docs/security.md 230).
    ``counted``, the share's total read consistently before, is exact from the tombstone on (a
    post counts in its own transaction; none lands after it). Later runs (a retried DELETE, the
    share_deletions job once the index caught up) pass 0; the counters are kept until the spikes
    are all gone, so a job run within the minute counts again."""
    removed = spike_store.delete_project(share_id, lambda: until is None or clock.epoch() < until)
    if removed is None or removed < counted:
        return None
    today = clock.now()
    periods = clock.periods_between(clock.parse_iso(created_at) if created_at else today, today)
    spike_counters.delete_share_counters(share_id, periods)
    return removed
