"""The webhook delivery job (scheduled in AWS, a loop inside the local server): attempts the
outbox's due deliveries (services/outbound_webhooks.py), batch by batch, after ending the held
events of recorded releases (services/held_deliveries.py).

A delivery is attempted until a 2xx answer, with exponential backoff and jitter, for
``webhook_retry_window_seconds`` (24 h); then it is failed and the share's webhook is paused
with a mail to the owner. A run claims each delivery before attempting it (hidden from other
runs for ``CLAIM_SECONDS``); receivers deduplicate by the event id.

Signature: ``X-Spikes-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "{t}.{body}")>`` (one
``v1`` per valid secret while a rotation's grace period runs). Secrets are not stored: each is
derived from the server's secret key and a random nonce kept on the share
(services/webhook_signing.py).

Every attempt re-checks the receiver (services/webhook_sender.py): https, and every address
its name resolves to public (not private, loopback, link-local, metadata or reserved); the
connection goes to the checked address (no second lookup to rebind), redirects are not followed
unless configured, each hop is checked again, and the answer is read with a size and time bound.
"""
from __future__ import annotations

import random
import socket
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional

from chalicelib import clock
from chalicelib.logs import get_logger
from chalicelib.services import held_deliveries, quotas, webhook_urls
from chalicelib.services.webhook_sender import Attempt, post
from chalicelib.services.webhook_signing import secrets_for, signature_header
from chalicelib.settings import Settings
from chalicelib.store import accounts, deliveries, share_webhooks
from chalicelib.store import shares as share_store
from chalicelib.store.deliveries import CANCELLED, DELIVERED, FAILED, PAUSED, PENDING
from chalicelib.store.models import Delivery, Share, User

log = get_logger("spikes.webhooks.outbound")

# A claimed delivery is hidden from other workers for this long (longer than one attempt).
CLAIM_SECONDS = 120
# A run stops after this many deliveries in a row whose step raised: the store is failing.
MAX_ERRORS_IN_A_ROW = 5
USER_AGENT = "Spikes-Webhooks/1"
# Webhooks are a Pro feature: an owner's events are not sent past the end of Pro (docs/webhooks.md).
HELD_NOT_PAID = "held: webhooks need Pro, and the owner's Pro has ended"
CANCELLED_NOT_PAID = "not sent: webhooks need Pro, and the owner's Pro had ended"
GONE_WITHOUT_WEBHOOK = "not sent: the share was deleted after its webhook was removed"
# An attempt our own code crashed in: the receiver was not at fault, so the share's other events
# are still attempted in the run (one bad event must not hold the rest: security review 5).
INTERNAL_ERROR = "internal error"


def headers_for(settings: Settings, share: Optional[Share], delivery: Delivery, now: float,
                signed_as: Optional[Delivery] = None) -> Dict[str, str]:
    """``signed_as``: for a deleted share, its ``share.deleted`` event, whose secret is the last."""
    return {"Content-Type": "application/json", "User-Agent": USER_AGENT,
            "X-Spikes-Event": delivery.event_type, "X-Spikes-Delivery": delivery.delivery_id,
            "X-Spikes-Event-Id": delivery.event_id,
            "X-Spikes-Signature": signature_header(secrets_for(settings, share, signed_as or delivery, now),
                                                   delivery.body, int(now))}



# --- the retry schedule ----------------------------------------------------------------------

def retry_delay(settings: Settings, attempts: int, rng: random.Random = random.Random()) -> int:
    """Exponential backoff with jitter: after attempt n, wait between half and all of
    first_retry * 2^(n-1), capped."""
    ceiling = min(settings.webhook_max_retry_delay_seconds, settings.webhook_first_retry_seconds * 2 ** (attempts - 1))
    return max(1, int(rng.uniform(ceiling / 2, ceiling)))


# --- the delivery job ------------------------------------------------------------------------

@dataclass
class RunReport:
    attempted: int = 0
    delivered: int = 0
    retrying: int = 0
    failed: int = 0
    paused: int = 0
    # Not attempted: an earlier attempt of this run to the same share's receiver failed, and
    # they wait for its retry, so one slow receiver costs a run one timeout, not one per event.
    deferred: int = 0
    held_ended: int = 0  # held events released or cancelled (held_deliveries.finish_releases)
    releases_failed: int = 0  # releases whose step raised: moved back or parked (services/pending_work.py)
    releases_parked: int = 0
    releases_stopped: Optional[str] = None  # why the run took no more releases, if it stopped early
    # Deliveries whose step raised (the store failing for it, not the receiver): left claimed,
    # tried again once the claim runs out; the run goes on with the others.
    errors: int = 0


def _share(share_id: str, cache: Dict[str, Optional[Share]]) -> Optional[Share]:
    if share_id not in cache:
        cache[share_id] = share_store.get_by_id(share_id)
    return cache[share_id]


def _finish(delivery: Delivery, status: str, now: float, attempt: Attempt, attempted: bool = True) -> None:
    deliveries.finish(delivery, status, int(now), attempt.status_code, attempt.error, attempted)


