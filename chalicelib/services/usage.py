"""GET /usage: this period's spikes, active shares, the tier's limits and when the period resets.

``spikes`` is the owner's period counter (``usage#<user>#<period>``), incremented atomically by
POST /spikes in the same transaction as the share's quota counter. Because counters are keyed
by period, a new period reads zero without any reset having run.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Dict, Optional

from chalicelib import clock
from chalicelib.services import metering, quotas
from chalicelib.settings import Settings
from chalicelib.store import charges
from chalicelib.store.models import ApiKey, User


def usage(settings: Settings, user: User, now: Optional[datetime] = None,
          key: Optional[ApiKey] = None) -> Dict[str, Any]:
    """The agent tier adds what this period cost so far, the account's cap and when the period
    ends; called with an API key, ``key`` adds that key's own usage."""
    now = now or clock.now()
    tier = quotas.effective_tier(user, now.timestamp())
    limits = quotas.limits_for(settings, tier)
    period = clock.current_period(now)
    account = charges.account_period(user.user_id, period)
    body = {
        "spikes": max(0, int(account.count or 0) if account else 0),
        "spike_limit": limits.spike_limit,
        "shares": max(0, int(user.active_shares or 0)),
        "share_limit": limits.share_limit,
        "tier": tier,
        "period": period,
        "reset_at": clock.iso(clock.next_period_start(now)),
    }
    if tier == quotas.AGENT:
        body.update(cost_this_period_cents=metering.to_cents(account.cost if account else 0),
                    monthly_cap_cents=None if user.monthly_cap_cents is None else int(user.monthly_cap_cents),
                    period_ends=body["reset_at"],
                    price_per_spike_cents=float(settings.agent_price_per_spike_cents),
                    price_per_share_cents=float(settings.agent_price_per_share_cents))
    if key is not None:
        body["key"] = key_usage(key, period)
    return body


def key_usage(key: ApiKey, period: str) -> Dict[str, Any]:
    """What one key created and was charged this period."""
    item = charges.key_period(key.key_id, period)
    return {"key_id": key.key_id, "period": period, "spikes": int(item.spikes or 0) if item else 0,
            "shares": int(item.shares or 0) if item else 0,
            "cost_this_period_cents": metering.to_cents(item.cost if item else 0),
            "monthly_cap_cents": None if key.monthly_cap_cents is None else int(key.monthly_cap_cents)}
