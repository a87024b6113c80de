"""Who may act as the owner of a share, a spike or a key: the one place that decides it.

What an item belongs to is an account (a share's and a spike's ``owner_id``, a key's
``user_id``); the admin acts as the owner of everything. A claim (services/claims.py) makes an
agent's key-only account and the claiming person's one: it marks the key-only account
``merged_into`` the person's, then moves its shares, spikes and keys one by one. While it runs a
request and the item it acts on can sit on two sides of the move: a key of the marked account
authenticates as the person (services/apikeys.authenticate) and reaches an item not moved yet,
and a request that read the key-only account before the marking reaches an item moved since.
Both act as the owner (docs/security.md 78, 79, 134 and 145). Which account that is costs a
strongly consistent read of an account, made only when the item is not the caller's as read: an
owner acting on their own items, the common case, reads nothing more.
"""
from __future__ import annotations

from typing import Callable, Iterator, Optional, Protocol

from chalicelib.store import accounts as account_store
from chalicelib.store import share_moves
from chalicelib.store.models import Share, User


class Caller(Protocol):
    """What the check reads of a principal (services/identity.Principal, which this module
    cannot import: identity authenticates keys, whose ownership is decided here)."""
    @property
    def is_admin(self) -> bool: ...

    @property
    def user(self) -> Optional[User]: ...

    @property
    def claimed_from(self) -> Optional[str]: ...


def owns(user: Optional[User], owner_id: Optional[str]) -> bool:
    """``user`` (an account as the request read it) acts as the owner of what ``owner_id`` owns:
    the same account, or one a claim made with it (``joined_by_claim``)."""
    if user is None or owner_id is None:
        return False
    return owner_id == user.user_id or joined_by_claim(user, owner_id)


def may_act_as_owner(principal: Optional[Caller], owner_id: Optional[str]) -> bool:
    """The caller is the admin, or acts as the owner of what ``owner_id`` owns (``owns``)."""
    if principal is None:
        return False
    return principal.is_admin or owns(principal.user, owner_id)


def accounts_of(principal: Caller) -> Iterator[Optional[str]]:
    """The accounts whose items ``principal`` acts on as their owner, to look among in turn until
    one holds what is looked for: None (every account) for the admin; else the caller's own,
    then, read only when that one did not hold it, the accounts a claim made one with it (the
    claimed account a key of it acts for, its items not moved yet; the account a key-only caller
    as read was merged into since, its items moved)."""
    if principal.is_admin:
        yield None
        return
    user = principal.user
    if user is None:
        return
    yield user.user_id
    claimed_from = principal.claimed_from
    if claimed_from is not None and claimed_into(claimed_from, user):
        yield claimed_from
    if user.email is not None:
        return
    new_owner = account_store.merged_into(user.user_id)
    if new_owner is not None:
        yield new_owner


def joined_by_claim(user: User, owner_id: str) -> bool:
    """A claim merged ``owner_id``'s account into the caller's (what it has not moved yet), or,
    the caller a key-only account as the request read it, the caller's into ``owner_id``'s
    (what it moved since that read)."""
    return claimed_into(owner_id, user) or (user.email is None and account_store.merged_into(user.user_id) == owner_id)


def claimed_into(owner_id: str, user: User) -> bool:
    """A claim merged ``owner_id``'s account into ``user``'s (a strongly consistent read)."""
    return account_store.merged_into(owner_id) == user.user_id


def one_by_claim(owner_id: str, other_id: str) -> bool:
    """Whether a claim merged one of the two accounts into the other (strongly consistent reads)."""
    return account_store.merged_into(other_id) == owner_id or account_store.merged_into(owner_id) == other_id


def raise_if_claimed(user: User) -> None:
    """After an item of ``user`` as the request read it was not found, or a write conditioned on
    that owner was refused: accounts.Merged when a claim merged that key-only account since
    (a read on such a miss only), so ``shares.as_new_owner`` makes the request again as its new
    owner."""
    if user.email is None:
        account_store.raise_if_merged(user.user_id)


def owned_share(user: User, share: Optional[Share], read_again: Callable[[], Optional[Share]]) -> Optional[Share]:
    """``share`` if ``user`` owns it, else None (also for None). A share of an account a claim
    merged into ``user``'s that the claim has not moved yet is moved now, as the claim would
    (docs/security.md 79), and read again (``read_again``); accounts.Merged when ``user`` is a
    key-only account as the request read it that a claim merged since (74): run it inside
    ``shares.as_new_owner``, so that everything the request writes is conditioned on the new owner."""
    if share is None or share.owner_id == user.user_id:
        return share
    raise_if_claimed(user)
    if claimed_into(share.owner_id, user):
        share_moves.move_to_owner(share, share.owner_id, user.user_id)
        share = read_again()
    return share if share is not None and share.owner_id == user.user_id else None
