"""The shares table: share records and slug claims, their keys, conditions and transactions.

pk ``share#<share_id>`` holds a share; pk ``slug#<slug>`` claims a slug for one share (its
``share_id``). A share, its slug claim and its place in the owner's ``active_shares`` count are
written and deleted together, so neither a slug nor the share limit can be raced. When a share
is deleted its claim is retired, not deleted: the slug stays its owner's (``reserved_for``), so
the share's old links, and the widget on copies of its page, never reach someone else's share.
A deletion, from its tombstone to the record's removal, is store/share_tombstones.py.
"""
from __future__ import annotations

import re
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from pynamodb.exceptions import QueryError

from chalicelib.errors import InvalidCursor, NotFound
from chalicelib.store import accounts, cursors, new_indexes, rows, share_work, transactions
from chalicelib.store.models import Share, User
from chalicelib.store.transactions import ConditionFailed, Transaction, update_if

# locked: password-protected while the owner is not Pro (nobody may open it);
# deleting: a tombstone, gone for everyone but the deletion that finishes it.
PENDING, ACTIVE, LOCKED, DELETING = "pending", "active", "locked", "deleting"
SHARE_ID_PATTERN = re.compile(r"^sh_[a-z0-9]{12}$")
# Longer than any slug, share id or project key (200): looked up, it can only be "not found".
MAX_KEY_CHARS = 200
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

def get_by_id(share_id: str, consistent: bool = False) -> Optional[Share]:
    try:
        return Share.get(share_pk(share_id), consistent_read=consistent)
    except Share.DoesNotExist:
        return None


def resolve(key: Optional[str], include_deleting: bool = False) -> Optional[Share]:
    """The share a project key or path segment names: its id (``sh_...``) or its slug. Slugs
    are lowercase, and only an all-lowercase key names one (a mixed-case key stays a bare
    project key). A share whose deletion started exists only for that deletion."""
    if not key or len(key) > MAX_KEY_CHARS:
        return None  # no share has such a key, and DynamoDB would refuse it (2,048-byte keys)
    if SHARE_ID_PATTERN.match(key):
        share = get_by_id(key)
    elif key != key.lower():
        return None
    else:
        try:
            claim = Share.get(slug_pk(key))
        except Share.DoesNotExist:
            return None
        if claim.share_id is None:
            return None  # retired: its share was deleted
        share = get_by_id(claim.share_id)
    if share is not None and share.status == DELETING and not include_deleting:
        return None
    return share


def names_no_share(key: Optional[str]) -> bool:
    """True when no share can have this key (too long, or a slug in mixed case)."""
    return not key or len(key) > MAX_KEY_CHARS or (not SHARE_ID_PATTERN.match(key) and key != key.lower())


# What a slug claim's hint holds: what a post reads of a share (the id and slug are the claim's).
HINTED_FIELDS = ("owner_id", "name", "webhook_url", "webhook_secret_nonce", "owner_tier", "owner_grace_until",
                 "owner_cap_cents")


def post_hint(share: Share) -> Dict[str, Any]:
    return {field: getattr(share, field) for field in HINTED_FIELDS if getattr(share, field) is not None}


def owned_by(owner_id: str, newest_first: bool = True) -> Iterator[Share]:
    return Share.owner_index.query(owner_id, scan_index_forward=not newest_first)


# What GET /shares shows of a share, and the owner index's key a cursor is made of: not the
# files' manifest (up to 500 paths a share), which made thousands of shares hundreds of MB in
# the function (docs/security.md 305).
LISTED_FIELDS = ["pk", "owner_id", "created_at", "share_id", "slug", "name", "status", "file_count", "total_bytes",
                 "password_hash", "webhook_url"]
_CURSOR_FIELDS = {"pk", "owner_id", "created_at"}
CURSOR_SCOPE = "shares:"  # a listing's cursor is bound to this and the account's id


def is_listing_cursor(secret: str, cursor: str) -> bool:
    """Whether ``cursor`` is one we signed for an account's share listing (no read): any other
    is refused by ``owned_page`` whoever presents it."""
    return (cursors.scope_of(secret, cursor) or "").startswith(CURSOR_SCOPE)


def owned_page(owner_id: str, limit: int, cursor: Optional[str], secret: str,
               keep_reading: Optional[Callable[[], bool]] = None) -> Tuple[List[rows.Row], Optional[str]]:
    """Up to ``limit`` of the owner's shares (``LISTED_FIELDS`` of each), newest first, after
    ``cursor``, without those whose deletion started; and the next page's cursor (None at the
    end), signed with ``secret`` and bound to the owner (``InvalidCursor`` for any other).
    ``keep_reading`` is asked before each Query after the first: False ends the page where the
    reads ended, with fewer shares (none, past many deletions) and a cursor from there."""
    scope = f"{CURSOR_SCOPE}{owner_id}"
    start = cursors.decode(secret, scope, cursor)
    if start is not None and (set(start) != _CURSOR_FIELDS or start["owner_id"] != owner_id
                              or not start["pk"].startswith(share_pk(""))):
        raise InvalidCursor()
    not_deleting = Share.status.does_not_exist() | (Share.status != DELETING)
    found, ended = rows.query_index(Share, Share.owner_index, owner_id, limit=limit + 1, filter_condition=not_deleting,
                                    start_key={name: {"S": value} for name, value in start.items()} if start else None,
                                    page_size=min(limit + 1, rows.MAX_READ_SIZE), keep_reading=keep_reading,
                                    projection=LISTED_FIELDS)
    if len(found) > limit:
        return found[:limit], cursor_at(found[limit - 1], secret)
    if ended is None:
        return found, None
    return found, cursors.encode(secret, scope, {name: value["S"] for name, value in ended.items()})


