"""The API's front door and the assets it serves to browsers."""
from __future__ import annotations

from chalice import Blueprint

from chalicelib.api.responses import HealthOut, IndexOut
from chalicelib.api.routing import route

bp = Blueprint(__name__)


@route(bp, "/", methods=["GET"])
def index():
    return IndexOut(name="spikes")


@route(bp, "/health", methods=["GET"])
def health():
    """Liveness for load balancers and monitors (the upstream Cloudflare template has it).
    It touches no dependency: a DynamoDB hiccup shows as 503s on real requests, not here."""
    return HealthOut(status="ok")
