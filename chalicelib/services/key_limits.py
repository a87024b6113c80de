"""What a key acting on keys may set (services/apikeys.py): only what is tighter than itself. A
key it creates gets no scope, cap or expiry beyond its own (each inherited when not asked for),
and on a key it may lower the cap or shorten the expiry, never raise or remove either: loosening
a key's limits takes the account owner's signed-in session.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Optional, Tuple

from chalicelib import clock
from chalicelib.errors import ScopeDenied, ValidationFailed
from chalicelib.services.scopes import expand
from chalicelib.store.models import ApiKey


def cents(value) -> Optional[int]:
    """A stored cap as whole cents (None: no cap)."""
    return None if value is None else int(value)


def future_iso(moment: Optional[datetime], now: float) -> Optional[str]:
    """An expiry asked for, as keys store their times (with milliseconds, so they order as strings)."""
    if moment is None:
        return None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    try:  # a valid offset can carry a moment past 9999-12-31 UTC, which a datetime cannot hold
        moment = moment.astimezone(timezone.utc)
    except OverflowError:
        raise ValidationFailed.field("expires_at", "expires_at must be in the future and before the year 10000 "
                                                   "(UTC)") from None
    if moment.timestamp() <= now:
        raise ValidationFailed.field("expires_at", "expires_at must be in the future")
    return clock.iso_millis(moment)


def _looser(new, current) -> bool:
    """True when limit ``new`` allows more than ``current`` (None = no limit)."""
    if current is None:
        return False
    return new is None or new > current


def for_new_key(actor: Optional[ApiKey], scopes: str, expires_at: Optional[datetime], cap: Optional[int],
                now: float) -> Tuple[str, Optional[str], Optional[int]]:
    """The scopes, expiry and cap of a key ``actor`` creates (None: the owner's session, which
    may set any): nothing beyond the actor's own, each inherited when not given."""
    expires = future_iso(expires_at, now)
    if actor is None:
        return scopes, expires, cap
    missing = " ".join(sorted(expand(scopes) - expand(actor.scopes)))
    if missing:  # what it lacks: it has keys:manage, or it would not have got this far
        raise ScopeDenied(missing, f"A key cannot create a key with scopes it does not have itself: {missing} "
                                   f"(it has: {actor.scopes})")
    actor_cap = cents(actor.monthly_cap_cents)
    if cap is None:
        cap = actor_cap
    if _looser(cap, actor_cap):
        raise ScopeDenied("account:write", "A key cannot create a key with a higher budget cap than its own")
    if expires is None:
        expires = actor.expires_at
    if _looser(expires, actor.expires_at):
        raise ScopeDenied("account:write", "A key cannot create a key that outlives it")
    return scopes, expires, cap


def new_cap(actor: Optional[ApiKey], key: ApiKey, cap: Optional[int]) -> Optional[int]:
    """The cap ``actor`` sets on ``key``: a key may lower it, not raise or remove it."""
    if actor is not None and (_looser(cap, cents(key.monthly_cap_cents))
                              or _looser(cap, cents(actor.monthly_cap_cents))):
        raise ScopeDenied("account:write", "Raising or removing a budget cap needs the account owner's "
                                           "signed-in session, not an API key")
    return cap


def new_expiry(actor: Optional[ApiKey], key: ApiKey, expires_at: Optional[datetime], now: float) -> Optional[str]:
    """The expiry ``actor`` sets on ``key``: a key may shorten it, not extend or remove it."""
    expires = future_iso(expires_at, now)
    if actor is not None and (_looser(expires, key.expires_at) or _looser(expires, actor.expires_at)):
        raise ScopeDenied("account:write", "Extending or removing a key's expiry needs the account owner's "
                                           "signed-in session, not an API key")
    return expires
