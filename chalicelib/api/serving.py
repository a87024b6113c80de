"""Serving shares at /s/<slug>/ and /widget.js. What a visitor gets is decided by one service
call (``share_pages.visit``); this module reads the request and shapes the reply.

A share is someone else's HTML and JavaScript on our origin. Every response under /s/ carries
a CSP ``sandbox`` without ``allow-same-origin``, so share pages run in an opaque origin and
cannot reach anything of this origin (cookies, storage, credentialed API calls). See
docs/security.md.
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple
from urllib.parse import parse_qs, unquote, urlencode

from chalice import Blueprint, Response

from chalicelib import deps, web
from chalicelib.api import inputs
from chalicelib.api.pages import html_page
from chalicelib.api.routing import EMPTY_BODY_TYPE, READ_METHODS, error_response, route
from chalicelib.errors import AuthFailed, AuthRequired, SpikesError
from chalicelib.lazy import lazy_import
from chalicelib.limit_errors import RateLimited
from chalicelib.services.uploads import MAX_PATH_SEGMENTS  # the routes' depth (light: no parser)

accept = lazy_import("chalicelib.services.accept")
share_access = lazy_import("chalicelib.services.share_access")
share_pages = lazy_import("chalicelib.services.share_pages")

bp = Blueprint(__name__)

SANDBOX = "sandbox allow-scripts allow-forms allow-popups allow-modals allow-downloads"
SHARE_HEADERS = {
    "Content-Security-Policy": SANDBOX,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
MAX_FORM_BYTES = 4096


@route(bp, "/widget.js", methods=READ_METHODS)
def widget_script():
    return Response(body=web.asset("widget.js"), headers={
        "Content-Type": "application/javascript; charset=utf-8",
        "Cache-Control": f"public, max-age={web.ASSET_MAX_AGE}",
        "X-Content-Type-Options": "nosniff",
    })


def _serve_share(slug: str, **segments: str) -> Response:
    request = bp.current_request
    path = "/".join(unquote(segments[f"p{i}"]) for i in range(1, len(segments) + 1))
    try:
        return _serve(request, slug, path)
    except RateLimited as exc:  # the password's limits: a browser gets the form back, told to wait
        if "text/html" in accept.accepted(request.headers.get("accept") or ""):
            wait = f"Too many password attempts. Try again in {exc.extra['retry_after']} seconds."
            return _form_page(request, slug, exc.status, wait, exc.headers)
        return _share_error(exc)
    except SpikesError as exc:  # a refusal under /s/ is sandboxed like the share's files
        return _share_error(exc)


def _share_error(exc: SpikesError) -> Response:
    response = error_response(exc)
    response.headers.update(SHARE_HEADERS)
    return response


# Chalice has no greedy path parameters: one route per depth, as deep as uploads may nest,
# plus one for the access segment of password-protected shares.
route(bp, "/s/{slug}", methods=[*READ_METHODS, "POST"])(_serve_share)
for _depth in range(1, MAX_PATH_SEGMENTS + 2):
    route(bp, "/s/{slug}/" + "/".join(f"{{p{i}}}" for i in range(1, _depth + 1)),
          methods=[*READ_METHODS, "POST"])(_serve_share)


def _serve(request, slug: str, path: str) -> Response:
    reply = share_pages.visit(deps.settings(), deps.share_files(), share_pages.Visit(
        slug=slug, path=path, trailing_slash=inputs.raw_path(request).endswith("/"),
        base_url=inputs.base_url(request), query=inputs.query(request), client_ip=inputs.client_ip(request),
        posted=request.method == "POST", read_form_password=lambda: _form_password(request),
        unlock_cookies=_cookies(request, share_access.UNLOCK_COOKIE), fetch_dest=request.headers.get("sec-fetch-dest"),
        accept=request.headers.get("accept") or "", if_none_match=request.headers.get("if-none-match"),
        # GET is the only method with ranges (RFC 9110 §14.2): a HEAD answers the whole file's headers.
        range=request.headers.get("range") if request.method == "GET" else None,
        if_range=request.headers.get("if-range"),
        # Chalice only base64-encodes bodies whose type is one of the app's binary types.
        binary_types=frozenset(bp.current_app.api.binary_types)))
    if isinstance(reply, share_pages.Redirect):
        return Response(body="", status_code=reply.status, headers={
            "Location": reply.location, "Cache-Control": "no-store", "Content-Type": EMPTY_BODY_TYPE,
            **SHARE_HEADERS, **reply.headers})
    if isinstance(reply, share_pages.PasswordRequired):
        return _password_form(request, reply)
    return Response(body=reply.body, status_code=reply.status, headers={**SHARE_HEADERS, **reply.headers})


def _password_form(request, reply: share_pages.PasswordRequired) -> Response:
    if not reply.as_page:
        error = AuthFailed("Wrong password") if reply.wrong else AuthRequired("This share is password protected")
        return _share_error(error)
    return _form_page(request, reply.slug, 401, "Wrong password, try again." if reply.wrong else "")


def _form_page(request, slug: str, status: int, message: str, headers: Optional[Dict[str, str]] = None) -> Response:
    page = html_page("share_password.html", status=status, slug=slug, action=_form_action(request),
                     message=message, message_class="err" if message else "")
    # A frame of a protected share lands here (browsers withhold the cookie from it): the form
    # may be framed, and it is as sandboxed as the share itself.
    page.headers.pop("X-Frame-Options", None)
    page.headers.update({**SHARE_HEADERS, **(headers or {})})
    return page


def _form_action(request) -> str:
    params = {key: value for key, value in inputs.query(request).items() if key != share_pages.PASSWORD_PARAM}
    return inputs.base_url(request) + inputs.raw_path(request) + ("?" + urlencode(params) if params else "")


def _form_password(request) -> Optional[str]:
    raw = inputs.body_bytes(request, MAX_FORM_BYTES)
    try:
        values = parse_qs(raw.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        return None
    return (values.get("password") or values.get("pw") or [None])[0]


def _cookies(request, name: str) -> Tuple[str, ...]:
    """Every value of the cookie, read pair by pair: the standard library's parser drops every
    cookie of a header once one of them is not to its taste (a JSON value, a space), and on a
    custom domain the header also carries the parent domain's cookies, one of which may have
    the same name (set by a sibling subdomain for that path) and come first."""
    pairs = (pair.partition("=") for pair in (request.headers.get("cookie") or "").split(";"))
    return tuple(value.strip().strip('"') for key, found, value in pairs if found and key.strip() == name)
