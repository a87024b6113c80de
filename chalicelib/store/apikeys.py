"""The keys table: API keys (``services/apikeys.py`` says what a key is and may do).

pk ``key_id`` (``key_<16 base32>``, named by the key itself), ``owner_index`` lists a user's
keys newest first. Only the key's SHA-256 hash and a short display prefix are stored. Changes
are conditioned on the key still being its owner's and, where it matters, not revoked.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, List, Optional, Tuple

from pynamodb.exceptions import UpdateError
from pynamodb.expressions.condition import size

from chalicelib.errors import InvalidCursor
from chalicelib.store import accounts, cursors, key_slots, older_made_keys, transactions
from chalicelib.store.models import ApiKey, User
from chalicelib.store.transactions import Transaction, conditional_failed, update_if

UNSET: Any = object()  # "leave as it is", where None means "remove"


class Changed(Exception):
    """The key was revoked or moved to another owner meanwhile: nothing was written."""


def get(key_id: str) -> Optional[ApiKey]:
    """Strongly consistent: a revocation applies to the very next request."""
    try:
        return ApiKey.get(key_id, consistent_read=True)
    except ApiKey.DoesNotExist:
        return None


KEYS_PAGE = 100  # BatchGetItem's limit


def owned_by(user_id: str, newest_first: bool = True) -> Iterable[ApiKey]:
    """The owner index's entries of the user's keys, read a page at a time as they are iterated."""
    return ApiKey.owner_index.query(user_id, scan_index_forward=not newest_first, page_size=KEYS_PAGE)


def page(owner_id: str, limit: int, cursor: Optional[str], secret: str) -> Tuple[List[ApiKey], Optional[str]]:
    """Up to ``limit`` of the owner's keys, newest first, after ``cursor``: one Query of the
    owner index (``limit`` + 1 items, to know whether more follow); and the next page's cursor,
    signed with ``secret`` and bound to the owner (``InvalidCursor`` for any other)."""
    scope = f"keys:{owner_id}"
    start = cursors.decode(secret, scope, cursor)
    if start is not None and (set(start) != {"key_id", "user_id", "created_at"} or start["user_id"] != owner_id):
        raise InvalidCursor()
    last_key = {name: {"S": value} for name, value in start.items()} if start else None
    items = list(ApiKey.owner_index.query(owner_id, scan_index_forward=False, limit=limit + 1, page_size=limit + 1,
                                          last_evaluated_key=last_key))
    if len(items) <= limit:
        return items, None
    last = items[limit - 1]
    return items[:limit], cursors.encode(secret, scope, {"key_id": last.key_id, "user_id": owner_id,
                                                         "created_at": last.created_at})


def get_many(key_ids: List[str]) -> List[ApiKey]:
    """The keys of these ids that exist, strongly consistent (the places an account's keys hold)."""
    return list(ApiKey.batch_get(key_ids, consistent_read=True)) if key_ids else []


class ParentRevoked(Exception):
    """The key creating a key was revoked meanwhile: nothing was written."""


class AtCap(Exception):
    """The account's live keys hold every place (or are not counted yet): nothing was written."""


class AccountMerged(Exception):
    """The account was claimed meanwhile (its keys now act as the new owner): nothing was written."""


# A key's ``made_keys`` is one item's set, kept for good (revoked ones included): ids of ~25 bytes
# reach DynamoDB's 400 KB item limit near 16,000, after which the maker's every creation failed.
MAX_MADE_KEYS = 10_000


class MadeTooMany(Exception):
    """The key creating a key has made ``MAX_MADE_KEYS`` already: nothing was written."""


def insert(key: ApiKey, cap: int, parent: Optional[ApiKey] = None) -> None:
    """A new key, taking one of its owner's ``cap`` places in the same transaction (``AtCap``
    when none is free). A key created by another key (``parent``) only while that key is not
    revoked, and recorded on it (``made_keys``) in the same transaction: a revocation writes
    the same item, so once a key is revoked its ``made_keys`` name every key it will ever have
    made; at most ``MAX_MADE_KEYS`` of them (``MadeTooMany``)."""
    def write(tx: Transaction) -> None:
        if parent is not None:
            # A set on the maker's item, not an item per made key (tests/test_architecture.py,
            # SET_MEMBER_WRITES): the revocation's write of this same item is what stops the set
            # growing once the key is revoked. Its writers are this key's own creations alone.
            room = ApiKey.made_keys.does_not_exist() | (size(ApiKey.made_keys) < MAX_MADE_KEYS)
            tx.update("parent", parent, actions=[ApiKey.made_keys.add({key.key_id})],
                      condition=ApiKey.key_id.exists() & ApiKey.revoked_at.does_not_exist() & room)
        key_slots.take(tx, key.user_id, key.key_id, cap)
        tx.save("key", key, condition=ApiKey.key_id.does_not_exist())
    key.made_keys_complete = True
    try:
        # One token for every attempt: a commit whose answer was lost (a 500) and is sent again
        # is answered as done, not refused by the key's own condition (a 500 with the key made).
        transactions.run(write, idempotent=True)
    except transactions.ConditionFailed as failed:
        if "parent" in failed:
            maker = get(parent.key_id)
            full = maker is not None and maker.revoked_at is None and len(maker.made_keys or ()) >= MAX_MADE_KEYS
            raise (MadeTooMany() if full else ParentRevoked()) from None
        if key_slots.NAME in failed:
            raise (AccountMerged() if key_slots.merged(key.user_id) else AtCap()) from None
        raise


class LookingFurther(Exception):
    """A key of the tree is from before ``made_keys``, and the part of its account's owner index
    one request reads did not end (store/older_made_keys.py): the next request goes on from there.
    ``revoked``, the keys this one revoked."""

    def __init__(self, revoked: List[ApiKey]):
        super().__init__(len(revoked))
        self.revoked = revoked


class Moved(Exception):
    """A live key of the tree is ``owner_id``'s, none of the owners it was revoked for (a claim
    moved it, or has it still to move): it was not revoked; ``revoked``, the keys that were."""

    def __init__(self, owner_id: str, revoked: List[ApiKey]):
        super().__init__(owner_id)
        self.owner_id, self.revoked = owner_id, revoked


def revoke_with_made(key: ApiKey, owners: Tuple[str, ...], at: str,
                     looking: Optional[older_made_keys.Looking] = None) -> List[ApiKey]:
    """Revoke ``key``, the keys it made, theirs, and so on, each a key of one of ``owners``
    (more than one while a claim moves them); the ones this call revoked. ``Moved`` when one
    is live and another account's: never an answer that leaves it live unsaid.

    Each key is revoked before the keys it made are read, from its own item (``made_keys``,
    final once it is revoked) and strongly consistent (one ``BatchGetItem`` per key that made
    some), so a key made a moment before the revocation is not missed while the owner index
    catches up. Only the key's own tree is read: a key that made nothing costs its own
    transaction alone, however many keys its account holds. Keys from before
    ``made_keys_complete`` may have made keys before ``made_keys`` was kept: for those the
    owner index is read, a bounded part a request (store/older_made_keys.py), and
    ``LookingFurther`` once what is found is revoked, when some of it is left to read.
    ``looking``: the request's look-ups so far, when it calls again (a key moved meanwhile), so
    its calls together read no more than one (docs/security.md 351)."""
    revoked: List[ApiKey] = []
    looking = older_made_keys.Looking() if looking is None else looking
    pending, seen = [key], {key.key_id}
    while pending:
        item = pending.pop()
        if item.revoked_at is None and _revoke(item, owners, at):
            revoked.append(item)
        if item.revoked_at is None:
            raise Moved(item.user_id, revoked)
        made = set(item.made_keys or ())
        if not item.made_keys_complete:
            made |= looking.made_by(item)
        children = sorted(made - seen)
        seen.update(children)
        pending.extend(get_many(children))
    if looking.unfinished:
        raise LookingFurther(revoked)
    return revoked


def _revoke(item: ApiKey, owners: Tuple[str, ...], at: str) -> bool:
    """Revoke one key and give its place back, together; True when this call revoked it.
    Either way ``item`` then names, as stored, every key it made: the write is conditioned
    on ``made_keys`` being as read (it only grows), else the item is read again. Conditioned
    on its owner as read, one of ``owners``: a key moved meanwhile is read again and revoked
    for its new owner, if that is one of them."""
    def write_for_key_as_read() -> Callable[[Transaction], None]:
        made, owner_id = len(item.made_keys or ()), item.user_id
        unchanged = (size(ApiKey.made_keys) == made) if made else ApiKey.made_keys.does_not_exist()

        def write(tx: Transaction) -> None:
            tx.update("key", item, actions=[ApiKey.revoked_at.set(at)],
                      condition=ApiKey.revoked_at.does_not_exist() & (ApiKey.user_id == owner_id) & unchanged)
            key_slots.give_back(tx, owner_id, item.key_id)
        return write
    if item.user_id not in owners or not key_slots.write_with_place(
            item, write_for_key_as_read, lambda key: key.revoked_at is not None or key.user_id not in owners):
        return False
    item.revoked_at = at
    return True


def insert_with_account(user: User, key: ApiKey) -> None:
    """A new key-only account and its first key, together (an agent's self-signup)."""
    user.live_keys, key.made_keys_complete = {key.key_id: True}, True
    def write(tx: Transaction) -> None:
        accounts.add_new(tx, user)
        tx.save("key", key, condition=ApiKey.key_id.does_not_exist())
    # Sent again after a lost answer, the account's own condition would refuse it: a 500 with
    # the account and its key made, and the key never shown (finding 70).
    transactions.run(write, idempotent=True)


def change(key: ApiKey, owner_id: str, now_iso: str, name: Any = UNSET, monthly_cap_cents: Any = UNSET,
           expires_at: Any = UNSET) -> ApiKey:
    """Set what is given (None removes a name, cap or expiry); Changed when the key was
    revoked, moved or had expired at ``now_iso`` meanwhile (an expired key may have given
    its place back: store/key_slots.py)."""
    actions = []
    if name is not UNSET:
        actions.append(ApiKey.name.set(name) if name else ApiKey.name.remove())
    if monthly_cap_cents is not UNSET:
        actions.append(ApiKey.monthly_cap_cents.remove() if monthly_cap_cents is None
                       else ApiKey.monthly_cap_cents.set(monthly_cap_cents))
    if expires_at is not UNSET:
        actions.append(ApiKey.expires_at.remove() if expires_at is None else ApiKey.expires_at.set(expires_at))
    if not actions:
        return key
    unexpired = ApiKey.expires_at.does_not_exist() | (ApiKey.expires_at > now_iso)
    if not update_if(key, actions, ApiKey.revoked_at.does_not_exist() & (ApiKey.user_id == owner_id) & unexpired):
        raise Changed()
    return key


class TouchFailed(Exception):
    """Recording a key's use failed (``code``: DynamoDB's error code)."""

    def __init__(self, code: Optional[str]):
        self.code = code
        super().__init__(code)


def touch(key: ApiKey, at: str, unless_after: str) -> bool:
    """Record use at ``at`` unless the stored last use is after ``unless_after``: concurrent
    requests race for one write and the rest skip it. False when this call did not write;
    TouchFailed when the write failed otherwise."""
    try:
        key.update(actions=[ApiKey.last_used_at.set(at)],
                   condition=ApiKey.key_id.exists() & (ApiKey.last_used_at.does_not_exist()
                                                       | (ApiKey.last_used_at <= unless_after)))
    except UpdateError as exc:
        if not conditional_failed(exc):
            raise TouchFailed(exc.cause_response_code) from None
        return False
    return True
