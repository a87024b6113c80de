"""Billing routes: Stripe Checkout and Customer Portal sessions, and this period's usage.
Stripe's events arrive at ``api/webhooks.py``; the quota reset runs from ``api/jobs.py``."""
from __future__ import annotations

from chalice import Blueprint

from chalicelib import clock, deps
from chalicelib.api import inputs
from chalicelib.api.routing import route
from chalicelib.errors import ValidationFailed
from chalicelib.lazy import lazy_import

responses = lazy_import("chalicelib.api.responses")
billing = lazy_import("chalicelib.services.billing")  # Stripe loads with a checkout, not with the app
identity = lazy_import("chalicelib.services.identity")
quotas = lazy_import("chalicelib.services.quotas")
usage = lazy_import("chalicelib.services.usage")

bp = Blueprint(__name__)


@route(bp, "/billing/checkout", methods=["GET", "POST"])
def checkout():
    request = bp.current_request
    principal = identity.require_user(inputs.principal(request), "billing:write")
    tier = (inputs.query(request).get("tier") or quotas.PRO).lower()
    if tier not in quotas.PAID_TIERS:
        raise ValidationFailed.field("tier", "tier must be pro or agent")
    session = billing.checkout(deps.settings(), deps.stripe_client, principal.user, inputs.base_url(request),
                               now=clock.epoch(), tier=tier)
    return responses.BillingUrlOut(**session)


@route(bp, "/billing/portal", methods=["GET", "POST"])
def portal():
    request = bp.current_request
    principal = identity.require_user(inputs.principal(request), "billing:write")
    session = billing.portal(deps.settings(), deps.stripe_client, principal.user, inputs.base_url(request))
    return responses.BillingUrlOut(**session)


@route(bp, "/usage", methods=["GET"])
def get_usage():
    principal = identity.require_user(inputs.principal(bp.current_request), "usage:read")
    return responses.UsageOut(**usage.usage(deps.settings(), principal.user, clock.now(), key=principal.key))