def attempt_delivery(settings: Settings, delivery: Delivery, share: Optional[Share], now: float,
                     resolver: Callable[..., list] = socket.getaddrinfo, final: Optional[Delivery] = None) -> Attempt:
    """``final``: a deleted share's ``share.deleted`` event, where its webhook pointed at the end."""
    url = share.webhook_url if share is not None and share.webhook_url else (final or delivery).url
    return post(settings, url, delivery.body, headers_for(settings, share, delivery, now, final), resolver)


def _final_event(delivery: Delivery) -> Optional[Delivery]:
    """For an event of a deleted share: its ``share.deleted`` event (itself for that one), which
    says where the webhook pointed when the share was deleted. None when it had none then: the
    URL an event was recorded for may have been removed or replaced before the deletion, and an
    event must never go where its owner took the webhook away from (docs/security.md, 171)."""
    if delivery.event_type == "share.deleted":  # an earlier version's too, under a random id
        return delivery
    return deliveries.final_event(delivery.share_id)


def _pause(share: Share, reason: str, now: float, mailer: Any) -> None:
    if not share_webhooks.pause(share, clock.iso_millis_at(now), reason):
        return  # already paused (or the webhook was removed meanwhile)
    log.warning("webhook.paused", share_id=share.share_id)
    if mailer is not None:
        _mail_owner_about_pause(share, reason, mailer)


def _mail_owner_about_pause(share: Share, reason: str, mailer: Any) -> None:
    from chalicelib.services.mailer import Mail
    owner = accounts.get(share.owner_id)
    if owner is None or not owner.email:
        return
    try:
        mailer.send(Mail(to=owner.email, subject=f"Webhook paused for share {share.name or share.slug}", text=(
            f"Deliveries to {webhook_urls.shown_in_mail(share.webhook_url)} for your share \"{share.name or share.slug}\" kept failing for "
            f"more than a day, so we paused them.\n\nLast error: {reason}\n\nFix the receiver, then resume "
            f"with POST /v1/shares/{share.share_id}/webhook/resume: the events held meanwhile are delivered "
            "then. GET /v1/shares/{key}/webhook/deliveries lists every attempt.\n")))
    except Exception:  # noqa: BLE001 - the note is a courtesy; the pause itself is recorded
        log.warning("webhook.pause_mail_failed", share_id=share.share_id)


def _owner_pays(owner_id: str, now: float, owners: Dict[str, Optional[User]]) -> bool:
    """Whether the owner has Pro (or the agent tier) at ``now``: a grace period counts until
    its end by the clock, not until the job stores the downgrade."""
    if owner_id not in owners:
        owners[owner_id] = accounts.get(owner_id)
    owner = owners[owner_id]
    return owner is not None and quotas.has_paid_features(quotas.effective_tier(owner, now))


def process(settings: Settings, delivery: Delivery, now: float, mailer: Any = None,
            shares_cache: Optional[Dict[str, Optional[Share]]] = None,
            resolver: Callable[..., list] = socket.getaddrinfo,
            owners: Optional[Dict[str, Optional[User]]] = None) -> str:
    """Attempt one claimed delivery and record the outcome; returns the new status. ``owners``:
    the share owners this run read (read again each batch: a cancellation applies within one)."""
    if held_deliveries.expired(delivery, now):  # stale now: cancelled rather than sent (or held) late
        _finish(delivery, CANCELLED, now, Attempt(None, held_deliveries.expired_reason()), attempted=False)
        return CANCELLED
    owners = owners if owners is not None else {}
    cache = shares_cache if shares_cache is not None else {}
    share = _share(delivery.share_id, cache)
    if share is not None and share.webhook_url and share.webhook_paused_at:
        if deliveries.hold(delivery, share.pk, "held: the share's webhook is paused", int(now)):
            return PAUSED
        # Resumed, changed or removed since this run read it: as it is now, and sent (or cancelled).
        share = cache[delivery.share_id] = share_store.get_by_id(delivery.share_id, consistent=True)
    if share is not None and not share.webhook_url:
        _finish(delivery, CANCELLED, now, Attempt(None, "the share's webhook was removed"), attempted=False)
        return CANCELLED
    final = _final_event(delivery) if share is None else None
    if share is None and final is None:
        _finish(delivery, CANCELLED, now, Attempt(None, GONE_WITHOUT_WEBHOOK), attempted=False)
        return CANCELLED
    owner_id = share.owner_id if share is not None else delivery.owner_id  # None: recorded by an old version
    if owner_id is not None and not _owner_pays(owner_id, now, owners):
        if share is None:  # a deleted share's last event: no Pro to come back to for it
            _finish(delivery, CANCELLED, now, Attempt(None, CANCELLED_NOT_PAID), attempted=False)
            return CANCELLED
        # Held until Pro comes back (its return records a release: store/pro_features.py) or the
        # job strips the URL (which cancels it); the check makes a payment meanwhile win.
        if deliveries.hold_while(delivery, HELD_NOT_PAID, int(now), quotas.while_paid(share.owner_id, now, paid=False)):
            return PAUSED
        owners[share.owner_id] = accounts.get(share.owner_id, consistent=True)
    try:
        attempt = attempt_delivery(settings, delivery, share, now, resolver, final)
    except Exception as exc:  # noqa: BLE001 - a failed attempt: retried, then failed, never a stuck run
        log.exception("webhook.attempt_crashed", delivery_id=delivery.delivery_id)
        attempt = Attempt(None, f"{INTERNAL_ERROR}: {type(exc).__name__}")
    return _record_outcome(settings, delivery, share, attempt, now, mailer, cache)


