"""HTML responses for people (as opposed to JSON for programs)."""
from __future__ import annotations

from chalice import Response

from chalicelib import crypto, web

# Pages we render ourselves: no script from anyone else, no framing, no referrer leaks.
PAGE_HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


def html_page(name: str, status: int = 200, **values: str) -> Response:
    # The magic link's page writes the dashboard's session on this origin, where shares put
    # anyone's files: only its own inline script and style run, by a nonce new in every answer
    # (docs/security.md, 162). A share's password form replaces this with the share's sandbox.
    nonce = crypto.new_token(18)
    policy = (f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; connect-src 'self'; "
              "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
    return Response(body=web.page(name, trusted={"css": web.asset("layout.css")}, nonce=nonce, **values),
                    status_code=status, headers={**PAGE_HEADERS, "Content-Security-Policy": policy})
