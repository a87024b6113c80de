"""A user's Stripe subscription state as Stripe's events change it (services/stripe_events.py):
each event's change and its ``stripe-event#<id>`` marker in one transaction, conditioned so that
an event applies once and never over newer state (docs/billing.md, "The webhook")."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Tuple

from chalicelib.store import ledger, transactions
from chalicelib.store.accounts import FREE
from chalicelib.store.models import User
from chalicelib.store.transactions import ConditionFailed, Transaction


@dataclass(frozen=True)
class SubscriptionChange:
    """What one Stripe event does to a user's stored subscription state."""
    kind: str  # "paid" (``tier`` from now on) | "grace" (paid until ``grace_until``) | "free"
    status: str
    subscription_id: Optional[str]
    customer_id: Optional[str]
    event_at: int  # Stripe's ``event.created``: an older event never overwrites newer state
    tier: str = FREE
    grace_until: Optional[int] = None


# Where Stripe ends a subscription for good: none of its later events is a payment retried.
ENDED_FOR_GOOD = ("canceled", "incomplete_expired")


class StaleChange(Exception):
    """Older than the stored state, or about a subscription the user no longer has."""


class AlreadyApplied(Exception):
    """The event's marker is stored: it was applied before."""


def _update_for(change: SubscriptionChange) -> Tuple[list, Any]:
    event_at = User.subscription_event_at
    newer = event_at.does_not_exist() | (event_at < change.event_at)
    actions = [event_at.set(change.event_at), User.subscription_status.set(change.status)]
    if change.customer_id:
        actions.append(User.stripe_customer_id.set(User.stripe_customer_id | change.customer_id))
    same_subscription = User.subscription_id.does_not_exist()
    if change.subscription_id:
        same_subscription = same_subscription | (User.subscription_id == change.subscription_id)
    if change.kind == "paid":
        actions += [User.tier.set(change.tier), User.grace_until.remove()]
        if change.subscription_id:
            actions.append(User.subscription_id.set(change.subscription_id))
        return actions, User.user_id.exists() & newer
    if change.kind == "grace":
        # The grace period starts at the first failure and is not extended by later retries; a
        # failure after the end (its final invoice) is no retry (docs/security.md, 147).
        actions.append(User.grace_until.set(User.grace_until | change.grace_until))
        ended = User.subscription_status.is_in(*ENDED_FOR_GOOD)
        return actions, User.user_id.exists() & newer & same_subscription & ~ended
    # free: on a tie with another event of the same second, the downgrade wins. An event about
    # an older subscription than the stored one never downgrades the newer subscription. Its end
    # outranks its failed payment dated after it (the final invoice's, delivered first).
    actions += [User.tier.set(FREE), User.grace_until.remove()]
    not_older = event_at.does_not_exist() | (event_at <= change.event_at)
    if change.status in ENDED_FOR_GOOD:
        not_older = not_older | (User.subscription_status == "past_due")
    return actions, User.user_id.exists() & not_older & same_subscription


def apply(user_id: str, change: SubscriptionChange, marker: Any) -> None:
    """The change and the event's ledger ``marker`` in one transaction, so an event applies
    once. Raises AlreadyApplied for an event seen before, StaleChange when the stored state
    is newer (nothing written then)."""
    actions, condition = _update_for(change)
    def write(tx: Transaction) -> None:
        tx.update("user", User(user_id), actions=actions, condition=condition)
        ledger.mark_stripe_event(tx, marker)
    try:
        transactions.run(write)
    except ConditionFailed as failed:
        if "marker" in failed:
            raise AlreadyApplied() from None
        raise StaleChange() from None
