"""Presigned uploads, for shares too large for one request (docs/shares.md): the share is
stored ``pending`` and the client PUTs each file to a staging area, then completes it. An
upload never completed is removed a day later by the share_deletions job
(``share_cleanup.expire_unfinished_uploads``). On the agent tier the share is charged when the
upload starts, but its usage event is held until it completes, and the charge is given back
if it never does (store/held_charges.py): a customer pays only for shares that exist."""
from __future__ import annotations

from datetime import timedelta
from typing import Callable, Dict, List, Optional, Tuple

from chalicelib import clock
from chalicelib.errors import DependencyUnavailable, InvalidFilename, NotFound, ValidationFailed
from chalicelib.logs import get_logger
from chalicelib.services import metering, quotas, share_creation, shares, uploads
from chalicelib.services.share_creation import FileSpec, ShareOptions
from chalicelib.settings import Settings
from chalicelib.store import share_work
from chalicelib.store import shares as share_store
from chalicelib.store.files import ChangedDuringPublish, ShareFiles
from chalicelib.store.models import ApiKey, Share, User
from chalicelib.store.shares import DELETING, PENDING
from chalicelib.store.transactions import ConditionFailed, Transaction, together

log = get_logger("spikes.presigned_uploads")

# A presigned upload's URLs expire after ``presign_ttl_seconds`` (15 minutes by default); its
# share may still be completed from what was uploaded in time, for a day at least.
UNFINISHED_UPLOAD_SECONDS = 24 * 3600
# A cancellation, a password removed and a held charge moved meanwhile each refuse one attempt.
ACTIVATION_ATTEMPTS = 4


def unfinished_upload_seconds(presign_ttl_seconds: int) -> int:
    return max(UNFINISHED_UPLOAD_SECONDS, presign_ttl_seconds + 3600)


def complete_before(settings: Settings, share: Share) -> str:
    """When the share_deletions job may delete the share if it is still pending."""
    started = clock.parse_iso(share.created_at)
    return clock.iso(started + timedelta(seconds=unfinished_upload_seconds(settings.presign_ttl_seconds)))


def start(settings: Settings, share_files: ShareFiles, user: User, options: ShareOptions, files: List[FileSpec],
          base_url: str, key: Optional[ApiKey] = None) -> Tuple[Share, List[dict]]:
    """The share is stored as ``pending`` (and counted against the limit) and every file gets a
    presigned PUT URL. Made as the new owner when a claim merged the account meanwhile."""
    return shares.as_new_owner(lambda owner: _start(settings, share_files, owner, options, files, base_url, key), user)


def _start(settings: Settings, share_files: ShareFiles, user: User, options: ShareOptions, files: List[FileSpec],
           base_url: str, key: Optional[ApiKey]) -> Tuple[Share, List[dict]]:
    if not files:
        raise ValidationFailed.field("files", "List at least one file", "MISSING_FIELD")
    if len(files) > settings.max_share_files:
        raise ValidationFailed.field("files", f"A share holds at most {settings.max_share_files} files",
                                     "TOO_MANY_FILES")
    if len({f.path for f in files}) != len(files):
        raise InvalidFilename("The same file is listed twice")
    uploads.check_total_size(sum(f.size for f in files), settings.max_share_bytes)
    uploads.check_listed_paths([f.path for f in files])
    uploads.check_served_sizes([(f.path, f.size, f.content_type) for f in files], settings.max_served_file_bytes)
    share_creation.check_options(settings, user, options, base_url)
    share = share_creation.new_share_record(share_creation.new_share_id(), user, options, files, PENDING)
    # Recorded before the share: one never completed is removed by the share_deletions job
    # (share_cleanup.expire_unfinished_uploads), which frees its place in the owner's limit.
    charge = metering.share_charge(settings, user, share.share_id, key, held=True)
    if key is not None and charge is None:  # no charge held to record the key's count: the share does
        share.counted_key_id, share.counted_period = key.key_id, clock.current_period()
    marker = upload_marker(share)
    cleanable_at = clock.parse_iso(share.created_at).timestamp() + unfinished_upload_seconds(settings.presign_ttl_seconds)
    share_work.record_upload(share_work.PRESIGNED_UPLOADS, marker, cleanable_at)
    try:
        share = share_creation.insert_with_slug(share, user, options.slug or options.name, settings, base_url, charge, key)
    except Exception:
        stored = share_creation.stored_all_the_same(share, user, share_work.PRESIGNED_UPLOADS, marker)
        if stored is None:
            raise
        share = stored
    targets = [{
        "path": f.path, "method": "PUT", "headers": {"Content-Type": f.content_type},
        "url": share_files.upload_url(share.share_id, f.path, f.content_type, f.size, settings.presign_ttl_seconds),
    } for f in files]
    return share, targets


def upload_marker(share: Share) -> str:
    """The upload's unit in ``share_work.PRESIGNED_UPLOADS``, from the share alone."""
    return share_work.upload_marker(share.share_id, clock.parse_iso(share.created_at).timestamp())


def complete(settings: Settings, share_files: ShareFiles, user: User, key: str) -> Share:
    """Check that every announced file arrived with its announced size, publish exactly the
    objects that were checked, then activate. A completed share's files never change: the
    presigned URLs write to a staging area that is only read here, while pending. Completed as
    the new owner when a claim moved the share after this request read its account."""
    return shares.as_new_owner(lambda owner: _complete(settings, share_files, owner, key), user)


