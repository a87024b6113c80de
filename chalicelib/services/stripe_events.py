"""Stripe's webhook: the events that move users between tiers.

Guarantees (see docs/billing.md):
- authentic: ``stripe.Webhook.construct_event`` checks ``Stripe-Signature`` against the raw
  body with the library's default tolerance; nothing is read or written before that;
- applied once: the user update and the ``stripe-event#<id>`` marker are one transaction,
  the marker written only if absent;
- order-safe: the update is conditional on ``subscription_event_at < event.created``, so an
  older event never overwrites newer subscription state (on a tie, a downgrade wins);
- complete: turning Pro features off on a downgrade (and on again on an upgrade) is idempotent
  and re-derived from the stored state on every delivery, so a retry after a crash finishes it
  and a late duplicate never contradicts newer state;
- bounded: the webhook changes at most ``stripe_event_share_pages`` pages of the owner's shares
  and leaves the rest, durably, to the scheduled quota reset (every 15 minutes): the tier
  itself changes at once, in the event's transaction.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Dict, Optional


from chalicelib import clock
from chalicelib.errors import InvalidSignature, WebhooksNotConfigured
from chalicelib.logs import get_logger
from chalicelib.services import quota_reset, quotas
from chalicelib.settings import Settings
from chalicelib.store import accounts as account_store
from chalicelib.store import ledger, subscriptions
from chalicelib.store.models import User

log = get_logger("spikes.stripe_events")

# Stripe retries a delivery for up to three days; keep markers well beyond that.
EVENT_MARKER_TTL_SECONDS = 30 * 24 * 3600
MAX_WEBHOOK_BYTES = 1024 * 1024

PRO_STATUSES = {"active", "trialing"}
GRACE_STATUSES = {"past_due"}
FREE_STATUSES = {"canceled", "unpaid", "paused", "incomplete_expired"}

CHECKOUT_COMPLETED = "checkout.session.completed"
SUBSCRIPTION_EVENTS = {"customer.subscription.created", "customer.subscription.updated",
                       "customer.subscription.deleted", "customer.subscription.paused",
                       "customer.subscription.resumed"}
PAYMENT_FAILED = "invoice.payment_failed"
HANDLED_EVENTS = {CHECKOUT_COMPLETED, PAYMENT_FAILED, *SUBSCRIPTION_EVENTS}


# --- the webhook -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Change:
    """What one event means for a user's subscription state."""
    kind: str  # "pro" | "grace" | "free"
    status: str
    subscription_id: Optional[str]
    customer_id: Optional[str]
    user_hint: Optional[str]  # the user id Stripe carries in metadata / client_reference_id
    tier: str = quotas.PRO  # the paid tier a "pro" (paid) change grants


def verify(settings: Settings, raw_body: bytes, signature: Optional[str]) -> Dict[str, Any]:
    """The event as a plain dict, only if the signature over the raw body is valid and fresh."""
    if not settings.stripe_webhook_secret:
        raise WebhooksNotConfigured("Stripe webhooks are not configured on this server")
    if not signature:
        raise InvalidSignature("Missing Stripe-Signature header")
    import stripe  # loaded by the webhook only: it costs a cold start ~0.2 s
    try:
        stripe.Webhook.construct_event(raw_body, signature, settings.stripe_webhook_secret.get_secret_value())
    except stripe.SignatureVerificationError:
        raise InvalidSignature() from None
    except (ValueError, TypeError, AttributeError, KeyError):  # signed, but not a JSON event object
        raise InvalidSignature("Signed payload is not a JSON event") from None
    event = json.loads(raw_body)
    if not isinstance(event, dict) or not isinstance(event.get("id"), str) or not isinstance(event.get("type"), str) \
            or not isinstance(event.get("data"), dict) or not _is_epoch(event.get("created")):
        raise InvalidSignature("Signed payload is not a Stripe event")
    return event