def cursor_at(share: Any, secret: str) -> str:
    """The cursor of ``owned_page`` that continues right after ``share`` (a share it listed)."""
    return cursors.encode(secret, f"{CURSOR_SCOPE}{share.owner_id}",
                          {"pk": share.pk, "owner_id": share.owner_id, "created_at": share.created_at})


def deleting_of(owner_id: str, limit: int) -> List[str]:
    """Up to ``limit`` of the owner's shares whose deletion started and is not finished: pending,
    parked after failing, or listed by an earlier version in the ledger (each share's tombstone
    stays until its spikes are gone). One Query of ``owner_status_index``, keys only, reading
    nothing when there are none; eventually consistent (a second or less behind the tombstone's
    transaction), which a listing can rely on: a deletion leaves spikes only when its request
    deleted for 10 s before answering. While an upgrade's DynamoDB still builds the index, the
    newest pending deletions of every owner instead (share_work.deleting), as while its grant
    spreads (``new_indexes.not_ready``)."""
    try:
        found = list(Share.owner_status_index.query(owner_id, Share.status == DELETING, limit=limit,
                                                     page_size=limit))
    except QueryError as exc:
        if new_indexes.not_ready(exc, Share.owner_status_index.Meta.index_name):
            return share_work.deleting(limit)
        raise
    return [share.pk[len(share_pk("")):] for share in found]


# --- writing ---------------------------------------------------------------------------------

def new(share_id: str, **fields: Any) -> Share:
    """A share record, not yet stored."""
    return Share(share_pk(share_id), share_id=share_id, **fields)


def insert(share: Share, owner_id: str, under_limit: Any, extra: Optional[Callable[[Transaction], None]] = None,
           owner_also: Any = None) -> Share:
    """Store the share, claim ``share.slug`` (free, or retired from one of the owner's deleted
    shares) and count it on the owner's item while ``under_limit`` holds there (its share limit;
    None = unlimited), with ``extra``'s writes (the agent tier's charge), in one transaction,
    only while the owner was not claimed. Raises SlugTaken, ShareIdTaken, OwnerAtLimit,
    accounts.Merged (a claim read its shares already: docs/security.md 71), or ConditionFailed
    for ``extra``'s writes. ``owner_also``: a further condition on the owner's item (that it
    still pays for the share's Pro features); refused, it is OwnerAtLimit too: the caller reads
    the owner again to tell them apart."""
    owner_condition = User.user_id.exists() & User.merged_into.does_not_exist()
    for condition in (under_limit, owner_also):
        if condition is not None:
            owner_condition &= condition

    slug_free = Share.pk.does_not_exist() | (Share.share_id.does_not_exist() & (Share.reserved_for == owner_id))

    def write(tx: Transaction) -> None:
        tx.save("share", share, condition=Share.pk.does_not_exist())
        tx.save("slug", Share(slug_pk(share.slug), share_id=share.share_id, post_hint=post_hint(share)),
                condition=slug_free)
        tx.update("owner", User(owner_id), actions=[User.active_shares.add(1)], condition=owner_condition)
        if extra is not None:
            extra(tx)
    try:
        # Idempotent: sent again after a lost answer, the share's own condition refused it (409,
        # the share made, counted, and a direct upload's files removed: finding 70).
        transactions.run(write, idempotent=True, attempts=MAX_TRANSACTION_ATTEMPTS, busy_message=BUSY)
    except ConditionFailed as failed:
        if "owner" in failed:
            accounts.raise_if_merged(owner_id)
            raise OwnerAtLimit() from None
        if "share" in failed:
            raise ShareIdTaken() from None
        if "slug" in failed:
            raise SlugTaken() from None
        raise
    return share


def activate(share: Share, locked: bool = False, also: Optional[Callable[[Transaction], None]] = None) -> Share:
    """pending -> active, or locked, with ``also``'s writes (a held charge released) in its
    transaction (idempotent: a share activated or deleted meanwhile is re-read). Locked only
    while it still has a password: one removed meanwhile leaves the share pending, re-read, for
    the caller to open it instead (docs/security.md 108)."""
    status = LOCKED if locked else ACTIVE
    condition = Share.status == PENDING
    if locked:
        condition &= Share.password_hash.exists()

    def write(tx: Transaction) -> None:
        tx.update("share", share, actions=[Share.status.set(status)], condition=condition)
        also(tx)
    try:
        if also is None:
            changed = update_if(share, [Share.status.set(status)], condition)
        else:
            transactions.run(write, attempts=MAX_TRANSACTION_ATTEMPTS, busy_message=BUSY)
            share.status = changed = status
    except ConditionFailed as failed:
        if "share" not in failed:
            raise
        changed = False
    if not changed:
        try:
            share.refresh(consistent_read=True)
        except Share.DoesNotExist:
            raise NotFound("Share not found") from None
    return share
