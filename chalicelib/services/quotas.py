"""Tiers, limits and quota periods.

Usage counters are keyed by period (``quota#<share>#2026-11``), so a new period starts from
zero by construction: the scheduled reset is bookkeeping, never the only guard, and a late,
repeated or missed run cannot let a share exceed its limit or lose its allowance.
"""
from __future__ import annotations

import functools
import operator
from dataclasses import dataclass
from typing import Any, Callable, Optional

from chalicelib import clock
from chalicelib.errors import UpgradeRequired
from chalicelib.settings import Settings
from chalicelib.store import accounts as account_store
from chalicelib.store.models import User
from chalicelib.store.transactions import Transaction

PRO = "pro"
FREE = "free"
AGENT = "agent"  # metered: billed per spike and per share through Stripe meter events
PAID_TIERS = (PRO, AGENT)


@dataclass(frozen=True)
class Limits:
    spike_limit: Optional[int]  # per share, per period; None = unlimited
    share_limit: Optional[int]  # active shares; None = unlimited


def effective_tier(user: User, now: Optional[float] = None) -> str:
    """A paid tier (Pro, agent) only while paid up: a past-due subscription keeps it until its
    grace ends, even if the scheduled job that flips the stored tier has not run yet."""
    now = clock.epoch() if now is None else now
    if user.tier in PAID_TIERS and (user.grace_until is None or user.grace_until > now):
        return user.tier
    return FREE


def has_paid_features(tier: str) -> bool:
    """Password-protected shares and webhooks: both paid tiers have them."""
    return tier in PAID_TIERS


def while_paid(user_id: str, now: float, paid: bool = True) -> Callable[[Transaction], None]:
    """A transaction's check that the user's stored state gives (``paid`` False: does not give)
    a paid tier at ``now``, as ``effective_tier`` reads it: what locking and reopening a user's
    protected shares are conditioned on, so a payment or a cancellation meanwhile stops them."""
    return lambda tx: account_store.check_paid(tx, user_id, PAID_TIERS, now, paid)


def paid_at(now: float) -> Any:
    """A condition on a user's item that its stored state gives a paid tier at ``now``."""
    return account_store.paid_condition(PAID_TIERS, now)


def under_share_limit(settings: Settings, now: float) -> Any:
    """A condition on a user's item: it counts fewer active shares than the tier its stored state
    gives at ``now`` allows (as ``effective_tier`` reads it); None when no tier has a limit. In a
    share's write, a paid tier that ended after the request read it no longer lifts the limit."""
    paid_as = {tier: account_store.paid_condition((tier,), now) for tier in PAID_TIERS}
    tiers = [(condition, limits_for(settings, tier).share_limit) for tier, condition in paid_as.items()]
    tiers.append((~account_store.paid_condition(PAID_TIERS, now), limits_for(settings, FREE).share_limit))
    if all(limit is None for _, limit in tiers):
        return None
    under = [condition if limit is None else condition & account_store.fewer_shares_than(limit)
             for condition, limit in tiers]
    return functools.reduce(operator.or_, under)


def limits_for(settings: Settings, tier: str) -> Limits:
    if tier == PRO:
        return Limits(settings.pro_spike_limit, settings.pro_share_limit)
    if tier == AGENT:
        return Limits(settings.agent_spike_limit, settings.agent_share_limit)
    return Limits(settings.free_spike_limit, settings.free_share_limit)


def upgrade_url(settings: Settings, base_url: str) -> str:
    """A page a person opens: the dashboard's account view, with its Upgrade button (not
    /billing/checkout, which a browser opening the link calls without a token: a 401)."""
    return settings.upgrade_url or f"{base_url}/dashboard#/account"


def paid_feature_refused(settings: Settings, base_url: str, feature: str) -> UpgradeRequired:
    """The contract's 403 for a Pro-only feature (``feature``: "Webhook URLs", ...) asked by an
    owner without Pro."""
    message = f"{feature} require a Pro subscription"
    if not settings.stripe_configured:
        # upgrade_url leads to a checkout this server cannot start: say where Pro comes from here.
        message += (", which this server does not sell (no Stripe settings): " + (
            'make the account Pro in the local tables, as docs/webhooks.md ("Trying it locally") shows'
            if settings.local_stage else "ask its operator"))
    return UpgradeRequired(message, extra={"upgrade_url": upgrade_url(settings, base_url)})
