"""Inbound webhooks: events other services push to us. Each verifies its sender before it reads
anything, then hands the event to its service. Today: Stripe's subscription events."""
from __future__ import annotations

from chalice import Blueprint

from chalicelib import clock, deps
from chalicelib.api import inputs
from chalicelib.api.routing import route
from chalicelib.lazy import lazy_import

responses = lazy_import("chalicelib.api.responses")
stripe_events = lazy_import("chalicelib.services.stripe_events")  # Stripe's library loads with an event

bp = Blueprint(__name__)


# No CORS: only Stripe's servers call this, never a browser.
@route(bp, "/webhooks/stripe", methods=["POST"], cors=False)
def stripe_webhook():
    """Verify the Stripe-Signature over the raw body, then apply the event (once, in order)."""
    request = bp.current_request
    settings = deps.settings()
    raw = inputs.body_bytes(request, stripe_events.MAX_WEBHOOK_BYTES)
    event = stripe_events.verify(settings, raw, request.headers.get("stripe-signature"))
    return responses.StripeReceivedOut(**stripe_events.handle_event(settings, event, now=clock.epoch()))
