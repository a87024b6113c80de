"""The scheduled quota reset: closes the previous quota period for every user and persists
grace-expired downgrades.

Enforcement never depends on this job: counters are keyed by period, so a new period starts
from zero by construction, and ``quotas.effective_tier`` ignores Pro once the grace period has
passed. The job is the bookkeeping behind that:

- a period pass (``job#quota-reset#<period>``), once per period: for each user, writes the
  previous period's usage summary (``usage-archive#<user>#<previous period>``: spikes received,
  active shares, tier) and persists an expired grace period (tier -> free, Pro features off);
- a daily pass (``job#grace-sweep#<date>``) that only persists expired grace periods, so a
  lapsed subscription loses its Pro features within a day, not at the next period.

Each pass reads the users table page by page (Scan, never on a request path) and checkpoints
its LastEvaluatedKey in its ledger item after every page, guarded by a version number, so
concurrent invocations never interleave. It stops when too little of the Lambda's time is left
and the next invocation (the schedule runs every 15 minutes) continues from the checkpoint.
Every per-user action is a conditional write, so a page re-processed after a crash changes
nothing twice, and a completed pass is a single GetItem.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Callable, Dict, Optional

from chalicelib import clock
from chalicelib.logs import get_logger
from chalicelib.services import quotas
from chalicelib.settings import Settings
from chalicelib.store import accounts as account_store
from chalicelib.store import charges
from chalicelib.store import ledger
from chalicelib.store import shares as share_store
from chalicelib.store.models import User

log = get_logger("spikes.quota_reset")

STATS = ("users", "archived", "downgraded", "shares_stripped")


def period_job_key(period: str) -> str:
    return ledger.job_key("quota-reset", period)


def grace_job_key(day: str) -> str:
    return ledger.job_key("grace-sweep", day)


# --- per-user work ---------------------------------------------------------------------------

def archive_usage(user: User, period: str, now: datetime) -> bool:
    """Write the closed period's usage summary once. True when this call wrote it."""
    closed_at = clock.period_start(clock.current_period(now))
    usage = charges.account_period(user.user_id, period)
    spikes = max(0, int(usage.count or 0)) if usage else 0
    return ledger.save_usage_archive(user.user_id, period, spikes, now=now.timestamp(), detail={
        "period": period, "spikes": spikes, "shares": int(user.active_shares or 0),
        "tier": quotas.effective_tier(user, closed_at.timestamp()), "closed_at": clock.iso(now)})


def persist_grace_expiry(user: User, now: datetime) -> Dict[str, int]:
    """Pro with an expired grace period -> free, then Pro features off.

    The downgrade keeps ``grace_until``; it is removed only after the shares were stripped,
    so "free with an expired grace_until" means "stripping pending" and a crash in between is
    finished by the next pass. A webhook that changes the user meanwhile makes the
    conditions fail, and its newer state wins."""
    result = {"downgraded": 0, "shares_stripped": 0}
    now_ts = now.timestamp()
    observed = user.grace_until
    if observed is None or observed > now_ts:
        return result
    if user.tier in quotas.PAID_TIERS:
        if not account_store.downgrade_after_grace(user, observed):
            return result
        result["downgraded"] = 1
    if user.tier == quotas.FREE:
        result["shares_stripped"] = share_store.lock_pro_features(
            user.user_id, quotas.while_paid(user.user_id, now_ts, paid=False))
        account_store.clear_grace(user, observed)
    return result


# --- one resumable pass over the users table -------------------------------------------------

def _start(key: str, now: datetime):
    return ledger.start_job(key, now=now.timestamp(), detail={
        "cursor": None, "started_at": clock.iso(now), "invocations": 0, "pages": 0, **{name: 0 for name in STATS}})


def sweep(settings: Settings, key: str, now: datetime, time_left_ms: Callable[[], float],
          archive_period: Optional[str] = None) -> Dict[str, Any]:
    """Continue the pass ``key`` from its checkpoint until it is done or time runs short.
    Always processes at least one page per invocation, so it progresses under any timeout."""
    job = _start(key, now)
    if job.state == ledger.DONE:
        return {"job": key, "status": "already-done"}
    pages_this_run = 0
    while True:
        if pages_this_run and time_left_ms() < settings.job_time_reserve_ms:
            log.info("job.paused", job=key, pages=pages_this_run)
            return {"job": key, "status": "paused", "pages": pages_this_run}
        detail = dict(job.detail or {})
        users, cursor = account_store.page_of_users(settings.job_page_size, detail.get("cursor"))
        for user in users:
            detail["users"] = detail.get("users", 0) + 1
            if archive_period and archive_usage(user, archive_period, now):
                detail["archived"] = detail.get("archived", 0) + 1
            for name, value in persist_grace_expiry(user, now).items():
                detail[name] = detail.get(name, 0) + value
        done = cursor is None
        detail.update(cursor=cursor, pages=detail.get("pages", 0) + 1,
                      invocations=detail.get("invocations", 0) + (0 if pages_this_run else 1))
        if done:
            detail["finished_at"] = clock.iso(now)
        if not ledger.checkpoint_job(job, detail, done):  # another invocation checkpointed first: it carries on
            return {"job": key, "status": "yielded", "pages": pages_this_run}
        pages_this_run += 1
        if done:
            log.info("job.completed", job=key, **{name: detail.get(name, 0) for name in STATS})
            return {"job": key, "status": "completed", "pages": pages_this_run,
                    **{name: detail.get(name, 0) for name in STATS}}


def run(settings: Settings, now: Optional[datetime] = None,
        time_left_ms: Optional[Callable[[], float]] = None) -> Dict[str, Any]:
    """The scheduled entry point: this period's pass, then today's grace sweep."""
    now = now or clock.now()
    time_left_ms = time_left_ms or (lambda: float("inf"))
    period = clock.current_period(now)
    results = [sweep(settings, period_job_key(period), now, time_left_ms, archive_period=clock.previous_period(period))]
    first = results[-1]["status"]
    # Progress guarantee: an invocation that found the period pass done always works on the sweep.
    if first == "already-done" or (first == "completed" and time_left_ms() >= settings.job_time_reserve_ms):
        results.append(sweep(settings, grace_job_key(now.strftime("%Y-%m-%d")), now, time_left_ms))
    return {"period": period, "passes": results}

