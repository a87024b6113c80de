"""Unknown routes and wrong methods answer in the contract's envelope too.

API Gateway (and chalice local, which imitates it) answer unmatched paths with their own
403 body, so every depth up to ``MAX_DEPTH`` gets a catch-all route, and every real route
gets a 405 view for the methods it does not serve.
"""
from __future__ import annotations

from chalice import Blueprint, Chalice
from chalice.app import RouteEntry

from chalicelib.api.routing import ALL_METHODS, ANY_CONTENT_TYPE, route, handle
from chalicelib.errors import NO_SUCH_ROUTE, MethodNotAllowed, NotFound

MAX_DEPTH = 10

bp = Blueprint(__name__)


def _not_found(**_params: str):
    raise NotFound(NO_SUCH_ROUTE)


def is_fallback(entry: RouteEntry) -> bool:
    """A catch-all's 404 or a 405 view: not a route of the API (the OpenAPI document leaves them out)."""
    return entry.view_name.startswith(("method_not_allowed", _not_found.__name__))


for _depth in range(1, MAX_DEPTH + 1):
    _path = "/" + "/".join(f"{{p{i}}}" for i in range(1, _depth + 1))
    route(bp, _path, methods=ALL_METHODS)(_not_found)


def add_method_fallbacks(app: Chalice) -> None:
    """For each registered path, answer the methods nobody registered with a 405."""
    for path, views in list(app.routes.items()):
        missing = [m for m in ALL_METHODS if m not in views]
        if not missing:
            continue
        allowed = ", ".join(sorted(views))
        cors = next(iter(views.values())).cors

        def method_not_allowed(_allowed: str = allowed, **_params: str):
            return handle(_raise_405(_allowed))

        method_not_allowed.__name__ = f"method_not_allowed_{abs(hash(path))}"
        app.route(path, methods=missing, cors=cors, content_types=ANY_CONTENT_TYPE,
                  name=method_not_allowed.__name__)(method_not_allowed)


def _raise_405(allowed: str):
    def call():
        raise MethodNotAllowed(f"Method not allowed; this route accepts {allowed}", headers={"Allow": allowed})
    return call
