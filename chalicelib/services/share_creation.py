"""Creating a share: the direct upload (one request, files to S3 first, then the share record)
and what a presigned upload's start (``presigned_uploads``) does alike: the owner's options
checked, the record built, and stored under the first free slug, counted against the owner's
share limit and charged on the agent tier in one transaction. Made again as the account's new
owner when a claim merged it meanwhile (``shares.as_new_owner``)."""
from __future__ import annotations

import functools
import re
import secrets
import string
import unicodedata
from dataclasses import dataclass
from typing import Callable, Iterator, List, Optional

from chalicelib import clock
from chalicelib.crypto import hash_password
from chalicelib.errors import Conflict, ValidationFailed
from chalicelib.limit_errors import ShareLimit
from chalicelib.logs import get_logger
from chalicelib.services import metering, outbound_webhooks, ownership, quotas, shares, uploads
from chalicelib.services.uploads import UploadedFile
from chalicelib.services.webhook_urls import validate_webhook_url
from chalicelib.settings import Settings
from chalicelib.store import accounts as account_store
from chalicelib.store import share_tombstones, share_work
from chalicelib.store import shares as share_store
from chalicelib.store import spikes as spike_store
from chalicelib.store.files import ShareFiles
from chalicelib.store.models import ApiKey, Share, User
from chalicelib.store.pending_queue import PendingQueue
from chalicelib.store.shares import ACTIVE

log = get_logger("spikes.shares")  # as before the split: what reads the logs knows this name

SLUG_MAX_CHARS = 48
SLUG_NUMBERED_ATTEMPTS = 8  # my-site, my-site-2 … my-site-9, then random suffixes
SLUG_RANDOM_ATTEMPTS = 4
# Literal routes next to /shares/{slug}: a share with such a slug could not be addressed.
RESERVED_SLUGS = {"uploads"}
_ID_ALPHABET = string.ascii_lowercase + string.digits


def new_share_id() -> str:
    return "sh_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(12))


def slugify(text: Optional[str]) -> str:
    """Readable slug: ASCII lowercase letters, digits and single dashes; "share" if nothing is left."""
    ascii_text = unicodedata.normalize("NFKD", text or "").encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:SLUG_MAX_CHARS].rstrip("-") or "share"


def _slug_candidates(base: str) -> Iterator[str]:
    if base not in RESERVED_SLUGS:
        yield base
    for number in range(2, SLUG_NUMBERED_ATTEMPTS + 2):
        suffix = f"-{number}"
        yield base[:SLUG_MAX_CHARS - len(suffix)].rstrip("-") + suffix
    for _ in range(SLUG_RANDOM_ATTEMPTS):
        suffix = "-" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(6))
        yield base[:SLUG_MAX_CHARS - len(suffix)].rstrip("-") + suffix


@dataclass(frozen=True)
class ShareOptions:
    """What the owner asked for; ``slug`` is a wish, the stored slug may get a suffix."""
    name: str
    slug: Optional[str] = None
    password: Optional[str] = None
    webhook_url: Optional[str] = None


@dataclass(frozen=True)
class FileSpec:
    path: str
    size: int
    content_type: str


def _limit_error(settings: Settings, base_url: str, limit: int) -> ShareLimit:
    return ShareLimit(f"Share limit reached: your plan allows {limit} active shares. Delete one or upgrade.",
                      quotas.upgrade_url(settings, base_url), limit)


def check_options(settings: Settings, user: User, options: ShareOptions, base_url: str) -> None:
    """Refuse Pro-only options for free users, unsafe webhooks and users already at their
    share limit (a fast pre-check; the transaction in ``insert_with_slug`` is the real guard)."""
    tier = quotas.effective_tier(user)
    if not quotas.has_paid_features(tier) and (options.password or options.webhook_url):
        raise shares.pro_features_refused(settings, base_url, bool(options.password))
    if options.webhook_url:
        validate_webhook_url(options.webhook_url, settings.webhook_allow_loopback, settings.local_stage)
    limit = quotas.limits_for(settings, tier).share_limit
    if limit is not None and int(user.active_shares or 0) >= limit:
        raise _limit_error(settings, base_url, limit)


def new_share_record(share_id: str, user: User, options: ShareOptions, files: List[FileSpec], status: str) -> Share:
    return share_store.new(
        share_id, owner_id=user.user_id, name=options.name[:shares.NAME_MAX_CHARS],
        owner_tier=user.tier, owner_grace_until=user.grace_until, owner_cap_cents=user.monthly_cap_cents,
        created_at=clock.iso(clock.now()), status=status,
        password_hash=hash_password(options.password) if options.password else None,
        webhook_url=options.webhook_url or None, file_count=len(files),
        webhook_secret_nonce=outbound_webhooks.new_nonce() if options.webhook_url else None,
        total_bytes=sum(f.size for f in files),
        files={f.path: {"size": f.size, "type": f.content_type} for f in files})


