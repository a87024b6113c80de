"""Billing routes: Stripe Checkout and Customer Portal sessions and usage, plus the webhook
and scheduled-job entry points that app.py declares."""
from __future__ import annotations

from typing import Any, Dict

from chalice import Blueprint
from chalice.app import Request

from chalicelib import clock, deps
from chalicelib.api import inputs
from chalicelib.api.routing import route
from chalicelib.services import billing, identity, quota_reset, usage

bp = Blueprint(__name__)


@route(bp, "/billing/checkout", methods=["GET", "POST"])
def checkout():
    request = bp.current_request
    principal = identity.require_user(inputs.principal(request), "billing:write")
    return billing.checkout(deps.settings(), deps.stripe_client, principal.user, inputs.base_url(request),
                            now=clock.epoch())


@route(bp, "/billing/portal", methods=["GET", "POST"])
def portal():
    request = bp.current_request
    principal = identity.require_user(inputs.principal(request), "billing:write")
    return billing.portal(deps.settings(), deps.stripe_client, principal.user, inputs.base_url(request))


@route(bp, "/usage", methods=["GET"])
def get_usage():
    principal = identity.require_user(inputs.principal(bp.current_request), "usage:read")
    return usage.usage(deps.settings(), principal.user, clock.now())


def stripe_webhook(request: Request) -> Dict[str, Any]:
    """POST /webhooks/stripe (declared in app.py): verify, then apply the event."""
    settings = deps.settings()
    raw = inputs.body_bytes(request, billing.MAX_WEBHOOK_BYTES)
    event = billing.verify(settings, raw, request.headers.get("stripe-signature"))
    return billing.handle_event(settings, event, now=clock.epoch())


def scheduled_quota_reset(event: Any) -> Dict[str, Any]:
    """The scheduled function (declared in app.py)."""
    return quota_reset.run(deps.settings(), now=clock.now(),
                           time_left_ms=getattr(getattr(event, "context", None), "get_remaining_time_in_millis", None))
