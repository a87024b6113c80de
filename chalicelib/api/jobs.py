"""Scheduled jobs: Lambda functions run by EventBridge rules, not by requests. Each reads the
settings, passes the clock and the time the invocation has left, and returns a summary (the
job's log line). Today: the quota reset."""
from __future__ import annotations

from typing import Any, Dict

from chalice import Blueprint, Cron

from chalicelib import clock, deps
from chalicelib.services import quota_reset as quota_reset_job

bp = Blueprint(__name__)


# Every 15 minutes: a finished period is one GetItem; an unfinished one continues from its
# checkpoint (see chalicelib/services/quota_reset.py).
@bp.schedule(Cron("0/15", "*", "*", "*", "?", "*"), name="quota_reset")
def quota_reset(event: Any) -> Dict[str, Any]:
    remaining = getattr(getattr(event, "context", None), "get_remaining_time_in_millis", None)
    return quota_reset_job.run(deps.settings(), now=clock.now(), time_left_ms=remaining)
