"""Outbound webhooks (Pro): signed POSTs to a share's ``webhook_url`` for ``spike.created``,
``spike.resolved`` and ``share.deleted``.

Outbox: the event is a ``Delivery`` item written in the same DynamoDB transaction as the
change it reports (so no event is lost and none is invented), and sending happens later, in
the delivery job (scheduled in AWS, a loop inside the local server). Posting a spike never
waits for a receiver. A delivery is attempted until a 2xx answer, with exponential backoff
and jitter, for ``webhook_retry_window_seconds`` (24 h); then it is failed and the share's
webhook is paused with a mail to the owner. Receivers deduplicate by the event id.

Signature: ``X-Spikes-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "{t}.{body}")>`` (one
``v1`` per valid secret while a rotation's grace period runs). Secrets are not stored: each is
derived from the server's secret key and a random nonce kept on the share.

Every attempt re-checks the receiver: https, and every address its name resolves to public
(not private, loopback, link-local, metadata or reserved); the connection goes to the checked
address (no second lookup to rebind), redirects are not followed unless configured, each hop
is checked again, and the answer is read with a size and time bound.
"""
from __future__ import annotations

import json
import random
import secrets as _secrets
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Optional, Tuple

from chalicelib.errors import NotFound, ValidationFailed
from chalicelib.logs import get_logger
from chalicelib.services import held_deliveries
from chalicelib.services.webhook_sender import Attempt, UnsafeReceiver, post, resolve_target  # noqa: F401
from chalicelib.services.webhook_signing import (new_nonce, secrets_for, signature_header,  # noqa: F401
                                                 signing_secret)
from chalicelib.settings import Settings
from chalicelib.store import accounts, deliveries, share_webhooks, webhook_releases
from chalicelib.store import shares as share_store
from chalicelib.store.deliveries import CANCELLED, DELIVERED, DUE, FAILED, PAUSED, PENDING
from chalicelib.store.models import Delivery, Share

log = get_logger("spikes.webhooks.outbound")

SPIKE_CREATED = "spike.created"
SPIKE_RESOLVED = "spike.resolved"
SHARE_DELETED = "share.deleted"
TEST_EVENT = "webhook.test"
EVENT_TYPES = (SPIKE_CREATED, SPIKE_RESOLVED, SHARE_DELETED, TEST_EVENT)

# A claimed delivery is hidden from other workers for this long (longer than one attempt).
CLAIM_SECONDS = 120
USER_AGENT = "Spikes-Webhooks/1"


# --- recording events (the outbox) -----------------------------------------------------------

def _iso(moment: float) -> str:
    value = datetime.fromtimestamp(moment, timezone.utc)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def share_view(share: Share) -> Dict[str, Any]:
    return {"id": share.share_id, "slug": share.slug, "name": share.name}


def wants_events(share: Optional[Share]) -> bool:
    return share is not None and bool(share.webhook_url) and bool(share.webhook_secret_nonce)


def event(share: Share, event_type: str, spike: Optional[Dict[str, Any]] = None,
          now: Optional[float] = None) -> Delivery:
    """The outbox item for one event: add it to the transaction that makes the change."""
    now = time.time() if now is None else now
    event_id = "evt_" + _secrets.token_hex(12)
    body = json.dumps({"id": event_id, "type": event_type, "created_at": _iso(now), "share": share_view(share),
                       "spike": spike}, separators=(",", ":"), ensure_ascii=False)
    return Delivery("dlv_" + _secrets.token_hex(12), share_id=share.share_id, owner_id=share.owner_id,
                    event_id=event_id, event_type=event_type, body=body, url=share.webhook_url,
                    secret_nonce=share.webhook_secret_nonce, status=PENDING, attempts=0, created_at=_iso(now),
                    retry_from=int(now), due=DUE, next_attempt_at=int(now),
                    expires_at=deliveries.expiry_for(now, held_deliveries.max_event_age()))


def headers_for(settings: Settings, share: Optional[Share], delivery: Delivery, now: float) -> Dict[str, str]:
    return {"Content-Type": "application/json", "User-Agent": USER_AGENT,
            "X-Spikes-Event": delivery.event_type, "X-Spikes-Delivery": delivery.delivery_id,
            "X-Spikes-Event-Id": delivery.event_id,
            "X-Spikes-Signature": signature_header(secrets_for(settings, share, delivery, now), delivery.body,
                                                   int(now))}


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
    held_ended: int = 0  # held events released or cancelled (held_deliveries.finish_releases)
    releases_failed: int = 0  # releases whose step raised: moved back or parked (services/pending_work.py)
    releases_parked: int = 0
    releases_stopped: Optional[str] = None  # why the run took no more releases, if it stopped early