def _record_outcome(settings: Settings, delivery: Delivery, share: Optional[Share], attempt: Attempt, now: float,
                    mailer: Any, cache: Dict[str, Optional[Share]]) -> str:
    """Delivered, failed for good (past the retry window: the share's webhook paused), or
    rescheduled with backoff; returns the new status."""
    if attempt.ok:
        _finish(delivery, DELIVERED, now, attempt)
        log.info("webhook.delivered", delivery_id=delivery.delivery_id, status=attempt.status_code)
        return DELIVERED
    if now >= delivery.retry_from + settings.webhook_retry_window_seconds:
        _finish(delivery, FAILED, now, attempt)
        log.warning("webhook.failed", delivery_id=delivery.delivery_id, error=attempt.error)
        if share is not None:
            _pause(share, attempt.error or "no 2xx answer", now, mailer)
            cache.pop(delivery.share_id, None)
        return FAILED
    delay = retry_delay(settings, int(delivery.attempts or 1))
    deliveries.reschedule(delivery, int(now), int(now) + delay, attempt.status_code, attempt.error)
    log.info("webhook.retrying", delivery_id=delivery.delivery_id, error=attempt.error, in_seconds=delay)
    return PENDING


def run_due(settings: Settings, now_fn: Callable[[], float] = clock.epoch, mailer: Any = None,
            time_left_ms: Optional[Callable[[], int]] = None, batch: int = 25, max_batches: int = 40,
            resolver: Callable[..., list] = socket.getaddrinfo) -> RunReport:
    """The delivery job: attempt every delivery whose time has come, batch by batch, until
    none is due or the time runs short (the next run continues)."""
    report = RunReport()
    _end_held_events(settings, now_fn, time_left_ms, report)
    cache: Dict[str, Optional[Share]] = {}
    failing: Dict[str, int] = {}  # share id -> when its receiver's failed attempt of this run is retried
    errors_in_a_row = 0
    for _ in range(max_batches):
        if _no_time_for_an_attempt(settings, time_left_ms):
            break
        now = now_fn()
        ready = deliveries.due(int(now), batch)
        if not ready:
            break
        owners: Dict[str, Optional[User]] = {}
        for delivery in ready:
            if _no_time_for_an_attempt(settings, time_left_ms):
                return report
            # The clock at this attempt, not the batch's start: attempts before it may have taken
            # a timeout each, and its claim, signature and schedule count from when it is made.
            now = now_fn()
            if delivery.share_id in failing:  # its receiver failed this run: with its retry, not now
                report.deferred += deliveries.defer(delivery, failing[delivery.share_id])
                continue
            if not deliveries.claim(delivery, int(now), CLAIM_SECONDS):
                continue
            report.attempted += 1
            try:
                outcome = process(settings, delivery, now, mailer, cache, resolver, owners)
            except Exception:  # noqa: BLE001 - one delivery's failure must not stop the others
                log.exception("webhook.step_failed", delivery_id=delivery.delivery_id)
                report.errors += 1
                errors_in_a_row += 1
                if errors_in_a_row >= MAX_ERRORS_IN_A_ROW:
                    return report  # the store itself is failing: the next run tries again
                continue
            errors_in_a_row = 0
            if outcome == PENDING and not (delivery.last_error or "").startswith(INTERNAL_ERROR):
                failing[delivery.share_id] = int(delivery.next_attempt_at or now)
            _count(report, outcome)
    return report


def _no_time_for_an_attempt(settings: Settings, time_left_ms: Optional[Callable[[], int]]) -> bool:
    """Less left than an attempt may take: a receiver's timeout, and a second to record it."""
    return time_left_ms is not None and time_left_ms() < (settings.webhook_timeout_seconds + 1) * 1000


def _end_held_events(settings: Settings, now_fn: Callable[[], float], time_left_ms: Optional[Callable[[], int]],
                     report: RunReport) -> None:
    """The recorded releases' held events, released or cancelled before any delivery is taken."""
    try:
        report.held_ended, releases = held_deliveries.finish_releases(
            now_fn(), time_left_ms=time_left_ms, reserve_ms=int(settings.webhook_timeout_seconds + 1) * 1000)
        report.releases_failed, report.releases_parked, report.releases_stopped = (
            releases["failed"], releases["parked"], releases["stopped"])
    except Exception as exc:  # noqa: BLE001 - the releases wait for the next run; the deliveries go on
        log.exception("webhook.releases_failed")
        report.releases_stopped = f"error: {type(exc).__name__}"


def _count(report: RunReport, outcome: str) -> None:
    report.delivered += outcome == DELIVERED
    report.retrying += outcome == PENDING
    report.failed += outcome == FAILED
    report.paused += outcome == PAUSED
