"""The scheduled quota reset: closes the previous quota period for every user and persists
grace-expired downgrades.

Enforcement never depends on this job: counters are keyed by period, so a new period starts
from zero by construction, and ``quotas.effective_tier`` ignores Pro once the grace period has
passed. The job is the bookkeeping behind that:

- a period pass (``job#quota-reset#<period>``), once per period: for each user, writes the
  previous period's usage summary (``usage-archive#<user>#<previous period>``: spikes received,
  active shares, tier) and persists an expired grace period (tier -> free, Pro features off);
- a daily pass (``job#grace-sweep#<date>``) that only persists expired grace periods, so a
  lapsed subscription loses its Pro features within a day, not at the next period;
- first, on every invocation, the runs a Stripe event left (``job#pro-features#<user>@...``,
  each pending one an item of its own, store/pro_feature_runs.py): the webhook changes a few
  pages of the owner's shares itself and leaves the rest here, as the same checkpointed stripping.

Each pass reads the users table page by page (Scan, never on a request path) and checkpoints
its LastEvaluatedKey in its ledger item after every step, guarded by a version number, so
concurrent invocations never interleave. A step is a page of users, or a page of one
downgraded user's shares to strip: a page of users stops after such a user (the checkpoint
then names it, ``stripping``, with where its shares continue), so one user's thousands of
shares take as many steps, each bounded. It stops when too little of the Lambda's time is left
and the next invocation (the schedule runs every 15 minutes) continues from the checkpoint.
Every per-user and per-share action is a conditional write, so a step re-processed after a
crash changes nothing twice, and a completed pass is a single GetItem. One user whose work
raises is logged and skipped (``_user_failed``), so it cannot stop the pass for everyone after it.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Callable, Dict, Optional, Tuple

from chalicelib import clock
from chalicelib.logs import get_logger
from chalicelib.services import pending_work, quotas
from chalicelib.settings import Settings
from chalicelib.store import accounts as account_store
from chalicelib.store import charges
from chalicelib.store import ledger, pro_feature_runs, pro_features
from chalicelib.store.models import User
from chalicelib.store.pending_queue import outage

log = get_logger("spikes.quota_reset")

STATS = ("users", "archived", "downgraded", "shares_stripped", "failed")
# The pending runs an invocation reads (one Query): it works on them oldest first while time
# is left, and the next invocation reads the next page.
RUNS_PER_INVOCATION = 100


def period_job_key(period: str) -> str:
    return ledger.job_key("quota-reset", period)


def grace_job_key(day: str) -> str:
    return ledger.job_key("grace-sweep", day)


# --- per-user work ---------------------------------------------------------------------------

def archive_usage(user: User, period: str, now: datetime) -> bool:
    """Write the closed period's usage summary once. True when this call wrote it.

    Bookkeeping for an operator reading the ledger, read by no code of ours: no route, job,
    report, Stripe meter or quota (``GET /usage``, the limits and metering read the
    ``usage#<user>#<period>`` counter, which stays and is exact). Taken as the pass reaches the
    user, so a spike whose request began before the period ended and is counted after that is
    in the counter and not here; it is not rewritten to catch up."""
    closed_at = clock.period_start(clock.current_period(now))
    usage = charges.account_period(user.user_id, period)
    spikes = max(0, int(usage.count or 0)) if usage else 0
    return ledger.save_usage_archive(user.user_id, period, spikes, now=now.timestamp(), detail={
        "period": period, "spikes": spikes, "shares": int(user.active_shares or 0),
        "tier": quotas.effective_tier(user, closed_at.timestamp()), "closed_at": clock.iso(now)})


def persist_grace_expiry(user: User, now: datetime) -> Dict[str, int]:
    """Pro with an expired grace period -> free; its Pro features go next (``stripping_due``).

    The downgrade keeps ``grace_until``; it is removed only after the shares were stripped,
    so "free with an expired grace_until" means "stripping pending" and a crash in between is
    finished by the next pass. A webhook that changes the user meanwhile makes the
    conditions fail, and its newer state wins."""
    observed = user.grace_until
    if observed is None or observed > now.timestamp() or user.tier not in quotas.PAID_TIERS:
        return {"downgraded": 0}
    return {"downgraded": int(account_store.downgrade_after_grace(user, observed))}


def stripping_due(user: User, now: datetime) -> bool:
    return user.tier == quotas.FREE and user.grace_until is not None and user.grace_until <= now.timestamp()


def strip_step(settings: Settings, stripping: Dict[str, Any], now: datetime) -> Tuple[int, Optional[Dict[str, Any]]]:
    """One page of a user's shares changed: how many changed, and the stripping left to do (None
    once the last page is done). Two kinds:

    - an expired grace period (``grace_until``): Pro features off; ``grace_until`` is removed
      after the last page, and nothing is done once the user changed (paid again, or finished
      by another run);
    - a Stripe event's change (no ``grace_until``): toward the tier stored now, Pro features
      off when it is free, locked shares reopened when it is paid (latest wins). ``state`` is
      the stored state the position ``after`` was reached under; when it changed (another
      event, or a grace period ending by the clock) the pages start again from the first share,
      since shares before the position may have been changed the other way meanwhile."""
    user = account_store.get(stripping["user_id"], consistent=True)
    grace = "grace_until" in stripping
    if user is None or (grace and (user.tier != quotas.FREE or user.grace_until != stripping["grace_until"])):
        return 0, None
    lock = grace or quotas.effective_tier(user, now.timestamp()) == quotas.FREE
    if not grace and stripping.get("state") != [int(user.subscription_event_at or 0), lock]:
        stripping = {**stripping, "state": [int(user.subscription_event_at or 0), lock], "after": None}
    changed, after = pro_features.pro_features_page(
        user.user_id, lock, quotas.while_paid(user.user_id, now.timestamp(), paid=not lock), settings.job_page_size,
        stripping.get("after"))
    if after is None:
        if grace:
            account_store.clear_grace(user, stripping["grace_until"])
        return changed, None
    return changed, {**stripping, "after": after}


# --- a Stripe event's share changes: a few pages in the webhook, the rest here ------------------

def owner_job_key(run: str) -> str:
    return ledger.job_key("pro-features", run)


def change_pro_features(settings: Settings, user_id: str, now: datetime) -> int:
    """A Stripe event's change of the user's Pro features (off when the stored tier is free, on
    again when paid): ``stripe_event_share_pages`` pages now; what is left becomes a run of
    this job (``job#pro-features#<user>@<event_at>-<off|on>``, its checkpoint written first,
    then recorded as pending in store/pro_feature_runs.py), which the next invocation continues.
    Idempotent: a retried event redoes its pages (changing nothing twice) and finds its run."""
    stripping: Optional[Dict[str, Any]] = {"user_id": user_id}
    changed = 0
    for _ in range(max(1, settings.stripe_event_share_pages)):
        step, stripping = strip_step(settings, stripping, now)
        changed += step
        if stripping is None:
            return changed
    run_name = pro_feature_runs.run_name(user_id, *stripping["state"])
    _start(owner_job_key(run_name), now, first=stripping)
    pro_feature_runs.record(run_name)
    return changed


def finish_pro_feature_runs(settings: Settings, now: datetime, time_left_ms: Callable[[], float]) -> Dict[str, Any]:
    """Continue the runs Stripe events left, oldest event first, a page of
    ``RUNS_PER_INVOCATION`` read per invocation, until done or time runs short (at least one
    step per invocation); a finished run is consumed. Runs an earlier version listed in the
    ledger's set are moved to their own items first, a bounded number per invocation. ``left``:
    the runs read and not finished (one read beyond the page stands for more: 0 means none).
    A run whose step raises is moved back or parked and the next goes on
    (services/pending_work.py): ``failed``, ``parked``, and why the invocation ``stopped``
    taking runs early, if it did."""
    pro_feature_runs.move_legacy(now.timestamp())
    runs = pro_feature_runs.due(RUNS_PER_INVOCATION + 1, due_by=now.timestamp())
    results = []
    work = pending_work.Pass(pro_feature_runs.QUEUE, now.timestamp())
    for run in runs[:RUNS_PER_INVOCATION]:
        if (results and time_left_ms() < settings.job_time_reserve_ms) or work.stopped:
            break
        run_name = run.name
        ran, result = work.attempt(run, lambda: sweep(
            settings, owner_job_key(run_name), now, time_left_ms, first={"user_id": pro_feature_runs.user_of(run_name)}))
        if ran and result["status"] in ("completed", "already-done"):
            pro_feature_runs.consume(run_name)
        results.append(result if ran else {"job": owner_job_key(run_name), "status": "failed"})
    finished = sum(result["status"] in ("completed", "already-done") for result in results)
    return {"runs": results, "left": len(runs) - finished, **work.summary()}


# --- one resumable pass over the users table -------------------------------------------------

def _user_failed(detail: Dict[str, Any], user_id: str, exc: Exception) -> None:
    """One user's work raised. Unless DynamoDB fails for everyone (``outage``) or users keep
    failing with none done in between (something they all share is broken: the pass stops and
    the next invocation tries again from its checkpoint), it is logged and counted and the pass
    goes on: one user's bad data must not stop the pass for everyone after it, for good. Its
    grace expiry is taken again by the next daily sweep; a period archive it missed stays
    missing (bookkeeping: the period's counters remain)."""
    failing = detail.get("failing", 0) + 1
    if outage(exc) or failing >= pending_work.FAILURES_IN_A_ROW:
        raise exc
    detail.update(failing=failing, failed=detail.get("failed", 0) + 1)
    log.error("job.user_failed", user_id=user_id, error=pending_work.describe(exc), exc_info=True)


def _start(key: str, now: datetime, first: Optional[Dict[str, Any]] = None):
    """The pass's job item; ``first``: a run of one user's shares only, from that stripping."""
    return ledger.start_job(key, now=now.timestamp(), owner_id=first["user_id"] if first else None, detail={
        "cursor": None, "stripping": first, "owner_only": first is not None, "started_at": clock.iso(now),
        "invocations": 0, "pages": 0, **{name: 0 for name in STATS}})


def _users_page(settings: Settings, detail: Dict[str, Any], now: datetime, archive_period: Optional[str]) -> bool:
    """A page of users, stopping after one whose shares are to be stripped (the next steps do
    that). True when no user is left."""
    users, cursor = account_store.page_of_users(settings.job_page_size, detail.get("cursor"))
    for user in users:
        detail["users"] = detail.get("users", 0) + 1
        try:
            if archive_period and archive_usage(user, archive_period, now):
                detail["archived"] = detail.get("archived", 0) + 1
            for name, value in persist_grace_expiry(user, now).items():
                detail[name] = detail.get(name, 0) + value
        except Exception as exc:  # noqa: BLE001 - see _user_failed
            _user_failed(detail, user.user_id, exc)
            continue
        detail["failing"] = 0
        if stripping_due(user, now):
            detail["cursor"] = account_store.position_after(user)
            detail["stripping"] = {"user_id": user.user_id, "grace_until": user.grace_until, "after": None}
            return False
    detail["cursor"] = cursor
    return cursor is None


def sweep(settings: Settings, key: str, now: datetime, time_left_ms: Callable[[], float],
          archive_period: Optional[str] = None, first: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Continue the pass ``key`` (``first``: one user's run) from its checkpoint until it is done
    or time runs short. Always takes at least one step per invocation, so it progresses under
    any timeout."""
    job = _start(key, now, first)
    if job.state == ledger.DONE:
        return {"job": key, "status": "already-done"}
    steps_this_run = 0
    while True:
        if steps_this_run and time_left_ms() < settings.job_time_reserve_ms:
            log.info("job.paused", job=key, pages=steps_this_run)
            return {"job": key, "status": "paused", "pages": steps_this_run}
        detail = dict(job.detail or {})
        if detail.get("stripping") or detail.get("owner_only"):
            changed, stripping = 0, None
            try:
                if detail.get("stripping"):
                    changed, stripping = strip_step(settings, detail["stripping"], now)
            except Exception as exc:  # noqa: BLE001 - a Stripe event's run is isolated by pending_work
                if detail.get("owner_only"):
                    raise
                _user_failed(detail, detail["stripping"]["user_id"], exc)  # its shares: the next sweep
            detail["stripping"] = stripping
            detail["shares_stripped"] = detail.get("shares_stripped", 0) + changed
            done = bool(detail.get("owner_only")) and detail["stripping"] is None
        else:
            done = _users_page(settings, detail, now, archive_period)
        detail.update(pages=detail.get("pages", 0) + 1,
                      invocations=detail.get("invocations", 0) + (0 if steps_this_run else 1))
        if done:
            detail["finished_at"] = clock.iso(now)
        if not ledger.checkpoint_job(job, detail, done):  # another invocation checkpointed first: it carries on
            return {"job": key, "status": "yielded", "pages": steps_this_run}
        steps_this_run += 1
        if done:
            log.info("job.completed", job=key, **{name: detail.get(name, 0) for name in STATS})
            return {"job": key, "status": "completed", "pages": steps_this_run,
                    **{name: detail.get(name, 0) for name in STATS}}


def run(settings: Settings, now: Optional[datetime] = None,
        time_left_ms: Optional[Callable[[], float]] = None) -> Dict[str, Any]:
    """The scheduled entry point: the runs Stripe events left, this period's pass, then today's
    grace sweep."""
    now = now or clock.now()
    time_left_ms = time_left_ms or (lambda: float("inf"))
    period = clock.current_period(now)
    pro_feature_runs = finish_pro_feature_runs(settings, now, time_left_ms)
    results = [sweep(settings, period_job_key(period), now, time_left_ms, archive_period=clock.previous_period(period))]
    first = results[-1]["status"]
    # Progress guarantee: an invocation that found the period pass done always works on the sweep.
    if first == "already-done" or (first == "completed" and time_left_ms() >= settings.job_time_reserve_ms):
        results.append(sweep(settings, grace_job_key(now.strftime("%Y-%m-%d")), now, time_left_ms))
    return {"period": period, "passes": results, "pro_feature_runs": pro_feature_runs}