def _share(share_id: str, cache: Dict[str, Optional[Share]]) -> Optional[Share]:
    if share_id not in cache:
        cache[share_id] = share_store.get_by_id(share_id)
    return cache[share_id]


def _finish(delivery: Delivery, status: str, now: float, attempt: Attempt, attempted: bool = True) -> None:
    deliveries.finish(delivery, status, int(now), attempt.status_code, attempt.error, attempted)


def attempt_delivery(settings: Settings, delivery: Delivery, share: Optional[Share], now: float,
                     resolver: Callable[..., list] = socket.getaddrinfo) -> Attempt:
    url = share.webhook_url if share is not None and share.webhook_url else delivery.url
    return post(settings, url, delivery.body, headers_for(settings, share, delivery, now), resolver)


def _pause(share: Share, reason: str, now: float, mailer: Any) -> None:
    if not share_webhooks.pause(share, _iso(now), reason):
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
            f"Deliveries to {share.webhook_url} for your share \"{share.name or share.slug}\" kept failing for "
            f"more than a day, so we paused them.\n\nLast error: {reason}\n\nFix the receiver, then resume "
            f"with POST /v1/shares/{share.share_id}/webhook/resume: the events held meanwhile are delivered "
            "then. GET /v1/shares/{key}/webhook/deliveries lists every attempt.\n")))
    except Exception:  # noqa: BLE001 - the note is a courtesy; the pause itself is recorded
        log.warning("webhook.pause_mail_failed", share_id=share.share_id)


def process(settings: Settings, delivery: Delivery, now: float, mailer: Any = None,
            shares_cache: Optional[Dict[str, Optional[Share]]] = None,
            resolver: Callable[..., list] = socket.getaddrinfo) -> str:
    """Attempt one claimed delivery and record the outcome; returns the new status."""
    if held_deliveries.expired(delivery, now):  # stale now: cancelled rather than sent (or held) late
        _finish(delivery, CANCELLED, now, Attempt(None, held_deliveries.expired_reason()), attempted=False)
        return CANCELLED
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
    try:
        attempt = attempt_delivery(settings, delivery, share, now, resolver)
    except Exception as exc:  # noqa: BLE001 - a failed attempt: retried, then failed, never a stuck run
        log.exception("webhook.attempt_crashed", delivery_id=delivery.delivery_id)
        attempt = Attempt(None, f"internal error: {type(exc).__name__}")
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


def run_due(settings: Settings, now_fn: Callable[[], float] = time.time, mailer: Any = None,
            time_left_ms: Optional[Callable[[], int]] = None, batch: int = 25, max_batches: int = 40,
            resolver: Callable[..., list] = socket.getaddrinfo) -> RunReport:
    """The delivery job: attempt every delivery whose time has come, batch by batch, until
    none is due or the time runs short (the next run continues)."""
    report = RunReport()
    report.held_ended, releases = held_deliveries.finish_releases(
        now_fn(), time_left_ms=time_left_ms, reserve_ms=int(settings.webhook_timeout_seconds + 1) * 1000)
    report.releases_failed, report.releases_parked, report.releases_stopped = (
        releases["failed"], releases["parked"], releases["stopped"])
    cache: Dict[str, Optional[Share]] = {}
    for _ in range(max_batches):
        if time_left_ms is not None and time_left_ms() < (settings.webhook_timeout_seconds + 1) * 1000:
            break
        now = now_fn()
        ready = deliveries.due(int(now), batch)
        if not ready:
            break
        for delivery in ready:
            if time_left_ms is not None and time_left_ms() < (settings.webhook_timeout_seconds + 1) * 1000:
                return report
            if not deliveries.claim(delivery, int(now), CLAIM_SECONDS):
                continue
            report.attempted += 1
            outcome = process(settings, delivery, now, mailer, cache, resolver)
            report.delivered += outcome == DELIVERED
            report.retrying += outcome == PENDING
            report.failed += outcome == FAILED
            report.paused += outcome == PAUSED
    return report


# --- what the owner does ---------------------------------------------------------------------

