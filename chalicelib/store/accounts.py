"""The users table: an account's item, its reads and the writes that change it.

pk ``user_id``: uuid5 of the e-mail address for people (so signing up is an idempotent
upsert), a random uuid4 for key-only accounts (an agent's self-signup). Services read and
change users through these functions in domain terms; the conditions live here.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Dict, List, Optional, Tuple

from chalicelib import clock
from chalicelib.errors import AuthFailed
from chalicelib.store import claim_marks, transactions
from chalicelib.store.models import User
from chalicelib.store.transactions import Transaction, update_if

FREE = "free"  # the tier every account starts on (services/quotas.FREE)


def get(user_id: str, consistent: bool = False) -> Optional[User]:
    """The user, or None when there is no such account."""
    try:
        return User.get(user_id, consistent_read=consistent)
    except User.DoesNotExist:
        return None


def session_epoch(user_id: str) -> int:
    """The user's "sign out everywhere" counter (0 for a user without one)."""
    try:
        return int(User.get(user_id, consistent_read=True, attributes_to_get=["session_epoch"]).session_epoch or 0)
    except User.DoesNotExist:
        return 0


def bump_session_epoch(user: User) -> None:
    """Void every session minted before now: one atomic increment."""
    user.update(actions=[User.session_epoch.add(1)])


def ensure_person(tx: Transaction, user_id: str, email: str, now: float) -> None:
    """In ``tx``: the person's account exists with this address (created at ``now``); what it
    already holds (tier, creation time, share count) is kept."""
    tx.update("user", User(user_id), actions=[
        User.email.set(email),
        User.tier.set(User.tier | FREE),
        User.created_at.set(User.created_at | clock.iso(datetime.fromtimestamp(now, timezone.utc))),
        User.active_shares.set(User.active_shares | 0),
    ])


def add_new(tx: Transaction, user: User) -> None:
    """In ``tx``: a new account (an agent's key-only one); fails if the id is taken."""
    tx.save("user", user, condition=User.user_id.does_not_exist())


def mark_merged(account: User, into_user_id: str) -> bool:
    """A key-only account (no e-mail) now belongs to ``into_user_id``: its keys act as that user
    from then on, and the claim begins for that user too (``claim_marks.begin``, in the same
    transaction: once a claim). True also when it was already merged into the same user; False
    when it has an address or was claimed by someone else meanwhile. ``merged_into`` is written
    once: a retry that read it marked writes nothing, and one that read it before (the first
    call's marking raced it) is refused by the condition and told what is stored."""
    if account.merged_into is not None:  # never changed once written: as read is as stored
        return account.merged_into == into_user_id

    def write(tx: Transaction) -> None:
        tx.update("merged", account, actions=[User.merged_into.set(into_user_id)],
                  condition=User.email.does_not_exist() & User.merged_into.does_not_exist())
        claim_marks.begin(tx, into_user_id, account.user_id)
    try:
        transactions.run(write, idempotent=True)
    except transactions.ConditionFailed:
        stored = get(account.user_id, consistent=True)
        return stored is not None and stored.email is None and stored.merged_into == into_user_id
    account.merged_into = into_user_id
    return True


class Merged(Exception):
    """The account was claimed meanwhile (``merged_into``): nothing was written for it. Its keys
    act as ``into`` from then on, and so does a request sent again."""

    def __init__(self, into: str) -> None:
        super().__init__(into)
        self.into = into

    def new_owner(self) -> User:
        """The account it was merged into, as stored now."""
        owner = get(self.into, consistent=True)
        if owner is None:
            raise AuthFailed()
        return owner


NOT_MERGED = "not-merged"


def counts_own_spikes(owner: User) -> bool:
    """Whether ``owner``'s own spikes are counted: a key-only account's, which a claim can take
    over (the spike is marked ``own_counted``; only a marked one is counted gone: docs/security.md
    77)."""
    return owner.email is None


