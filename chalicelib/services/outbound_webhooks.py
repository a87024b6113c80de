"""Outbound webhooks (Pro): signed POSTs to a share's ``webhook_url`` for ``spike.created``,
``spike.resolved`` and ``share.deleted``. This module records the events and holds what the
owner does with a webhook; the delivery job that sends them is services/webhook_delivery.py.

Outbox: the event is a ``Delivery`` item written in the same DynamoDB transaction as the
change it reports (so no event is lost and none is invented), and sending happens later, in
the delivery job (scheduled in AWS, a loop inside the local server). Posting a spike never
waits for a receiver. Receivers deduplicate by the event id.

The owner reads the webhook's state and its deliveries, rotates its secret (the old one keeps
signing for a grace period), sends a test event, and resumes a paused webhook; a resume or a
new or removed URL releases the events held meanwhile (services/held_deliveries.py).
"""
from __future__ import annotations

import json
import secrets as _secrets
import socket
from typing import Any, Callable, Dict, List, Optional, Tuple

from chalicelib import clock
from chalicelib.errors import NotFound, ValidationFailed
from chalicelib.services import held_deliveries, quotas, ratelimit, webhook_delivery
from chalicelib.services.webhook_signing import new_nonce, signing_secret
from chalicelib.settings import Settings
from chalicelib.store import accounts, deliveries, share_webhooks, webhook_releases
from chalicelib.store.deliveries import CANCELLED, DELIVERED, DUE, PAUSED, PENDING  # noqa: F401 - for the routes
from chalicelib.store.models import Delivery, Share, User

SPIKE_CREATED = "spike.created"
SPIKE_RESOLVED = "spike.resolved"
SHARE_DELETED = "share.deleted"
TEST_EVENT = "webhook.test"
EVENT_TYPES = (SPIKE_CREATED, SPIKE_RESOLVED, SHARE_DELETED, TEST_EVENT)
# Each test is an outbound request made now (up to the attempt's timeout) and a stored delivery:
# an owner checking a receiver sends a few; more would make the server a request generator.
TESTS_PER_MINUTE = 10


# --- recording events (the outbox) -----------------------------------------------------------

def share_view(share: Share) -> Dict[str, Any]:
    return {"id": share.share_id, "slug": share.slug, "name": share.name}


def wants_events(share: Optional[Share]) -> bool:
    return share is not None and bool(share.webhook_url) and bool(share.webhook_secret_nonce)


def event(share: Share, event_type: str, spike: Optional[Dict[str, Any]] = None,
          now: Optional[float] = None) -> Delivery:
    """The outbox item for one event: add it to the transaction that makes the change."""
    now = clock.epoch() if now is None else now
    event_id, created_at = "evt_" + _secrets.token_hex(12), clock.iso_millis_at(now)
    body = json.dumps({"id": event_id, "type": event_type, "created_at": created_at, "share": share_view(share),
                       "spike": spike}, separators=(",", ":"), ensure_ascii=False)
    delivery_id = deliveries.final_event_id(share.share_id) if event_type == SHARE_DELETED \
        else "dlv_" + _secrets.token_hex(12)
    return Delivery(delivery_id, share_id=share.share_id, owner_id=share.owner_id,
                    event_id=event_id, event_type=event_type, body=body, url=share.webhook_url,
                    secret_nonce=share.webhook_secret_nonce, status=PENDING, attempts=0, created_at=created_at,
                    retry_from=int(now), due=DUE, next_attempt_at=int(now),
                    expires_at=deliveries.expiry_for(now, held_deliveries.max_event_age()))


def add_to(tx: Any, delivery: Optional[Delivery]) -> None:
    """Add an outbox item to a transaction (nothing when the share wants no events)."""
    deliveries.add_to(tx, delivery)


# --- what the owner does ---------------------------------------------------------------------

def delivery_view(delivery: Delivery, now: Optional[float] = None) -> Dict[str, Any]:
    """As the owner sees it: an event past the horizon that the job or a release has not ended
    yet is shown as what it is, cancelled (expired), never as still to be sent."""
    def iso_or_none(value: Optional[float]) -> Optional[str]:
        return clock.iso_millis_at(value) if value is not None else None
    status, last_error = delivery.status, delivery.last_error
    if status in (PENDING, PAUSED) and held_deliveries.expired(delivery, clock.epoch() if now is None else now):
        status, last_error = CANCELLED, held_deliveries.expired_reason()
    return {"id": delivery.delivery_id, "event_id": delivery.event_id, "event_type": delivery.event_type,
            "status": status, "attempts": int(delivery.attempts or 0), "created_at": delivery.created_at,
            "last_attempt_at": iso_or_none(delivery.last_attempt_at),
            "next_attempt_at": iso_or_none(delivery.next_attempt_at) if status == PENDING else None,
            "last_status_code": int(delivery.last_status_code) if delivery.last_status_code is not None else None,
            "last_error": last_error, "delivered_at": iso_or_none(delivery.delivered_at)}


