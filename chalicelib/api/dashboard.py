"""The dashboard for share owners: one static HTML page and its JavaScript modules, served
from chalicelib/web/dashboard/. It talks to the public API only (docs/dashboard.md)."""
from __future__ import annotations

import functools
from urllib.parse import urlsplit

from chalice import Blueprint, Response

from chalicelib import crypto, deps, web
from chalicelib.api.routing import READ_METHODS, route
from chalicelib.errors import NotFound

bp = Blueprint(__name__)

ASSET_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
ASSETS = frozenset({"app.js", "api.js", "dom.js", "charts.js", "upload.js", "shares.js", "share.js", "account.js",
                    "webhooks.js", "dashboard.css"})


@functools.lru_cache(maxsize=8)
def _storage_origin(bucket: str) -> str:
    """Where presigned uploads and large exports go (S3, or the local emulator): signing a
    URL is local computation, no request."""
    signed = deps.s3_client().generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "probe"},
                                                     ExpiresIn=60)
    parts = urlsplit(signed)
    return f"{parts.scheme}://{parts.netloc}"


def _page_headers(nonce: str) -> dict:
    # Only the scripts and styles this page names, with this answer's nonce (module imports
    # inherit it): not 'self', because shares put anyone's files on this origin (/s/...), and
    # one injected <script src="/s/x/steal.js"> would read the session. No inline code, nothing
    # from elsewhere; API calls to this origin and uploads to storage. Never framed (clickjacking
    # on key revocation or deletion). Never stored: a cached page would carry an old nonce.
    policy = (f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; img-src 'self' data:; "
              f"connect-src 'self' {_storage_origin(deps.settings().bucket_name)}; "
              "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
    return {"Content-Type": "text/html; charset=utf-8", "Content-Security-Policy": policy,
            "Cache-Control": "no-store", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
            "X-Content-Type-Options": "nosniff"}


@route(bp, "/dashboard", methods=READ_METHODS, cors=False)
def dashboard_page():
    nonce = crypto.new_token(18)
    return Response(body=web.page("dashboard/index.html", nonce=nonce), status_code=200, headers=_page_headers(nonce))


@route(bp, "/dashboard/{name}", methods=READ_METHODS, cors=False)
def dashboard_asset(name: str):
    if name not in ASSETS:
        raise NotFound("No such dashboard file")
    suffix = name[name.rfind("."):]
    return Response(body=web.asset(f"dashboard/{name}"), status_code=200, headers={
        "Content-Type": ASSET_TYPES[suffix], "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})
