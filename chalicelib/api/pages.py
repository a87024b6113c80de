"""HTML responses for people (as opposed to JSON for programs)."""
from __future__ import annotations

from chalice import Response

from chalicelib import web

# Pages we render ourselves: no inline script from anyone else, no framing, no referrer leaks.
PAGE_HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


def html_page(name: str, status: int = 200, **values: str) -> Response:
    return Response(body=web.page(name, trusted={"css": web.asset("layout.css")}, **values), status_code=status,
                    headers=dict(PAGE_HEADERS))