def _complete(settings: Settings, share_files: ShareFiles, user: User, key: str) -> Share:
    share = shares.owned_as_read(user, key)
    if share.status != PENDING:
        share_files.delete_staged(share.share_id)  # a completion that died after activating left it
        return share
    verified = _staged_as_announced(share, share_files.staged(share.share_id), settings.max_share_bytes)
    at = int(clock.epoch())  # the completion's moment: the period it is counted in
    release = metering.releasing(share.share_id, user, at)
    if release is not None:
        release.move_first(share)  # a cap with no room refuses it (429) before any file is copied
    try:
        share_files.publish(share.share_id, verified)
    except ChangedDuringPublish as exc:
        current = share_store.get_by_id(share.share_id, consistent=True)
        if current is None or current.status == DELETING:  # expired or deleted meanwhile
            raise _gone(share_files, share) from None
        if current.status != PENDING:  # a concurrent completion published it
            return current
        raise ValidationFailed.field(str(exc), "The file changed while the upload was being completed; "
                                     "complete again", "CHANGED_DURING_COMPLETE") from None
    # Completed after the paid tier (Pro or agent) ended: protected, so locked rather than public.
    paid = quotas.has_paid_features(quotas.effective_tier(user))
    try:
        share = _activate(share, user, locked=bool(share.password_hash) and not paid, at=at, release=release)
    except NotFound:
        raise _gone(share_files, share) from None
    if share.status == DELETING:  # expired by the job (or deleted by the owner) meanwhile
        raise _gone(share_files, share)
    # Only now: until the share is active, a retried completion publishes from the staging area.
    share_files.delete_staged(share.share_id)
    try:
        share_work.forget(share_work.PRESIGNED_UPLOADS, upload_marker(share))
    except Exception:  # noqa: BLE001 - the share is complete; the job forgets the marker of a share not pending
        log.warning("share.upload_marker_kept", share_id=share.share_id)
    return share


def _staged_as_announced(share: Share, staged: Dict[str, Tuple[int, str]], max_share_bytes: int
                         ) -> Dict[str, Tuple[str, str]]:
    """Every announced file, staged with its announced size: ``{path: (etag, content type)}``,
    the exact objects to publish. Else ValidationFailed naming each file missing or different."""
    problems, total, verified = [], 0, {}
    for path, info in sorted((share.files or {}).items()):
        size, etag = staged.get(path, (None, ""))
        if size is None:
            problems.append({"field": path, "message": "File was not uploaded", "code": "MISSING_UPLOAD"})
            continue
        total += size
        if size != int(info["size"]):
            problems.append({"field": path, "message": f"Uploaded {size} bytes, announced {info['size']}",
                             "code": "SIZE_MISMATCH"})
        verified[path] = (etag, info["type"])
    uploads.check_total_size(total, max_share_bytes)
    if problems:
        raise ValidationFailed("Some files are missing or differ from the announced sizes", details=problems)
    return verified


def _gone(share_files: ShareFiles, share: Share) -> NotFound:
    """The share was expired or deleted while this completion copied its files: the deletion may
    have removed the served files before these copies landed, so they are removed again (the
    deletion's removal is idempotent, and a share that is deleting is never served again)."""
    share_files.delete_all(share.share_id)
    return NotFound("Share not found")


def _activate(share: Share, owner: User, locked: bool, at: int, release: Optional[metering.Release]) -> Share:
    """pending -> active (or locked), releasing the share's held charge in the same transaction:
    the completion and the job's expiry (which drops it) are both conditioned on the share
    still being pending, so exactly one of them takes the charge. The share is counted in the
    period it is completed in: its usage event's time, and where the caps count it (a cap that
    period has reached refuses it, 429; the upload stays pending, to complete later: ``complete``
    moved the charge to that period before copying any file, so this refuses only in a race).
    ``release``: the held charge as ``complete`` read (and moved) it; read again only when the
    transaction finds it changed.
    ``locked`` False for a protected share: it opens only while the owner still pays, as the
    transaction finds it; a subscription that ended meanwhile had its stripping pass this share
    while pending, so it is locked here instead."""
    for attempt in range(ACTIVATION_ATTEMPTS):
        try:
            activated = share_store.activate(share, locked, also=_writes(share, owner, locked, release, at))
        except ConditionFailed as failed:
            refusal = release.refusal(failed) if release is not None else None
            if refusal is not None:
                raise refusal from None
            if attempt == ACTIVATION_ATTEMPTS - 1:
                raise
            if "owner" in failed:  # the paid tier ended since this request read it
                locked = True
                continue
            # released by the job meanwhile (it keeps an upload holding feedback), or moved by a
            # concurrent completion: read again
            release = metering.releasing(share.share_id, owner, at)
            continue
        if activated.status != PENDING:
            return activated
        locked = False  # its password was removed meanwhile (108): nothing to lock, it opens
    raise DependencyUnavailable(share_store.BUSY)


def _writes(share: Share, owner: User, locked: bool, release: Optional[metering.Release],
            at: int) -> Optional[Callable[[Transaction], None]]:
    """The activation's other writes: the charge's (``_counting``) and, for a protected share
    that opens, the check that its owner still pays."""
    counting = _counting(share, release, at)
    if locked or not share.password_hash:
        return counting
    return together(counting, quotas.while_paid(owner.user_id, at))


def _counting(share: Share, release: Optional[metering.Release], at: int) -> Optional[Callable[[Transaction], None]]:
    """The held charge released, or (nothing held) the key's count moved to this period."""
    return release.write if release is not None else metering.moving_key_count(share, at)