def _is_epoch(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _object(value: Any) -> Dict[str, Any]:
    """A field that should hold an object: anything else reads as empty. Signed events are
    Stripe's, but a malformed one must be a clear answer, not a crash Stripe retries for days."""
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _metadata_user(obj: Dict[str, Any]) -> Optional[str]:
    return _text(_object(obj.get("metadata")).get("user_id")) or None


def _id_of(value: Any) -> Optional[str]:
    """An id from a field that may hold the id or the expanded object."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def _tier_of(obj: Dict[str, Any], settings: Optional[Settings]) -> str:
    """The tier the subscription's prices pay for; our metadata only when it carries none we
    know (a Checkout session's event lists no prices). Prices first: metadata survives a plan
    switch in the portal, and an agent-tier flag on a subscription that pays only Pro's flat
    price would meter usage that no price bills."""
    agent_prices = {settings.stripe_agent_spike_price_id, settings.stripe_agent_share_price_id} - {None} \
        if settings else set()
    pro_prices = {settings.stripe_price_id} - {None} if settings else set()
    items = _object(obj.get("items")).get("data") or []
    prices = {_id_of(item.get("price")) for item in (items if isinstance(items, list) else []) if isinstance(item, dict)}
    if prices & agent_prices:
        return quotas.AGENT
    if prices & pro_prices:
        return quotas.PRO
    if _object(obj.get("metadata")).get("tier") == quotas.AGENT:
        return quotas.AGENT
    return quotas.PRO


def classify(event: Dict[str, Any], settings: Optional[Settings] = None) -> Optional[Change]:
    """Map an event to a change, or None for events (and statuses) that change nothing."""
    kind_of_event = event["type"]
    obj = _object(_object(event.get("data")).get("object"))
    customer = _id_of(obj.get("customer"))
    if kind_of_event == CHECKOUT_COMPLETED:
        if obj.get("mode") != "subscription" or _text(obj.get("payment_status")) not in ("paid", "no_payment_required"):
            return None  # async payment methods: the subscription events decide later
        return Change("pro", "active", _id_of(obj.get("subscription")), customer,
                      obj.get("client_reference_id") or _metadata_user(obj), _tier_of(obj, settings))
    if kind_of_event in SUBSCRIPTION_EVENTS:
        status = _text(obj.get("status"))
        if kind_of_event == "customer.subscription.deleted":
            kind = "free"
        elif status in PRO_STATUSES and obj.get("pause_collection"):
            # The portal's pause (or the Dashboard's "pause payment collection"): still `active`,
            # but nothing is charged until it resumes (docs/security.md, 146).
            kind, status = "free", "paused"
        elif status in PRO_STATUSES:
            kind = "pro"
        elif status in GRACE_STATUSES:
            kind = "grace"
        elif status in FREE_STATUSES:
            kind = "free"
        else:
            return None  # incomplete: the first payment is still being attempted
        return Change(kind, status or "canceled", _id_of(obj.get("id")), customer, _metadata_user(obj),
                      _tier_of(obj, settings))
    if kind_of_event == PAYMENT_FAILED:
        # API versions from 2025 on carry the subscription under parent.subscription_details.
        details = _object(_object(obj.get("parent")).get("subscription_details")) \
            or _object(obj.get("subscription_details"))
        subscription = _id_of(details.get("subscription")) or _id_of(obj.get("subscription"))
        if not subscription:
            return None  # a one-off invoice: no tier depends on it
        return Change("grace", "past_due", subscription, customer, _metadata_user(details))
    return None


def _find_user(change: Change) -> Optional[User]:
    if isinstance(change.user_hint, str) and 0 < len(change.user_hint) <= 128:
        user = account_store.get(change.user_hint, consistent=True)
        if user is not None:
            return user
    if change.customer_id:
        return account_store.by_customer(change.customer_id)
    return None


def _stored_change(settings: Settings, change: Change, created: int) -> subscriptions.SubscriptionChange:
    """The change as the user's stored subscription state takes it."""
    # The grace period starts at the first failure and is not extended by later retries.
    grace_until = created + settings.payment_grace_days * 24 * 3600 if change.kind == "grace" else None
    return subscriptions.SubscriptionChange(
        kind="paid" if change.kind == "pro" else change.kind, status=change.status,
        subscription_id=change.subscription_id, customer_id=change.customer_id, event_at=created,
        tier=change.tier if change.kind == "pro" else quotas.FREE, grace_until=grace_until)


def _marker(event: Dict[str, Any], outcome: str, user_id: Optional[str], now: float):
    return ledger.stripe_event_marker(event["id"], outcome, expires_at=int(now) + EVENT_MARKER_TTL_SECONDS,
                                      detail={"type": event["type"], "user_id": user_id,
                                              "created": event.get("created")}, owner_id=user_id)


def _finish(settings: Settings, user_id: str, kind: str, now: float) -> int:
    """Pro features off when the stored state says free (``kind`` "free"), locked shares open
    again when it says paid (``kind`` "pro"): a few pages here, the rest left to the scheduled
    job (services/quota_reset.change_pro_features). Re-derived from the stored state, never
    from the event, and idempotent: a retry after a crash finishes it, and a redelivered
    upgrade that arrives after a cancellation (a duplicate) does nothing."""
    user = account_store.get(user_id, consistent=True)
    if user is None or quotas.has_paid_features(quotas.effective_tier(user, now)) != (kind == "pro"):
        return 0
    return quota_reset.change_pro_features(settings, user_id, datetime.fromtimestamp(now, tz=timezone.utc))


def handle_event(settings: Settings, event: Dict[str, Any], now: Optional[float] = None) -> Dict[str, Any]:
    """Apply one verified event. Returns what happened; raises (-> 5xx, Stripe retries) when
    the store fails."""
    now = clock.epoch() if now is None else now
    if event["type"] not in HANDLED_EVENTS:
        return {"received": True, "outcome": "ignored"}
    change = classify(event, settings)
    if change is None:
        return {"received": True, "outcome": "ignored"}
    created = event["created"]
    user = _find_user(change)
    if user is None:
        log.warning("stripe.event_without_user", event_id=event["id"], type=event["type"])
        return {"received": True, "outcome": "unknown-user"}

    outcome = "applied"
    if ledger.stripe_event_seen(event["id"]):
        outcome = "duplicate"
    else:
        try:
            subscriptions.apply(user.user_id, _stored_change(settings, change, created),
                                                    _marker(event, change.kind, user.user_id, now))
        except subscriptions.AlreadyApplied:
            outcome = "duplicate"
        except subscriptions.StaleChange:
            outcome = "stale"  # older than the stored state, or about a replaced subscription
            ledger.save_once(_marker(event, "stale", user.user_id, now))
    changed = _finish(settings, user.user_id, change.kind, now) if change.kind in ("free", "pro") else 0
    log.info("stripe.event", event_id=event["id"], type=event["type"], outcome=outcome, kind=change.kind,
             user_id=user.user_id, shares_changed=changed)
    return {"received": True, "outcome": outcome}