def add_own_spike(tx: Transaction, owner: User) -> None:
    """In an own spike's ``tx``, for a key-only ``owner`` (which a claim can merge meanwhile): one
    more own spike, only while it was not claimed (``NOT_MERGED``; the write refused so raises
    ``Merged``: ``raise_if_merged``). What its keys write for it after the claim read its items
    would stay with it, unseen by its new owner (docs/security.md 71); the count tells the claim
    whether some are left that the owner index does not show yet (74)."""
    if counts_own_spikes(owner):
        tx.update(NOT_MERGED, User(owner.user_id), actions=[User.own_spikes.add(1)],
                  condition=User.user_id.exists() & User.merged_into.does_not_exist())


def add_own_spikes_gone(tx: Transaction, owner_id: str, gone: int = 1) -> None:
    """In ``tx``: ``gone`` counted own spikes of ``owner_id`` deleted, or moved to its new owner."""
    tx.update("owner", User(owner_id), actions=[User.own_spikes_gone.add(gone)], condition=User.user_id.exists())


def own_spikes_left(user_id: str) -> bool:
    """Whether more own spikes were counted stored for the account than gone (strongly consistent)."""
    account = get(user_id, consistent=True)
    return account is not None and (account.own_spikes or 0) > (account.own_spikes_gone or 0)


def merged_into(user_id: str) -> Optional[str]:
    """The account a claim merged this one into, if any (a strongly consistent read)."""
    account = get(user_id, consistent=True)
    return None if account is None else account.merged_into


def raise_if_merged(user_id: str) -> None:
    """Merged when the account was claimed (a strongly consistent read): after a write for it
    was refused."""
    new_owner = merged_into(user_id)
    if new_owner:
        raise Merged(new_owner)


UNCHECKED: Any = object()  # check_unchanged: "this attribute may have changed"


def check_unchanged(tx: Transaction, user_id: str, exists: bool, tier: Optional[str], grace_until: Optional[float],
                    monthly_cap_cents: Any = UNCHECKED) -> None:
    """In a post's transaction, a condition check (``guard:owner``) that holds only while the
    user's tier, grace period and (unless UNCHECKED) cap are as read, or while the user still
    does not exist."""
    if not exists:
        tx.check("guard:owner", User, user_id, User.user_id.does_not_exist())
        return
    condition = User.tier == tier if tier is not None else User.tier.does_not_exist()
    condition &= User.grace_until == grace_until if grace_until is not None else User.grace_until.does_not_exist()
    if monthly_cap_cents is not UNCHECKED:
        condition &= (User.monthly_cap_cents == monthly_cap_cents if monthly_cap_cents is not None
                      else User.monthly_cap_cents.does_not_exist())
    tx.check("guard:owner", User, user_id, condition)


def check_paid(tx: Transaction, user_id: str, paid_tiers: Tuple[str, ...], now: float, paid: bool) -> None:
    """In a transaction, a condition check (``owner``) that the user's stored state gives (or,
    ``paid`` False, does not give) a paid tier at ``now``: one of ``paid_tiers`` whose grace
    period, if it has one, has not ended. A user that does not exist is not paid."""
    has_paid = paid_condition(paid_tiers, now)
    tx.check("owner", User, user_id, has_paid if paid else ~has_paid)


def paid_condition(paid_tiers: Tuple[str, ...], now: float) -> Any:
    """A condition on a user's item: its stored state gives one of ``paid_tiers`` at ``now``."""
    return User.tier.is_in(*paid_tiers) & (User.grace_until.does_not_exist() | (User.grace_until > now))


def fewer_shares_than(limit: int) -> Any:
    """A condition on a user's item: it counts fewer than ``limit`` active shares."""
    return (User.active_shares < limit) | User.active_shares.does_not_exist()


# --- billing ---------------------------------------------------------------------------------

def by_customer(customer_id: str) -> Optional[User]:
    """The user whose Stripe customer this is (``stripe_customer_index``), or None."""
    for key in User.stripe_customer_index.query(customer_id, limit=1):
        return get(key.user_id, consistent=True)
    return None


