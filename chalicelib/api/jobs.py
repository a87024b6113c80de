"""Scheduled jobs: Lambda functions run by EventBridge rules, not by requests. Each reads the
settings, passes the clock and the time the invocation has left, and returns a summary (the
job's log line). The quota reset, finishing share deletions a request left undone, the
outbound webhook deliveries, the agent tier's usage report to Stripe and background exports."""
from __future__ import annotations

from typing import Any, Dict

from chalice import Blueprint, Cron, Rate

from chalicelib import clock, deps
from chalicelib.lazy import lazy_import

# Each job loads its own modules when it runs (the API function shares this import).
background_exports = lazy_import("chalicelib.services.background_exports")
export_runs = lazy_import("chalicelib.services.export_runs")
webhook_delivery = lazy_import("chalicelib.services.webhook_delivery")
quota_reset_job = lazy_import("chalicelib.services.quota_reset")
claim_work = lazy_import("chalicelib.services.claim_work")
share_cleanup = lazy_import("chalicelib.services.share_cleanup")
usage_report_job = lazy_import("chalicelib.services.usage_report")

bp = Blueprint(__name__)
# What one background exports run spends at most; its function's timeout (infra/stack.py) is longer.
EXPORT_RUN_SECONDS = 100


# Every 15 minutes: a finished period is one GetItem; an unfinished one continues from its
# checkpoint (see chalicelib/services/quota_reset.py).
@bp.schedule(Cron("0/15", "*", "*", "*", "?", "*"), name="quota_reset")
def quota_reset(event: Any) -> Dict[str, Any]:
    remaining = getattr(getattr(event, "context", None), "get_remaining_time_in_millis", None)
    return quota_reset_job.run(deps.settings(), now=clock.now(), time_left_ms=remaining)


# Every 15 minutes: finish share deletions whose clean-up failed and was not retried (a share
# being deleted is already gone for everyone; this removes what is left of it), remove the
# files of direct uploads whose function died before it stored their share, and remove
# presigned uploads left pending a day after they started; then finish the claims of key-only
# accounts no call completed (services/claim_work.py).
@bp.schedule(Rate(15, unit=Rate.MINUTES), name="share_deletions")
def share_deletions(event: Any) -> Dict[str, Any]:
    settings = deps.settings()
    files = deps.share_files()
    now = clock.epoch()
    until = now + share_cleanup.DELETION_SECONDS_PER_RUN
    return {**share_cleanup.finish_pending_deletions(files, now, until=until),
            **share_cleanup.finish_abandoned_uploads(files, now),
            **share_cleanup.expire_unfinished_uploads(files, now, settings.presign_ttl_seconds),
            **claim_work.finish_pending_claims(now)}


# Every minute: the webhook deliveries that are due (the local server runs the same pass every
# few seconds, see tools/devserver.py). Overlapping runs are safe: each delivery is claimed.
@bp.schedule(Rate(1, unit=Rate.MINUTES), name="webhook_deliveries")
def webhook_deliveries(event: Any) -> Dict[str, Any]:
    remaining = getattr(getattr(event, "context", None), "get_remaining_time_in_millis", None)
    return vars(webhook_delivery.run_due(deps.settings(), mailer=deps.mailer(), time_left_ms=remaining))


# Every 5 minutes: agent-tier usage events not yet reported go to Stripe (see
# chalicelib/services/usage_report.py); they wait, retried, while Stripe is unreachable.
@bp.schedule(Rate(5, unit=Rate.MINUTES), name="usage_report")
def usage_report(event: Any) -> Dict[str, Any]:
    remaining = getattr(getattr(event, "context", None), "get_remaining_time_in_millis", None)
    return usage_report_job.report(deps.settings(), deps.stripe_client, time_left_ms=remaining)


# Every minute: the background exports still running (POST /exports), each continued from where
# the last run stopped while this run's time lasts (services/background_exports.py; the local
# server runs the same pass every few seconds). Overlapping runs are safe: each export is leased.
@bp.schedule(Rate(1, unit=Rate.MINUTES), name="exports")
def exports(event: Any) -> Dict[str, Any]:
    remaining = getattr(getattr(event, "context", None), "get_remaining_time_in_millis", None)
    return background_exports.run_due(deps.exports(), export_runs.within(EXPORT_RUN_SECONDS, remaining))
