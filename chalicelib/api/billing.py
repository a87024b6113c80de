"""Billing routes: Stripe Checkout and Customer Portal sessions, and this period's usage.
Stripe's events arrive at ``api/webhooks.py``; the quota reset runs from ``api/jobs.py``."""
from __future__ import annotations

from chalice import Blueprint

from chalicelib import clock, deps
from chalicelib.api import inputs
from chalicelib.api.responses import BillingUrlOut, UsageOut
from chalicelib.api.routing import route
from chalicelib.services import billing, identity, usage

bp = Blueprint(__name__)


@route(bp, "/billing/checkout", methods=["GET", "POST"])
def checkout():
    request = bp.current_request
    principal = identity.require_user(inputs.principal(request), "billing:write")
    return BillingUrlOut(**billing.checkout(deps.settings(), deps.stripe_client, principal.user,
                                            inputs.base_url(request), now=clock.epoch()))


@route(bp, "/billing/portal", methods=["GET", "POST"])
def portal():
    request = bp.current_request
    principal = identity.require_user(inputs.principal(request), "billing:write")
    return BillingUrlOut(**billing.portal(deps.settings(), deps.stripe_client, principal.user,
                                          inputs.base_url(request)))


@route(bp, "/usage", methods=["GET"])
def get_usage():
    principal = identity.require_user(inputs.principal(bp.current_request), "usage:read")
    return UsageOut(**usage.usage(deps.settings(), principal.user, clock.now()))