def stripe_customer(user_id: str) -> Optional[str]:
    """The user's Stripe customer id as stored now (strongly consistent), or None."""
    try:
        return User.get(user_id, consistent_read=True, attributes_to_get=["stripe_customer_id"]).stripe_customer_id
    except User.DoesNotExist:
        return None


def set_customer(user: User, customer_id: str, replacing: Optional[str] = None) -> str:
    """Store the user's Stripe customer id only if none is stored yet, or (``replacing``) only
    if the stored one is still that one: a concurrent first call or replacement is kept, never
    overwritten. Returns the id stored now."""
    condition = (User.stripe_customer_id == replacing) if replacing else User.stripe_customer_id.does_not_exist()
    if not update_if(user, [User.stripe_customer_id.set(customer_id)], condition):
        user.refresh(consistent_read=True)  # someone stored one first: theirs wins
    return user.stripe_customer_id


def open_checkout(user_id: str) -> Optional[str]:
    """The Checkout session whose URL the user was given last (strongly consistent), or None."""
    try:
        return User.get(user_id, consistent_read=True, attributes_to_get=["open_checkout_id"]).open_checkout_id
    except User.DoesNotExist:
        return None


class OpenCheckoutMoved(Exception):
    """Another request stored a Checkout session since the caller read the stored one."""

    def __init__(self, current: Optional[str]):
        self.current = current  # what is stored now
        super().__init__(current or "none")


def replace_open_checkout(user_id: str, expected: Optional[str], session_id: str) -> None:
    """Store ``session_id`` as the user's open Checkout session only if the stored one is still
    ``expected`` (None: none is stored): a compare-and-set, so of concurrent replacements exactly
    one wins. The others get OpenCheckoutMoved with what is stored now (nothing written). Refused
    with ``session_id`` stored, it is this write sent again after its answer was lost (the SDK
    retries a 500): done, not moved, or the caller would expire the session it hands out."""
    stored = User.open_checkout_id == expected if expected else User.open_checkout_id.does_not_exist()
    if not update_if(User(user_id), [User.open_checkout_id.set(session_id)], User.user_id.exists() & stored):
        current = open_checkout(user_id)
        if current != session_id:
            raise OpenCheckoutMoved(current)


def set_monthly_cap(user: User, cap_cents: Optional[int]) -> None:
    """The account-wide monthly spending cap (None: no cap)."""
    user.update(actions=[User.monthly_cap_cents.remove() if cap_cents is None
                         else User.monthly_cap_cents.set(cap_cents)], condition=User.user_id.exists())


# --- the scheduled pass over every user ------------------------------------------------------

def page_of_users(size: int, cursor: Optional[Dict[str, Any]]) -> Tuple[List[User], Optional[Dict[str, Any]]]:
    """One page of the users table (a Scan: scheduled jobs only, never a request) and where
    the next one starts (None after the last)."""
    result = User.scan(limit=size, page_size=size, last_evaluated_key=cursor)
    users = list(result)
    return users, result.last_evaluated_key


def position_after(user: User) -> Dict[str, Any]:
    """Where a page of users (``page_of_users``) starting right after ``user`` starts."""
    return {"user_id": {"S": user.user_id}}


def downgrade_after_grace(user: User, grace_until: float) -> bool:
    """A paid tier whose grace period ``grace_until`` ended becomes free, unless the tier or
    the grace period changed meanwhile (a webhook's newer state wins). ``grace_until`` stays:
    it is cleared (``clear_grace``) once the paid features are off."""
    return update_if(user, [User.tier.set(FREE)], (User.tier == user.tier) & (User.grace_until == grace_until))


def clear_grace(user: User, grace_until: float) -> None:
    """The expired grace period is dealt with: remove it, if the user is still free with it."""
    update_if(user, [User.grace_until.remove()], (User.tier == FREE) & (User.grace_until == grace_until))
