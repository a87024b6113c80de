"""The API's front door and the assets it serves to browsers."""
from __future__ import annotations

from chalice import Blueprint

from chalicelib.api.routing import READ_METHODS, route
from chalicelib.lazy import lazy_import

responses = lazy_import("chalicelib.api.responses")

bp = Blueprint(__name__)


@route(bp, "/", methods=READ_METHODS)
def index():
    return responses.IndexOut(name="spikes")


@route(bp, "/health", methods=READ_METHODS)
def health():
    """Liveness for load balancers and monitors (the upstream Cloudflare template has it).
    It touches no dependency: a DynamoDB hiccup shows as 503s on real requests, not here."""
    return responses.HealthOut(status="ok")