def webhook_view(share: Share, now: Optional[float] = None) -> Dict[str, Any]:
    now = clock.epoch() if now is None else now
    grace = share.webhook_previous_until if share.webhook_previous_nonce and \
        (share.webhook_previous_until or 0) > now else None
    return {"url": share.webhook_url, "events": list(EVENT_TYPES[:3]), "paused": bool(share.webhook_paused_at),
            "paused_at": share.webhook_paused_at, "pause_reason": share.webhook_pause_reason,
            "previous_secret_valid_until": clock.iso_millis_at(grace) if grace else None}


def require_receiver_scope(principal, webhook_url: Optional[str]) -> None:
    """A webhook's receiver gets every new spike whole, reviewers' e-mail addresses included:
    pointing one somewhere needs what reading them does (``spikes:read``), not only
    ``shares:write`` (docs/security.md, 154). Removing one does not. ``principal`` is a
    services/identity.Principal (ScopeDenied from its ``require``)."""
    if webhook_url:
        principal.require("spikes:read")


def require_pro_owner(settings: Settings, share: Share, caller: User, base_url: str) -> None:
    """Sending and resuming need the share's owner to have Pro (or the agent tier) now, a grace
    period counting until its end: 403 UPGRADE_REQUIRED, as setting the URL answers."""
    owner = caller if caller.user_id == share.owner_id else accounts.get(share.owner_id)
    if owner is None or not quotas.has_paid_features(quotas.effective_tier(owner)):
        raise quotas.paid_feature_refused(settings, base_url, "Webhook URLs")


def require_webhook(share: Share) -> None:
    if not share.webhook_url or not share.webhook_secret_nonce:
        raise NotFound("This share has no webhook; set webhook_url with PATCH /shares/{key}")


def rotate_secret(settings: Settings, share: Share, now: Optional[float] = None) -> Tuple[str, float]:
    """A new secret; the old one keeps signing (alongside) for the grace period."""
    require_webhook(share)
    now = clock.epoch() if now is None else now
    nonce, until = new_nonce(), now + settings.webhook_secret_grace_seconds
    if not share_webhooks.rotate_secret(share, nonce, int(until)):
        raise ValidationFailed.field("webhook", "The secret changed meanwhile; retry")
    return signing_secret(settings, share.share_id, nonce), until


def send_test(settings: Settings, share: Share, now: Optional[float] = None,
              resolver: Callable[..., list] = socket.getaddrinfo) -> Delivery:
    """Record a ``webhook.test`` event and attempt it now (retried later like any other when
    it fails). The answer shows what the receiver said."""
    require_webhook(share)
    ratelimit.enforce("webhook-test", share.owner_id, TESTS_PER_MINUTE, 60)  # per account, all its shares
    now = clock.epoch() if now is None else now
    delivery = event(share, TEST_EVENT, None, now)
    delivery.next_attempt_at = int(now) + webhook_delivery.CLAIM_SECONDS  # claimed by this request
    delivery.attempts = 1
    delivery.last_attempt_at = int(now)
    deliveries.insert(delivery)
    webhook_delivery.process(settings, delivery, now, None, {share.share_id: share}, resolver)
    delivery.refresh()
    return delivery


def recent(share: Share, limit: int = 50) -> List[Delivery]:
    return deliveries.recent(share.share_id, limit)


def resume(share: Share, now: Optional[float] = None) -> int:
    """Unpause a share's webhook and release the events held meanwhile (each due now, with a
    fresh retry window): a first batch here, the rest by the delivery job, so however long the
    pause the request is bounded. Returns how many were queued here."""
    require_webhook(share)
    now = clock.epoch() if now is None else now
    webhook_releases.record(None, share.share_id, now)  # first: whatever this request does not end, the job does
    if not share_webhooks.unpause(share):  # deleted, or its webhook removed, since it was read
        raise NotFound("This share has no webhook; set webhook_url with PATCH /shares/{key}")
    return held_deliveries.end_held(share.share_id, now)[0]  # those queued (not those expired)


def record_release(share: Share, now: Optional[float] = None) -> None:
    """Before the URL changes or is removed (which ends a pause): the delivery job will end the
    held events, whatever becomes of the request after the change."""
    webhook_releases.record(None, share.share_id, clock.epoch() if now is None else now)


def release_held(share: Share, now: Optional[float] = None) -> int:
    """After the URL changed or was removed, with its release recorded first: the held events go
    to the new receiver, or are cancelled; a first batch here, the rest by the delivery job."""
    return held_deliveries.end_held(share.share_id, clock.epoch() if now is None else now)[0]
