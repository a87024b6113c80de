"""The owner's shares: found by id or slug, read with their feedback (one answer's worth) and
changed (name, password, webhook URL); and ``as_new_owner``, which makes a request again as the
account's new owner when a claim merged it meanwhile. Listing them is ``share_listing``;
creating a share is ``share_creation`` (and ``presigned_uploads``), deleting one
``share_deletion``; who may see a share is ``share_access``; what a visitor is sent is
``share_pages``; records, slugs and files are stored by ``store.shares`` and ``store.files``."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Optional, TypeVar

from chalicelib import clock, lambda_answer
from chalicelib.crypto import hash_password
from chalicelib.errors import ExportTooLarge, NotFound, UpgradeRequired, ValidationFailed
from chalicelib.services import exports, outbound_webhooks, ownership, quotas, spikes
from chalicelib.services.webhook_urls import validate_webhook_url
from chalicelib.settings import Settings
from chalicelib.store import accounts as account_store
from chalicelib.store import share_settings, spike_counters
from chalicelib.store import shares as share_store
from chalicelib.store.models import Share, User
from chalicelib.store.transactions import ConditionFailed
from chalicelib.store.shares import ACTIVE, DELETING, LOCKED, PENDING  # noqa: F401 - the API reads them here

T = TypeVar("T")

# A share's name: what the CLI sends is the folder's name unless given one (`spikes share <dir>`),
# and a folder's name may be 255 bytes (Linux) or 255 UTF-16 units (macOS, Windows): at most 255
# characters. api/schemas.SHARE_NAME_CHARS refuses longer; a service caller's is cut to it.
NAME_MAX_CHARS = 255


def pro_features_refused(settings: Settings, base_url: str, password: bool) -> UpgradeRequired:
    """A free owner asked for a password (``password``) or a webhook (share creation and changes)."""
    return quotas.paid_feature_refused(settings, base_url, "Password-protected shares" if password else "Webhook URLs")


def as_new_owner(create: Callable[[User], T], user: User) -> T:
    """``create(user)``; made again as the account's new owner when a claim merged the account
    after this request read it (the share was refused: docs/security.md 71). The caller's key
    acts as that owner from then on, so the client sees the share it would get sending again."""
    try:
        return create(user)
    except account_store.Merged as merged:
        return create(merged.new_owner())


# --- the owner's shares ----------------------------------------------------------------------

def get_owned(user: User, key: str, include_deleting: bool = False) -> Share:
    """The caller's share by id or slug. Someone else's share is "not found", never
    "forbidden": a 403 would confirm that the share exists. Found as the new owner's when a
    claim moved it after this request read the caller's account (docs/security.md 74)."""
    return as_new_owner(lambda owner: owned_as_read(owner, key, include_deleting), user)


def owned_as_read(user: User, key: str, include_deleting: bool = False) -> Share:
    """``get_owned`` for ``user`` as the request read it; accounts.Merged when a claim merged
    that key-only account since (read on such a miss only): run it inside ``as_new_owner``.
    Whose share it is: ``ownership.owned_share`` (a share a claim has not moved yet is moved)."""
    share = ownership.owned_share(user, share_store.resolve(key, include_deleting),
                                  lambda: share_store.resolve(key, include_deleting))
    if share is None:
        raise NotFound("Share not found")
    return share


@dataclass(frozen=True)
class ShareChanges:
    """What the owner changes on an existing share; ``None`` leaves a field alone, "" removes it."""
    name: Optional[str] = None
    password: Optional[str] = None
    webhook_url: Optional[str] = None


def update_share(settings: Settings, user: User, key: str, changes: ShareChanges, base_url: str) -> Share:
    """Rename a share, set/replace/remove its password and its webhook URL. Setting a Pro
    feature needs Pro; removing one never does (a downgraded owner can always clean up)."""
    return as_new_owner(lambda owner: _update_share(settings, owner, key, changes, base_url), user)


def _update_share(settings: Settings, user: User, key: str, changes: ShareChanges, base_url: str) -> Share:
    share = owned_as_read(user, key)
    sets_paid_feature = bool(changes.password or changes.webhook_url)
    if sets_paid_feature and not quotas.has_paid_features(quotas.effective_tier(user)):
        raise pro_features_refused(settings, base_url, bool(changes.password))
    if changes.webhook_url:
        validate_webhook_url(changes.webhook_url, settings.webhook_allow_loopback, settings.local_stage)
    if changes.name is not None and not changes.name.strip():
        raise ValidationFailed.field("name", "name cannot be empty")
    password_hash = None
    if changes.password is not None:  # a changed password also ends the old one's unlock cookies
        password_hash = hash_password(changes.password) if changes.password else ""
    if changes.webhook_url is not None:  # a new or removed receiver ends a pause: no event stays held
        outbound_webhooks.record_release(share)
    try:
        updated = share_settings.update(share, user.user_id,
                                        name=changes.name.strip()[:NAME_MAX_CHARS] if changes.name is not None else None,
                                        password_hash=password_hash, webhook_url=changes.webhook_url,
                                        # A new receiver gets a new secret (shown once in the answer).
                                        webhook_secret_nonce=outbound_webhooks.new_nonce()
                                        if changes.webhook_url else None,
                                        # Paid when written, not only when read: a subscription
                                        # ending meanwhile has stripped the shares already.
                                        also=quotas.while_paid(user.user_id, clock.epoch())
                                        if sets_paid_feature else None)
    except NotFound:  # deleted, or moved by a claim since it was read (docs/security.md 75)
        ownership.raise_if_claimed(user)
        raise
    except ConditionFailed:  # the owner's paid tier ended since this request read it
        raise pro_features_refused(settings, base_url, bool(changes.password)) from None
    if changes.webhook_url is not None:
        outbound_webhooks.release_held(updated)
    return updated


def spike_count(share: Share) -> int:
    """The share's counted total, as GET /shares lists it (one batch read, no spike read)."""
    return spike_counters.share_spike_counts([share.share_id])[share.share_id]


def export_spikes(share: Share) -> List[dict]:
    """The share's feedback for one answer; ExportTooLarge after reading about one answer's worth."""
    return spikes.export_share(share.share_id, exports.MAX_INLINE_BYTES)


def check_answerable(share: Share, export: bytes) -> None:
    """The export (JSON, UTF-8) fits in one answer, as the answer carries it."""
    if lambda_answer.too_heavy(export.decode("utf-8"), exports.MAX_INLINE_BYTES):
        raise ExportTooLarge(share.share_id)


LOCKED_REASON = ("Password protection needs Pro, and this account is no longer Pro. The share is locked "
                 "(nobody can open it) until you remove its password (PATCH /shares/{id} with "
                 "{\"password\": \"\"}) or subscribe again.")