def insert_with_slug(share: Share, user: User, slug_wish: str, settings: Settings, base_url: str,
                     charge: Optional[metering.Charge] = None, key: Optional[ApiKey] = None) -> Share:
    """Store the share with the first free slug candidate, counted against the owner's limit and
    charged on the agent tier (one transaction per candidate: ``metering.insert_share``)."""
    # A slug that is already a bare project key with feedback stays that project's: claiming
    # it would route that project's future feedback (and its key) to this share.
    candidates = (slug for slug in _slug_candidates(slugify(slug_wish)) if not spike_store.has_public_project(slug))
    # Pro features are stored, and the share counted against a limit, by the tier the owner's
    # item gives as the transaction finds it: a subscription that ended since ``check_options``
    # has had its shares stripped already, and its owner is held to the free limit.
    now = clock.epoch()
    paid_features = bool(share.password_hash or share.webhook_url)
    under_limit = quotas.under_share_limit(settings, now)
    insert = functools.partial(metering.insert_share, share, user.user_id, under_limit, charge, key,
                               quotas.paid_at(now) if paid_features else None)
    for share.slug in candidates:
        try:
            return insert()
        except share_store.SlugTaken:
            # Still held by one of the owner's shares whose deletion the job is finishing.
            if not share_tombstones.retire_for_reuse(share.slug, user.user_id):
                continue
            try:
                return insert()
            except share_store.SlugTaken:
                continue
        except share_store.OwnerAtLimit:
            owner = account_store.get(user.user_id, consistent=True)  # which condition: the owner as it is now
            tier = quotas.effective_tier(owner, now) if owner is not None else quotas.FREE
            if paid_features and not quotas.has_paid_features(tier):
                raise shares.pro_features_refused(settings, base_url, bool(share.password_hash)) from None
            raise _limit_error(settings, base_url, quotas.limits_for(settings, tier).share_limit or 0) from None
        except share_store.ShareIdTaken:
            # 36^12 ids: a collision is practically impossible, and the files already
            # live under this id, so the client retries rather than us re-uploading.
            raise Conflict("Share id collision; retry the upload") from None
    raise Conflict("Could not find a free slug for this share; try another name")

def create_share(settings: Settings, share_files: ShareFiles, user: User, options: ShareOptions, files: List[UploadedFile],
                 base_url: str, key: Optional[ApiKey] = None) -> Share:
    """The direct upload: files to S3 first, then the share record (so a visible share always
    has its files). If the record cannot be written, the uploaded files are removed."""
    return shares.as_new_owner(
        lambda owner: _create_share(settings, share_files, owner, options, files, base_url, key), user)


def _create_share(settings: Settings, share_files: ShareFiles, user: User, options: ShareOptions,
                  files: List[UploadedFile], base_url: str, key: Optional[ApiKey]) -> Share:
    if not files:
        raise ValidationFailed.field("files", "Upload at least one file", "MISSING_FIELD")
    uploads.check_total_size(sum(f.size for f in files), settings.max_share_bytes)
    uploads.check_listed_paths([f.path for f in files])
    uploads.check_served_sizes([(f.path, f.size, f.content_type) for f in files], settings.max_served_file_bytes)
    check_options(settings, user, options, base_url)
    specs = [FileSpec(f.path, f.size, f.content_type) for f in files]
    share = new_share_record(new_share_id(), user, options, specs, ACTIVE)
    # Recorded before the first file: if this function dies before the share is stored, the
    # share_deletions job removes the files nobody can reach (share_cleanup).
    started = clock.epoch()
    marker = share_work.upload_marker(share.share_id, started)
    share_work.record_upload(share_work.DIRECT_UPLOADS, marker, started + share_work.ABANDONED_UPLOAD_SECONDS)
    charge = metering.share_charge(settings, user, share.share_id, key)
    try:
        share_files.put_all(share.share_id, [(f.path, f.data, f.content_type) for f in files])
        stored = insert_with_slug(share, user, options.slug or options.name, settings, base_url, charge, key)
    except BaseException:
        stored = stored_all_the_same(share, user, share_work.DIRECT_UPLOADS, marker,
                                     lambda: share_files.delete_all(share.share_id))
        if stored is None:
            raise
    try:
        share_work.forget(share_work.DIRECT_UPLOADS, marker)
    except Exception:  # noqa: BLE001 - the share is stored; the job will find it and forget the marker
        log.warning("share.upload_marker_kept", share_id=share.share_id)
    return stored


def stored_all_the_same(share: Share, user: User, uploads: PendingQueue, marker: str,
                        remove_files: Callable[[], None] = lambda: None) -> Optional[Share]:
    """After an upload's share transaction failed: the share if it committed all the same (its
    answer lost: DynamoDB answering 500, a dropped connection), to be answered as stored (its id
    is fresh: stored, it is this upload's, its owner ``user``'s as ``ownership.owns`` says, a
    claim's move included); else ``remove_files`` and the upload's unit (in ``uploads``) is
    forgotten. When even that cannot be read, None: the share_deletions job finishes the cleanup."""
    try:
        stored = share_store.get_by_id(share.share_id, consistent=True)
        if stored is None:
            remove_files()
            share_work.forget(uploads, marker)
    except Exception:  # noqa: BLE001 - keep the original error
        log.warning("share.cleanup_failed", share_id=share.share_id)
        return None
    return stored if stored is not None and ownership.owns(user, stored.owner_id) else None
