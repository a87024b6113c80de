"""The API's front door and the assets it serves to browsers."""
from __future__ import annotations

from chalice import Blueprint

from chalicelib.api.routing import route

bp = Blueprint(__name__)


@route(bp, "/", methods=["GET"])
def index():
    return {"name": "spikes", "ok": True}
