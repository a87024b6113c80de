"""GET /usage: this period's spikes, active shares, the tier's limits and when the period resets.

``spikes`` is the owner's period counter (``usage#<user>#<period>``), incremented atomically by
POST /spikes in the same transaction as the share's quota counter. Because counters are keyed
by period, a new period reads zero without any reset having run.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Dict, Optional

from chalicelib import clock
from chalicelib.services import quotas
from chalicelib.settings import Settings
from chalicelib.store import ledger
from chalicelib.store.models import User


def usage(settings: Settings, user: User, now: Optional[datetime] = None) -> Dict[str, Any]:
    now = now or clock.now()
    tier = quotas.effective_tier(user, now.timestamp())
    limits = quotas.limits_for(settings, tier)
    return {
        "spikes": max(0, ledger.count(ledger.user_usage_key(user.user_id, clock.current_period(now)))),
        "spike_limit": limits.spike_limit,
        "shares": max(0, int(user.active_shares or 0)),
        "share_limit": limits.share_limit,
        "tier": tier,
        "period": clock.current_period(now),
        "reset_at": clock.iso(clock.next_period_start(now)),
    }
