"""The users table: an account's item, its reads and the writes that change it.

pk ``user_id``: uuid5 of the e-mail address for people (so signing up is an idempotent
upsert), a random uuid4 for key-only accounts (an agent's self-signup). Services read and
change users through these functions in domain terms; the conditions live here.
"""
from __future__ import annotations

from typing import Optional

from pynamodb.exceptions import UpdateError

from chalicelib import clock
from chalicelib.store.models import User
from chalicelib.store.transactions import Transaction, conditional_failed

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


def ensure_person(tx: Transaction, user_id: str, email: str) -> None:
    """In ``tx``: the person's account exists with this address; what it already holds
    (tier, creation time, share count) is kept."""
    tx.update("user", User(user_id), actions=[
        User.email.set(email),
        User.tier.set(User.tier | FREE),
        User.created_at.set(User.created_at | clock.iso(clock.now())),
        User.active_shares.set(User.active_shares | 0),
    ])


def add_new(tx: Transaction, user: User) -> None:
    """In ``tx``: a new account (an agent's key-only one); fails if the id is taken."""
    tx.save("user", user, condition=User.user_id.does_not_exist())


def mark_merged(account: User, into_user_id: str) -> bool:
    """A key-only account (no e-mail) now belongs to ``into_user_id``: its keys act as that user
    from then on. True also when it was already merged into the same user; False when it has
    an address or was claimed by someone else meanwhile."""
    try:
        account.update(actions=[User.merged_into.set(into_user_id)],
                       condition=User.email.does_not_exist() & (User.merged_into.does_not_exist()
                                                               | (User.merged_into == into_user_id)))
    except UpdateError as exc:
        if not conditional_failed(exc):
            raise
        return False
    return True


def set_monthly_cap(user: User, cap_cents: Optional[int]) -> None:
    """The agent tier's account-wide monthly spending cap (None: no cap)."""
    user.update(actions=[User.monthly_cap_cents.remove() if cap_cents is None
                         else User.monthly_cap_cents.set(cap_cents)], condition=User.user_id.exists())
