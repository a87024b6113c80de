"""Stripe billing the user starts: Checkout (subscribe to Pro) and the Customer Portal
(manage or cancel). What Stripe then reports back is handled by ``stripe_events``."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Optional, Tuple

from chalicelib import clock
from chalicelib.errors import BillingNotConfigured, DependencyUnavailable, InternalError, NotFound
from chalicelib.logs import get_logger
from chalicelib.services import quotas
from chalicelib.services.addresses import ascii_address
from chalicelib.settings import Settings
from chalicelib.store import accounts as account_store
from chalicelib.store.models import User

log = get_logger("spikes.billing")


# --- Stripe API calls ------------------------------------------------------------------------

# Subscriptions that charge nothing now but may again, so a new one would be charged next to
# them: one Stripe is still trying to collect (its renewal failed), and one paused (Stripe's own
# pause, or paid collection paused: services/stripe_events.py stores both so). "unpaid" and
# "canceled" are where Stripe stops: a new subscription is the way back then.
RESUMABLE = {
    "past_due": "Your subscription's last payment failed and Stripe is still retrying it. Update your payment "
                "method in the billing portal (`spikes billing`, GET /billing/portal) and the same subscription "
                "resumes.",
    "paused": "Your subscription is paused. Resume it in the billing portal (`spikes billing`, GET /billing/portal), "
              "or cancel it there and check out again.",
}
# A subscription that charges nothing any more: the Checkout that started it is history.
ENDED_SUBSCRIPTION_STATUSES = ("canceled", "unpaid", "paused", "incomplete_expired")
CHECKOUT_ATTEMPTS = 5  # compare-and-set rounds against concurrent checkouts of one account
JUST_SUBSCRIBED = ("A checkout of yours was just completed: your subscription shows here once Stripe confirms it, "
                   "in a moment. Manage it with `spikes billing` (GET /billing/portal).")


class CustomerMissing(Exception):
    """Stripe no longer knows the stored customer (deleted in the Dashboard)."""


class StripeRefused(Exception):
    """Stripe refused the request as invalid (400): for calls whose caller decides what that means."""

    def __init__(self, code: Optional[str]):
        self.code = code
        super().__init__(code or "invalid_request")


def _stripe_call(what: str, fn, *args, refusal_expected: bool = False, **kwargs):
    """Call the Stripe API, turning its failures into domain errors (StripeRefused for a 400
    when ``refusal_expected``)."""
    import stripe  # loaded by the billing routes only: it costs a cold start ~0.2 s
    try:
        return fn(*args, **kwargs)
    except (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError) as exc:
        log.warning("stripe.unavailable", call=what, error=type(exc).__name__, detail=str(exc)[:200])
        raise DependencyUnavailable("Stripe is temporarily unavailable; retry shortly") from None
    except (stripe.AuthenticationError, stripe.PermissionError) as exc:
        log.error("stripe.rejected_key", call=what, error=type(exc).__name__)
        raise BillingNotConfigured("Stripe rejected this server's API key") from None
    except stripe.InvalidRequestError as exc:
        if exc.code == "resource_missing" and exc.param == "customer":
            raise CustomerMissing() from None
        if refusal_expected:
            raise StripeRefused(exc.code) from None
        log.error("stripe.failed", call=what, error=type(exc).__name__, detail=str(exc)[:300])
        raise InternalError("Stripe refused the billing request") from None
    except stripe.StripeError as exc:
        log.error("stripe.failed", call=what, error=type(exc).__name__, detail=str(exc)[:300])
        raise InternalError("Stripe refused the billing request") from None


def _require_configured(settings: Settings) -> None:
    if not settings.stripe_configured:
        raise BillingNotConfigured()


def ensure_customer(client: Any, user: User, replacing: Optional[str] = None) -> str:
    """The user's Stripe customer id, creating the customer once.

    Two concurrent first calls send the same Stripe idempotency key, so Stripe answers both
    with one customer; the id is stored only if none is stored yet, never overwritten.
    ``replacing``: the stored customer is gone at Stripe; swap it for a new one only if it is
    still the stored one (compare-and-set), so a concurrent replacement is not overwritten."""
    if user.stripe_customer_id and user.stripe_customer_id != replacing:
        return user.stripe_customer_id
    key = f"spikes-customer-{user.user_id}" + (f"-replaces-{replacing}" if replacing else "")
    customer = _stripe_call("customers.create", client.v1.customers.create,
                            params={"email": _stripe_email(user.email), "metadata": {"user_id": user.user_id}},
                            options={"idempotency_key": key})
    return account_store.set_customer(user, customer["id"], replacing)


def _stripe_email(address: Optional[str]) -> Optional[str]:
    """Stripe mails receipts and invoices as SES does, to an ASCII address: an internationalised
    domain (stored in Unicode) goes in its ``xn--`` form, which reaches the same inbox."""
    return (ascii_address(address) or address) if address else address


def checkout(settings: Settings, client_factory, user: User, base_url: str,
             now: Optional[float] = None, tier: str = quotas.PRO) -> Dict[str, Any]:
    """A Checkout session for Pro (a flat price) or the agent tier (two metered prices, billed
    on calendar months so Stripe's periods match the caps and /usage; docs/agents.md)."""
    answered = _answer_without_checkout(settings, user, tier, quotas.effective_tier(user, now))
    if answered is not None:
        return answered
    client = client_factory()
    metadata = {"user_id": user.user_id, "tier": tier}
    line_items, subscription_data = _subscription_terms(settings, tier, metadata, now)

    def create_session(customer_id: str):
        return _stripe_call("checkout.sessions.create", client.v1.checkout.sessions.create, params={
            "mode": "subscription",
            "customer": customer_id,
            "line_items": line_items,
            "client_reference_id": user.user_id,
            "metadata": metadata,
            "subscription_data": subscription_data,
            "success_url": settings.billing_success_url or f"{base_url}/dashboard?billing=success",
            "cancel_url": settings.billing_cancel_url or f"{base_url}/dashboard?billing=cancel",
        })

    def new_session():
        customer_id = ensure_customer(client, user)
        try:
            return create_session(customer_id)
        except CustomerMissing:
            log.warning("stripe.customer_missing", user_id=user.user_id, customer_id=customer_id)
            return create_session(ensure_customer(client, user, replacing=customer_id))

    return _hand_out(client, user, new_session)


def _answer_without_checkout(settings: Settings, user: User, tier: str, current: str) -> Optional[Dict[str, Any]]:
    """The answer (no url) for a user a new subscription would not serve, None for one who may
    check out; BillingNotConfigured when this server cannot sell ``tier``."""
    if current == tier:
        # The contract's null url for a user who has the tier, whether or not this server can
        # sell it (its Stripe keys removed after the user paid, say).
        name = "Spikes Pro" if tier == quotas.PRO else "the Spikes agent tier"
        manage = " Manage your subscription with `spikes billing` (GET /billing/portal)." \
            if settings.stripe_configured else ""
        return {"url": None, "message": f"You already have {name}.{manage}"}
    _require_configured(settings)
    if tier == quotas.AGENT and not settings.agent_tier_configured:
        raise BillingNotConfigured("The agent tier is not configured on this server (its operator sets "
                                  "SPIKES_STRIPE_AGENT_SPIKE_PRICE_ID and SPIKES_STRIPE_AGENT_SHARE_PRICE_ID "
                                  "beside the Stripe key: docs/agents.md)")
    if current in quotas.PAID_TIERS:
        return {"url": None, "message": f"You are on the {current} tier. To switch, cancel it in the billing portal "
                                        "(`spikes billing`, GET /billing/portal), then check out again."}
    if user.subscription_id and user.subscription_status in RESUMABLE:
        # Free here (past the grace period, or paused), but the same subscription may charge again.
        return {"url": None, "message": RESUMABLE[user.subscription_status]}
    return None


def _subscription_terms(settings: Settings, tier: str, metadata: Dict[str, str],
                        now: Optional[float]) -> Tuple[List[Dict[str, Any]], Dict[str, Any]]:
    """The session's line items and subscription data for ``tier``."""
    subscription_data: Dict[str, Any] = {"metadata": metadata}
    if tier != quotas.AGENT:
        return [{"price": settings.stripe_price_id, "quantity": 1}], subscription_data
    # Metered prices take no quantity; periods start on the 1st (UTC), like our caps.
    start = clock.now() if now is None else datetime.fromtimestamp(now, timezone.utc)
    subscription_data["billing_cycle_anchor"] = int(clock.next_period_start(start).timestamp())
    metered = [{"price": settings.stripe_agent_spike_price_id}, {"price": settings.stripe_agent_share_price_id}]
    return metered, subscription_data


def _hand_out(client: Any, user: User, new_session: Callable[[], Any]) -> Dict[str, Any]:
    """A new session's URL, once it is the user's one payable Checkout session (docs/billing.md,
    "One open Checkout session"). The session handed out before is expired first, then replaced
    in the user's item by a compare-and-set: a handed-out session is never left open and
    untracked, and of concurrent checkouts the last one stored is the only one open. If the one
    before was paid meanwhile, the user has just subscribed: no session is handed out."""
    previous, session = user.open_checkout_id, None
    for _ in range(CHECKOUT_ATTEMPTS):
        if previous and _retire(client, previous):
            if session is not None:  # never handed out: expired, so it can never be paid either
                _retire(client, session["id"])
            log.info("billing.checkout_just_completed", user_id=user.user_id, session_id=previous)
            return {"url": None, "message": JUST_SUBSCRIBED}
        if session is None:
            session = new_session()
        try:
            account_store.replace_open_checkout(user.user_id, previous, session["id"])
        except account_store.OpenCheckoutMoved as moved:  # a concurrent checkout stored its own
            previous = moved.current
            continue
        return {"url": session["url"]}
    raise DependencyUnavailable("Too many checkouts at once for this account; retry shortly")


def _retire(client: Any, session_id: str) -> bool:
    """Make sure the handed-out Checkout session ``session_id`` can no longer be paid. True when
    it was paid already: completed, with a subscription that still runs (the user has just
    subscribed); False once it is expired, or completed long ago for a subscription that ended."""
    try:
        _stripe_call("checkout.sessions.expire", client.v1.checkout.sessions.expire, session_id,
                     refusal_expected=True)
        return False
    except StripeRefused as refused:
        if refused.code == "resource_missing":
            return False  # not a session of this Stripe account (keys changed): nothing to pay
    # Only an open session can be expired: see what this one became.
    try:
        found = _stripe_call("checkout.sessions.retrieve", client.v1.checkout.sessions.retrieve, session_id,
                             params={"expand": ["subscription"]}, refusal_expected=True).to_dict()
    except StripeRefused:
        return False
    if found.get("status") == "expired":
        return False
    if found.get("status") == "complete":
        subscription = found.get("subscription")
        status = subscription.get("status") if isinstance(subscription, dict) else None
        return status not in ENDED_SUBSCRIPTION_STATUSES
    log.error("stripe.checkout_not_expired", session_id=session_id, status=found.get("status"))
    raise InternalError("Stripe refused to expire an open Checkout session")


def portal(settings: Settings, client_factory, user: User, base_url: str) -> Dict[str, Any]:
    if not settings.stripe_secret_key:
        raise BillingNotConfigured()
    if not user.stripe_customer_id:
        raise NotFound("No billing account yet: subscribe first with `spikes upgrade` (GET /billing/checkout)")
    client = client_factory()
    try:
        session = _stripe_call("billing_portal.sessions.create", client.v1.billing_portal.sessions.create, params={
            "customer": user.stripe_customer_id,
            "return_url": settings.billing_return_url or f"{base_url}/dashboard#/account",
        })
    except CustomerMissing:
        raise NotFound("Your billing account no longer exists at Stripe: subscribe again with `spikes upgrade` "
                       "(GET /billing/checkout)") from None
    return {"url": session["url"]}