def delivery_view(delivery: Delivery, now: Optional[float] = None) -> Dict[str, Any]:
    """As the owner sees it: an event past the horizon that the job or a release has not ended
    yet is shown as what it is, cancelled (expired), never as still to be sent."""
    def iso_or_none(value: Optional[float]) -> Optional[str]:
        return _iso(value) if value is not None else None
    status, last_error = delivery.status, delivery.last_error
    if status in (PENDING, PAUSED) and held_deliveries.expired(delivery, time.time() if now is None else now):
        status, last_error = CANCELLED, held_deliveries.expired_reason()
    return {"id": delivery.delivery_id, "event_id": delivery.event_id, "event_type": delivery.event_type,
            "status": status, "attempts": int(delivery.attempts or 0), "created_at": delivery.created_at,
            "last_attempt_at": iso_or_none(delivery.last_attempt_at),
            "next_attempt_at": iso_or_none(delivery.next_attempt_at) if status == PENDING else None,
            "last_status_code": int(delivery.last_status_code) if delivery.last_status_code is not None else None,
            "last_error": last_error, "delivered_at": iso_or_none(delivery.delivered_at)}


def webhook_view(share: Share, now: Optional[float] = None) -> Dict[str, Any]:
    now = time.time() if now is None else now
    grace = share.webhook_previous_until if share.webhook_previous_nonce and \
        (share.webhook_previous_until or 0) > now else None
    return {"url": share.webhook_url, "events": list(EVENT_TYPES[:3]), "paused": bool(share.webhook_paused_at),
            "paused_at": share.webhook_paused_at, "pause_reason": share.webhook_pause_reason,
            "previous_secret_valid_until": _iso(grace) if grace else None}


def require_webhook(share: Share) -> None:
    if not share.webhook_url or not share.webhook_secret_nonce:
        raise NotFound("This share has no webhook; set webhook_url with PATCH /shares/{key}")


def rotate_secret(settings: Settings, share: Share, now: Optional[float] = None) -> Tuple[str, float]:
    """A new secret; the old one keeps signing (alongside) for the grace period."""
    require_webhook(share)
    now = time.time() if now is None else now
    nonce, until = new_nonce(), now + settings.webhook_secret_grace_seconds
    if not share_webhooks.rotate_secret(share, nonce, int(until)):
        raise ValidationFailed.field("webhook", "The secret changed meanwhile; retry")
    return signing_secret(settings, share.share_id, nonce), until


def send_test(settings: Settings, share: Share, now: Optional[float] = None,
              resolver: Callable[..., list] = socket.getaddrinfo) -> Delivery:
    """Record a ``webhook.test`` event and attempt it now (retried later like any other when
    it fails). The answer shows what the receiver said."""
    require_webhook(share)
    now = time.time() if now is None else now
    delivery = event(share, TEST_EVENT, None, now)
    delivery.next_attempt_at = int(now) + CLAIM_SECONDS  # claimed by this request
    delivery.attempts = 1
    delivery.last_attempt_at = int(now)
    deliveries.insert(delivery)
    process(settings, delivery, now, None, {share.share_id: share}, resolver)
    delivery.refresh()
    return delivery


def recent(share: Share, limit: int = 50) -> List[Delivery]:
    return deliveries.recent(share.share_id, limit)


def resume(share: Share, now: Optional[float] = None) -> int:
    """Unpause a share's webhook and release the events held meanwhile (each due now, with a
    fresh retry window): a first batch here, the rest by the delivery job, so however long the
    pause the request is bounded. Returns how many were queued here."""
    require_webhook(share)
    now = time.time() if now is None else now
    webhook_releases.record(None, share.share_id, now)  # first: whatever this request does not end, the job does
    share_webhooks.unpause(share)
    return held_deliveries.end_held(share.share_id, now)[0]  # those queued (not those expired)


def record_release(share: Share, now: Optional[float] = None) -> None:
    """Before the URL changes or is removed (which ends a pause): the delivery job will end the
    held events, whatever becomes of the request after the change."""
    webhook_releases.record(None, share.share_id, time.time() if now is None else now)


def release_held(share: Share, now: Optional[float] = None) -> int:
    """After the URL changed or was removed, with its release recorded first: the held events go
    to the new receiver, or are cancelled; a first batch here, the rest by the delivery job."""
    return held_deliveries.end_held(share.share_id, time.time() if now is None else now)[0]


def add_to(tx: Any, delivery: Optional[Delivery]) -> None:
    """Add an outbox item to a transaction (nothing when the share wants no events)."""
    deliveries.add_to(tx, delivery)

