"""The API's front door and the assets it serves to browsers."""
from __future__ import annotations

from chalice import Blueprint

from chalicelib.api.routing import READ_METHODS, route
from chalicelib.lazy import lazy_import

inputs = lazy_import("chalicelib.api.inputs")
responses = lazy_import("chalicelib.api.responses")

bp = Blueprint(__name__)


@route(bp, "/", methods=READ_METHODS)
def index():
    """The address is all a newcomer (a person, an agent) may have: it names where the API is described."""
    base = inputs.base_url(bp.current_request)
    return responses.IndexOut(name="spikes", openapi=f"{base}/openapi.json", docs=f"{base}/docs",
                              dashboard=f"{base}/dashboard")


@route(bp, "/health", methods=READ_METHODS)
def health():
    """Liveness for load balancers and monitors (the upstream Cloudflare template has it).
    It touches no dependency: a DynamoDB hiccup shows as 503s on real requests, not here."""
    return responses.HealthOut(status="ok")
