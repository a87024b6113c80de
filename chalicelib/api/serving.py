"""Serving shares at /s/<slug>/ (with the feedback widget injected) and /widget.js.

A share is someone else's HTML and JavaScript on our origin. Every response under /s/ carries
a CSP ``sandbox`` without ``allow-same-origin``, so share pages run in an opaque origin and
cannot reach anything of this origin (cookies, storage, credentialed API calls). See
docs/security.md.
"""
from __future__ import annotations

import re
from http.cookies import CookieError, SimpleCookie
from typing import Dict, Optional, Tuple
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

from chalice import Blueprint, Response

from chalicelib import deps, web
from chalicelib.api import inputs
from chalicelib.api.pages import html_page
from chalicelib.api.routing import error_response, route
from chalicelib.errors import AuthFailed, AuthRequired, NotFound
from chalicelib.services import shares, uploads
from chalicelib.store.models import Share

bp = Blueprint(__name__)

SANDBOX = "sandbox allow-scripts allow-forms allow-popups allow-modals allow-downloads"
SHARE_HEADERS = {
    "Content-Security-Policy": SANDBOX,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
ASSET_MAX_AGE = 300
MAX_FORM_BYTES = 4096
ACCESS_PREFIX = shares.ACCESS_PREFIX


@route(bp, "/widget.js", methods=["GET"])
def widget_script():
    return Response(body=web.asset("widget.js"), headers={
        "Content-Type": "application/javascript; charset=utf-8",
        "Cache-Control": f"public, max-age={ASSET_MAX_AGE}",
        "X-Content-Type-Options": "nosniff",
    })


def _serve_share(slug: str, **segments: str) -> Response:
    request = bp.current_request
    ordered = [segments[f"p{i}"] for i in range(1, len(segments) + 1)]
    return _serve(request, slug, "/".join(unquote(segment) for segment in ordered))


# Chalice has no greedy path parameters: one route per depth, as deep as uploads may nest,
# plus one for the access segment of password-protected shares.
route(bp, "/s/{slug}", methods=["GET", "POST"])(_serve_share)
for _depth in range(1, uploads.MAX_PATH_SEGMENTS + 2):
    route(bp, "/s/{slug}/" + "/".join(f"{{p{i}}}" for i in range(1, _depth + 1)),
          methods=["GET", "POST"])(_serve_share)


def _share_root(base_url: str, slug: str) -> str:
    return f"{base_url}/s/{slug}/"


def _redirect(location: str, status: int = 302, headers: Optional[Dict[str, str]] = None) -> Response:
    return Response(body="", status_code=status, headers={"Location": location, "Cache-Control": "no-store",
                                                          **SHARE_HEADERS, **(headers or {})})


def _query_string(request, drop: str = "") -> str:
    params = {key: value for key, value in inputs.query(request).items() if key != drop}
    return "?" + urlencode(params) if params else ""


def _serve(request, slug: str, path: str) -> Response:
    settings = deps.settings()
    base_url = inputs.base_url(request)
    trailing_slash = inputs.raw_path(request).endswith("/")
    if not path and not trailing_slash:
        # Relative links in index.html only resolve under /s/<slug>/.
        return _redirect(_share_root(base_url, slug) + _query_string(request))
    share = shares.served_share(slug)
    access_token, path = _split_access_segment(path)

    extra: Dict[str, str] = {}
    if share.password_hash:
        unlocked = _unlock(request, share, base_url, path, access_token)
        if isinstance(unlocked, Response):
            return unlocked
        extra.update(unlocked)
    elif access_token is not None:
        raise NotFound("Not found")

    if not path or trailing_slash:
        path = shares.entry_path(share, path.rstrip("/")) or ""
    elif path not in (share.files or {}) and shares.entry_path(share, path):
        return _redirect(f"{_share_root(base_url, share.slug)}{path}/" + _query_string(request))
    info = shares.file_info(share, path)
    if access_token is not None and info.content_type == "text/html" and _is_document_request(request):
        # A page or a frame reached under an access path: show the clean URL instead (the widget
        # reports location.href, and GET /spikes?project= shows it). The cookie, valid for
        # top-level navigations, does the rest; a frame without it asks for the password.
        clean = _share_root(base_url, share.slug) + ("" if path == shares.entry_path(share) else path)
        return _redirect(clean + _query_string(request), headers=extra)

    if info.size > settings.max_served_file_bytes:
        # Lambda cannot answer with more than 6 MB: hand out a short-lived direct S3 link.
        return _redirect(deps.share_files().download_url(share.share_id, path), headers=extra)
    served = shares.read_file(deps.share_files(), share, path)
    return _file_response(request, share, served, base_url, extra)


def _file_response(request, share: Share, served: shares.ServedFile, base_url: str,
                   extra: Dict[str, str]) -> Response:
    scope = "private" if share.password_hash else "public"
    is_html = served.content_type == "text/html"
    headers = {**SHARE_HEADERS, **extra,
               "Cache-Control": f"no-cache, {scope}" if is_html else f"{scope}, max-age={ASSET_MAX_AGE}"}
    # A protected page embeds an expiring access token: always send it fresh.
    if served.etag and not (is_html and share.password_hash):
        headers["ETag"] = served.etag
        if request.headers.get("if-none-match") == served.etag and "Set-Cookie" not in extra:
            return Response(body="", status_code=304, headers=headers)
    if uploads.is_text(served.content_type):
        text = served.body.decode("utf-8", errors="replace")
        if is_html:
            text = shares.inject_widget(text, shares.widget_tag(base_url, share))
            if share.password_hash:
                folder = served.path.rsplit("/", 1)[0] + "/" if "/" in served.path else ""
                text = shares.inject_base(text, _access_root(base_url, share) + folder)
        headers["Content-Type"] = f"{served.content_type}; charset=utf-8"
        return Response(body=text, headers=headers)
    # Chalice only base64-encodes bodies whose type is one of the app's binary types.
    binary_types = bp.current_app.api.binary_types
    headers["Content-Type"] = served.content_type if served.content_type in binary_types else "application/octet-stream"
    if not _accepts_binary(request, binary_types):
        # Chalice refuses a binary response to a request whose Accept names no binary type.
        return _redirect(deps.share_files().download_url(share.share_id, served.path), headers=extra)
    return Response(body=served.body, headers=headers)


def _accepts_binary(request, binary_types) -> bool:
    accepted = {part.strip().lower() for part in re.split(r"[,;]", request.headers.get("accept") or "")}
    return "*/*" in accepted or bool(accepted & {t.lower() for t in binary_types})


# --- password-protected shares ---------------------------------------------------------------

def _unlock(request, share: Share, base_url: str, path: str, access_token: Optional[str]):
    """Extra response headers when the viewer may see the share, else the refusal.

    Two proofs of the password, both HMACs of (share, password version, expiry): a cookie,
    which browsers send on top-level navigations, and an access segment in the path
    (/s/<slug>/~u.<token>/…), which the page's relative URLs carry through an injected
    <base>. The sandboxed page has an opaque origin, so its subresource requests are
    third-party and browsers that block third-party cookies would not send the cookie."""
    settings = deps.settings()
    if access_token is not None and shares.unlock_token_valid(settings, share, access_token):
        return {"Set-Cookie": _unlock_cookie(settings, share, base_url)} if _is_top_level_navigation(request) else {}
    if shares.unlock_token_valid(settings, share, _cookie(request, shares.UNLOCK_COOKIE)):
        return {}
    posted = request.method == "POST"
    password = _form_password(request) if posted else inputs.query(request).get("pw")
    if password is None:
        return _locked(request, share, path, wrong=False)
    if not shares.password_matches(settings, share, password, inputs.client_ip(request)):
        return _locked(request, share, path, wrong=True)
    cookie = _unlock_cookie(settings, share, base_url)
    if posted and request.headers.get("sec-fetch-dest") not in ("iframe", "frame"):
        # Post/redirect/get: reloading the page must not re-send the password. A frame gets the
        # page in the answer itself: browsers withhold the Lax cookie from a sandboxed page's
        # frames, so a redirect would land on the form again.
        return _redirect(_share_root(base_url, share.slug) + path + _query_string(request, drop="pw"),
                         status=303, headers={"Set-Cookie": cookie})
    return {"Set-Cookie": cookie}


def _split_access_segment(path: str) -> Tuple[Optional[str], str]:
    first, _, rest = path.partition("/")
    if first.startswith(ACCESS_PREFIX):
        return first[len(ACCESS_PREFIX):], rest
    return None, path


def _access_root(base_url: str, share: Share) -> str:
    return f"{_share_root(base_url, share.slug)}{ACCESS_PREFIX}{shares.unlock_token(deps.settings(), share)}/"


def _is_top_level_navigation(request) -> bool:
    destination = request.headers.get("sec-fetch-dest")
    if destination is None:
        # Browsers without Fetch Metadata: treat any request for HTML as a navigation, so a
        # token never ends up in an address bar (an iframe then falls back to the form).
        return "text/html" in (request.headers.get("accept") or "")
    return destination == "document"


# Fetch Metadata destinations that put a document (and so a location.href) in a browsing context.
DOCUMENT_DESTINATIONS = {"document", "iframe", "frame", "embed", "object"}


def _is_document_request(request) -> bool:
    destination = request.headers.get("sec-fetch-dest")
    if destination is None:
        return "text/html" in (request.headers.get("accept") or "")
    return destination in DOCUMENT_DESTINATIONS


def _unlock_cookie(settings, share: Share, base_url: str) -> str:
    # Scoped to this share's path; Lax is enough: only top-level navigations rely on it.
    cookie_path = urlsplit(base_url).path + f"/s/{share.slug}/"
    secure = "; Secure" if base_url.startswith("https://") else ""
    return (f"{shares.UNLOCK_COOKIE}={shares.unlock_token(settings, share)}; Path={cookie_path}; "
            f"Max-Age={shares.UNLOCK_TTL_SECONDS}; HttpOnly; SameSite=Lax{secure}")


def _locked(request, share: Share, path: str, wrong: bool) -> Response:
    wants_page = (not path or path.lower().endswith((".html", ".htm"))
                  or "text/html" in (request.headers.get("accept") or ""))
    if not wants_page:
        error = AuthFailed("Wrong password") if wrong else AuthRequired("This share is password protected")
        return error_response(error)
    page = html_page("share_password.html", status=401, slug=share.slug or "", action=_form_action(request),
                     message="Wrong password, try again." if wrong else "", message_class="err" if wrong else "")
    # A frame of a protected share lands here (browsers withhold the cookie from it): the form
    # may be framed, and it is as sandboxed as the share itself.
    page.headers.pop("X-Frame-Options", None)
    page.headers.update(SHARE_HEADERS)
    return page


def _form_action(request) -> str:
    return inputs.base_url(request) + inputs.raw_path(request) + _query_string(request, drop="pw")


def _form_password(request) -> Optional[str]:
    raw = inputs.body_bytes(request, MAX_FORM_BYTES)
    try:
        values = parse_qs(raw.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        return None
    return (values.get("password") or values.get("pw") or [None])[0]


def _cookie(request, name: str) -> Optional[str]:
    jar = SimpleCookie()
    try:
        jar.load(request.headers.get("cookie") or "")
    except CookieError:
        return None
    morsel = jar.get(name)
    return morsel.value if morsel else None

