"""Inbound webhooks: events other services push to us. Each verifies its sender before it reads
anything, then hands the event to its service. Today: Stripe's subscription events, and the
thin events of Stripe's event destination reporting meter events it found invalid later."""
from __future__ import annotations

from chalice import Blueprint

from chalicelib import clock, deps
from chalicelib.api import inputs
from chalicelib.api.routing import route
from chalicelib.lazy import lazy_import

responses = lazy_import("chalicelib.api.responses")
stripe_events = lazy_import("chalicelib.services.stripe_events")  # Stripe's library loads with an event
meter_errors = lazy_import("chalicelib.services.meter_errors")

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


@route(bp, "/webhooks/stripe/meter-errors", methods=["POST"], cors=False)
def stripe_meter_errors():
    """Stripe's event destination (thin events): verify with the destination's own secret, then
    read the report back from Stripe and send again or park the events it names (once)."""
    request = bp.current_request
    settings = deps.settings()
    raw = inputs.body_bytes(request, meter_errors.MAX_BYTES)
    notification = meter_errors.verify(settings, deps.stripe_client, raw, request.headers.get("stripe-signature"))
    return responses.StripeReceivedOut(**meter_errors.handle(notification, deps.stripe_client, now=clock.epoch()))
