"""The local server (tools/devserver.py) plus one bench-only route, never shipped:

``GET /_bench/bare`` does one GetItem through the same stack as the real routes (the threaded
local server, the app's middleware, settings, PynamoDB, DynamoDB Local) and answers a small JSON
body. It is the floor the feedback routes are compared with in `make bench`.
"""
from __future__ import annotations

import sys

from tools import devserver

BARE_PATH = "/_bench/bare"


def add_bare_route(app) -> None:
    from chalicelib import deps
    from chalicelib.api.responses import OkOut
    from chalicelib.api.routing import route
    from chalicelib.store.models import LedgerItem

    def bare():
        deps.settings()
        try:
            LedgerItem.get("bench#bare")
        except LedgerItem.DoesNotExist:
            pass
        return OkOut()  # answered like every route: a response model (a dict is refused)

    route(app, BARE_PATH, methods=["GET"])(bare)


if __name__ == "__main__":
    sys.exit(devserver.main(extend_app=add_bare_route))
