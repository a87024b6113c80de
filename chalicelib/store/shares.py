"""The shares table: share records and slug claims, their keys, conditions and transactions.

pk ``share#<share_id>`` holds a share; pk ``slug#<slug>`` claims a slug for one share (its
``share_id``). A share, its slug claim and its place in the owner's ``active_shares`` count are
written and deleted together, so neither a slug nor the share limit can be raced.
"""
from __future__ import annotations

import re
from typing import Any, Iterator, List, Optional

from pynamodb.exceptions import UpdateError

from chalicelib.errors import NotFound
from chalicelib.store import transactions
from chalicelib.store.models import Share, User
from chalicelib.store.transactions import ConditionFailed, Transaction, conditional_failed

PENDING, ACTIVE, LOCKED = "pending", "active", "locked"
SHARE_ID_PATTERN = re.compile(r"^sh_[a-z0-9]{12}$")
MAX_TRANSACTION_ATTEMPTS = 12
BUSY = "Too many concurrent changes; retry shortly"


class SlugTaken(Exception):
    """Another share holds the slug."""


class ShareIdTaken(Exception):
    """A share with this id exists already."""


class OwnerAtLimit(Exception):
    """The owner has as many active shares as the limit allows (or no longer exists)."""


def share_pk(share_id: str) -> str:
    return f"share#{share_id}"


def slug_pk(slug: str) -> str:
    return f"slug#{slug}"


# --- reading ---------------------------------------------------------------------------------

def get_by_id(share_id: str) -> Optional[Share]:
    try:
        return Share.get(share_pk(share_id))
    except Share.DoesNotExist:
        return None


def resolve(key: Optional[str]) -> Optional[Share]:
    """The share a project key or path segment names: its id (``sh_...``) or its slug."""
    if not key:
        return None
    if SHARE_ID_PATTERN.match(key):
        return get_by_id(key)
    try:
        claim = Share.get(slug_pk(key.lower()))
    except Share.DoesNotExist:
        return None
    return get_by_id(claim.share_id)


def owned_by(owner_id: str, newest_first: bool = True) -> Iterator[Share]:
    return Share.owner_index.query(owner_id, scan_index_forward=not newest_first)


# --- writing ---------------------------------------------------------------------------------

def new(share_id: str, **fields: Any) -> Share:
    """A share record, not yet stored."""
    return Share(share_pk(share_id), share_id=share_id, **fields)


def insert(share: Share, owner_id: str, limit: Optional[int]) -> Share:
    """Store the share, claim ``share.slug`` and count it against the owner's ``limit``
    (None = unlimited), all in one transaction. Raises SlugTaken, ShareIdTaken or OwnerAtLimit."""
    owner_condition = User.user_id.exists()
    if limit is not None:
        owner_condition &= (User.active_shares < limit) | User.active_shares.does_not_exist()

    def write(tx: Transaction) -> None:
        tx.save("share", share, condition=Share.pk.does_not_exist())
        tx.save("slug", Share(slug_pk(share.slug), share_id=share.share_id), condition=Share.pk.does_not_exist())
        tx.update("owner", User(owner_id), actions=[User.active_shares.add(1)], condition=owner_condition)
    try:
        transactions.run(write, attempts=MAX_TRANSACTION_ATTEMPTS, busy_message=BUSY)
    except ConditionFailed as failed:
        if "owner" in failed:
            raise OwnerAtLimit() from None
        if "share" in failed:
            raise ShareIdTaken() from None
        raise SlugTaken() from None
    return share


def activate(share: Share) -> Share:
    """pending -> active (idempotent: a share activated meanwhile is re-read)."""
    try:
        share.update(actions=[Share.status.set(ACTIVE)], condition=Share.status == PENDING)
    except UpdateError as exc:
        if not conditional_failed(exc):
            raise
        share.refresh()
    return share


def update_settings(share: Share, owner_id: str, name: Optional[str] = None, password_hash: Optional[str] = None,
                    webhook_url: Optional[str] = None) -> Share:
    """Rename, and set ("" removes) the password hash and the webhook URL. A new or removed
    password bumps ``password_version`` so unlock proofs of the old one stop working."""
    actions: List[Any] = []
    if name is not None:
        actions.append(Share.name.set(name))
    if password_hash is not None:
        actions.append(Share.password_hash.set(password_hash) if password_hash else Share.password_hash.remove())
        actions.append(Share.password_version.add(1))
    if webhook_url is not None:
        actions.append(Share.webhook_url.set(webhook_url) if webhook_url else Share.webhook_url.remove())
    if not actions:
        return share
    try:
        # The condition keeps a concurrent delete from being resurrected as a partial item.
        share.update(actions=actions, condition=Share.owner_id == owner_id)
    except UpdateError as exc:
        if conditional_failed(exc):
            raise NotFound("Share not found") from None
        raise
    return share


def delete(share: Share, owner_id: str) -> None:
    """Remove the share, its slug claim and its place in the owner's count, together.
    NotFound when it was deleted concurrently; the count never goes below zero."""
    decrement = True

    def write(tx: Transaction) -> None:
        tx.delete("share", share, condition=Share.owner_id == owner_id)
        tx.delete("slug", Share(slug_pk(share.slug), share_id=share.share_id),
                  condition=Share.share_id == share.share_id)
        if decrement:
            tx.update("owner", User(owner_id), actions=[User.active_shares.add(-1)], condition=User.active_shares > 0)
    while True:
        try:
            transactions.run(write, attempts=MAX_TRANSACTION_ATTEMPTS, busy_message=BUSY)
            return
        except ConditionFailed as failed:
            if "share" in failed or "slug" in failed or not decrement:
                raise NotFound("Share not found") from None
            decrement = False  # the owner's count drifted to 0: delete without counting


def strip_pro_features(owner_id: str) -> int:
    """On downgrade: remove passwords and webhook URLs from the owner's shares, deleting
    nothing. Returns how many shares changed. Idempotent."""
    changed = 0
    for share in Share.owner_index.query(owner_id):
        if share.password_hash is None and share.webhook_url is None:
            continue
        share.update(actions=[Share.password_hash.remove(), Share.webhook_url.remove(),
                              Share.password_version.add(1)])
        changed += 1
    return changed
