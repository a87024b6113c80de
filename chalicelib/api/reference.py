"""The API reference: ``GET /openapi.json`` and ``GET /docs`` (Swagger UI, vendored under
chalicelib/web/swagger-ui with its licence; nothing is fetched from a CDN)."""
from __future__ import annotations

from chalice import Blueprint, Response

from chalicelib import crypto, web
from chalicelib.api import inputs
from chalicelib.api.routing import READ_METHODS, route
from chalicelib.errors import NotFound

bp = Blueprint(__name__)

# Relative URLs: the page works at /docs, /v1/docs and behind an API Gateway stage prefix.
DOCS_ASSETS = web.DOCS_ASSETS
DOCS_HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Cache-Control": "no-store",  # the nonce is new in every answer
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
# Swagger UI sets inline styles and calls only this API. Its scripts by nonce, not 'self':
# shares put anyone's files on this origin (docs/security.md, 162).
DOCS_POLICY = ("default-src 'self'; script-src 'nonce-{nonce}'; style-src 'self' 'unsafe-inline'; "
               "img-src 'self' data:; connect-src 'self'; base-uri 'none'; frame-ancestors 'none'")


@route(bp, "/openapi.json", methods=READ_METHODS)
def openapi_document():
    from chalicelib.api import openapi  # its models cost a cold start ~0.1 s; only this route needs them
    body = openapi.document_json(inputs.base_url(bp.current_request), bp.current_app.routes)
    return Response(body=body, headers={"Content-Type": "application/json", "Cache-Control": "no-cache"})


@route(bp, "/docs", methods=READ_METHODS)
def docs_page():
    path = inputs.raw_path(bp.current_request).rstrip("/")
    # Asset URLs relative to the page: "docs/x" from /docs, "docs/x" from /v1/docs.
    prefix = path.rsplit("/", 1)[-1] + "/"
    nonce = crypto.new_token(18)
    return Response(body=web.page("docs.html", asset_prefix=prefix, nonce=nonce),
                    headers={**DOCS_HEADERS, "Content-Security-Policy": DOCS_POLICY.format(nonce=nonce)})


@route(bp, "/docs/{asset}", methods=READ_METHODS)
def docs_asset(asset: str):
    if asset not in DOCS_ASSETS:
        raise NotFound("No such asset")
    name, content_type = DOCS_ASSETS[asset]
    return Response(body=web.asset(name), headers={"Content-Type": content_type, "X-Content-Type-Options": "nosniff",
                                                   "Cache-Control": "public, max-age=3600"})
