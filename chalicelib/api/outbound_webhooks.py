"""A share's outbound webhook (Pro): its state, secret rotation, a test event, the delivery
log and resuming after a pause. Setting or removing the URL is
``PATCH /shares/{key}`` (``webhook_url``); the delivery job is in ``jobs``. See docs/webhooks.md."""
from __future__ import annotations

from chalice import Blueprint

from chalicelib import deps
from chalicelib.api import inputs
from chalicelib.api.routing import route
from chalicelib.lazy import lazy_import

responses = lazy_import("chalicelib.api.responses")
identity = lazy_import("chalicelib.services.identity")
outbound_webhooks = lazy_import("chalicelib.services.outbound_webhooks")
shares = lazy_import("chalicelib.services.shares")

bp = Blueprint(__name__)

MAX_LIST = 100
DEFAULT_LIST = 50


def _owned(key: str, scope: str):
    principal = identity.require_user(inputs.principal(bp.current_request), scope)
    return shares.get_owned(principal.user, key)


def _owned_with_pro(key: str):
    """A share whose webhook is to send now: its owner must have Pro, as for setting the URL
    (the URL of an owner whose Pro ended stays until the scheduled job strips it)."""
    principal = identity.require_user(inputs.principal(bp.current_request), "shares:write")
    share = shares.get_owned(principal.user, key)
    outbound_webhooks.require_pro_owner(deps.settings(), share, principal.user, inputs.base_url(bp.current_request))
    return share


# API Gateway allows one variable name per level: the same {key} as /shares/{key}.
@route(bp, "/shares/{key}/webhook", methods=["GET"])
def webhook_state(key: str):
    share = _owned(key, "shares:read")
    outbound_webhooks.require_webhook(share)
    return responses.WebhookOut(**outbound_webhooks.webhook_view(share))


@route(bp, "/shares/{key}/webhook/rotate", methods=["POST"])
def rotate_secret(key: str):
    share = _owned(key, "shares:write")
    secret, until = outbound_webhooks.rotate_secret(deps.settings(), share)
    return responses.WebhookRotatedOut(webhook_secret=secret, **outbound_webhooks.webhook_view(share))


@route(bp, "/shares/{key}/webhook/test", methods=["POST"])
def send_test(key: str):
    share = _owned_with_pro(key)
    delivery = outbound_webhooks.send_test(deps.settings(), share)
    return responses.TestSentOut(ok=delivery.status == outbound_webhooks.DELIVERED,
                       delivery=responses.DeliveryOut(**outbound_webhooks.delivery_view(delivery)))


@route(bp, "/shares/{key}/webhook/resume", methods=["POST"])
def resume(key: str):
    share = _owned_with_pro(key)
    queued = outbound_webhooks.resume(share)
    return responses.WebhookResumedOut(queued=queued, **outbound_webhooks.webhook_view(share))


@route(bp, "/shares/{key}/webhook/deliveries", methods=["GET"])
def deliveries(key: str):
    share = _owned(key, "shares:read")
    items = outbound_webhooks.recent(share, inputs.page_limit(inputs.query(bp.current_request), DEFAULT_LIST, MAX_LIST))
    return responses.DeliveryPageOut(data=[outbound_webhooks.delivery_view(item) for item in items])

