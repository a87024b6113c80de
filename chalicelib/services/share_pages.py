"""What a visitor of ``/s/<slug>/...`` is sent: one call, ``visit``, decides it from what the
request says (path, proofs of the password, what the browser accepts) and returns a reply
the HTTP layer only has to shape: a redirect, the password form, or the file (HTML with the
widget injected).

A protected share accepts two proofs of its password (see ``share_access``): the unlock
cookie, which browsers send on top-level navigations, and an access segment in the path
(``/s/<slug>/~u.<token>/...``), which the page's relative URLs carry through an injected
<base>. The sandboxed page has an opaque origin, so its subresource requests are third-party
and browsers that block third-party cookies would not send the cookie.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Callable, Dict, FrozenSet, Optional, Tuple, Union
from urllib.parse import quote, urlencode

from chalicelib import lambda_answer, web
from chalicelib.errors import NotFound, ShareUnavailable
from chalicelib.services import accept, byte_ranges, entity_tags, share_access, share_html, uploads
from chalicelib.services.share_links import PASSWORD_PARAM, file_url, share_path, split_access_segment
from chalicelib.settings import Settings
from chalicelib.store import shares as share_store
from chalicelib.store.files import ShareFiles
from chalicelib.store.models import Share

# Fetch Metadata destinations that put a document (and so a location.href) in a browsing context.
DOCUMENT_DESTINATIONS = {"document", "iframe", "frame", "embed", "object"}
# /s/<slug> redirects a browser and answers anyone else with the page: caches must tell them apart.
ROOT_VARY = {"Vary": "Sec-Fetch-Dest, Accept"}


@dataclass(frozen=True)
class Visit:
    """One request for a share's page or asset, as the HTTP layer read it."""
    slug: str
    path: str  # decoded, after /s/<slug>/ ("" for the root)
    trailing_slash: bool
    base_url: str
    query: Dict[str, str]
    client_ip: str
    posted: bool = False  # the password form
    read_form_password: Callable[[], Optional[str]] = lambda: None  # read only when a password is needed
    unlock_cookies: Tuple[str, ...] = ()  # every one the header carries: a planted one may come first
    fetch_dest: Optional[str] = None  # Sec-Fetch-Dest
    accept: str = ""
    if_none_match: Optional[str] = None
    range: Optional[str] = None  # Range, for a GET only (RFC 9110 §14.2)
    if_range: Optional[str] = None
    binary_types: FrozenSet[str] = frozenset()  # types the HTTP layer can send as bytes


@dataclass(frozen=True)
class Redirect:
    location: str
    status: int = 302
    headers: Dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PasswordRequired:
    """The share is protected and no valid proof came: the form (for pages) or a 401."""
    slug: str
    wrong: bool  # a password came and it was wrong
    as_page: bool


@dataclass(frozen=True)
class Content:
    body: Union[str, bytes]
    headers: Dict[str, str]
    status: int = 200


Reply = Union[Redirect, PasswordRequired, Content]


@dataclass(frozen=True)
class ServedFile:
    path: str
    content_type: str
    size: int
    body: bytes = b""
    etag: str = ""


def visit(settings: Settings, share_files: ShareFiles, v: Visit) -> Reply:
    if _is_unslashed_root(v) and _is_document_request(v):
        # Relative links in index.html only resolve under /s/<slug>/: browsers go there. Any
        # other client (the contract's `curl …/s/<slug>`) gets the page here, with a <base>.
        return Redirect(v.base_url + share_path(v.slug) + _query_string(v), headers=dict(ROOT_VARY))
    share = served_share(v.slug)
    access_token, path = split_access_segment(v.path)

    extra: Dict[str, str] = {}
    if share.password_hash:
        unlocked = _unlock(settings, v, share, path, access_token)
        if not isinstance(unlocked, dict):
            return unlocked
        extra.update(unlocked)
    elif access_token is not None:
        raise NotFound("Not found")

    if not path or v.trailing_slash:
        path = entry_path(share, path.rstrip("/")) or ""
    elif path not in (share.files or {}) and entry_path(share, path):
        return Redirect(file_url(v.base_url, share.slug, path + "/") + _query_string(v))
    info = file_info(share, path)
    if access_token is not None and info.content_type == "text/html" and _is_document_request(v):
        # A page or a frame reached under an access path: show the clean URL instead (the widget
        # reports location.href, and GET /spikes?project= shows it). The cookie, valid for
        # top-level navigations, does the rest; a frame without it asks for the password.
        clean = file_url(v.base_url, share.slug, "" if path == entry_path(share) else path)
        return Redirect(clean + _query_string(v), headers=extra)

    if info.size > settings.max_served_file_bytes:
        # Lambda cannot answer with more than 6 MB (uploads refuse documents that large anyway).
        return Redirect(_s3_link(share_files, share, info), headers=extra)
    served = read_file(share_files, share, path)
    return _content(settings, share_files, v, share, served, extra)


def _content(settings: Settings, share_files: ShareFiles, v: Visit, share: Share, served: ServedFile,
             extra: Dict[str, str]) -> Reply:
    scope = "private" if share.password_hash else "public"
    is_html = served.content_type == "text/html"
    headers = {**extra, "Cache-Control": f"no-cache, {scope}" if is_html else f"{scope}, max-age={web.ASSET_MAX_AGE}"}
    if _is_unslashed_root(v):
        headers.update(ROOT_VARY)
    if uploads.is_text(served.content_type):
        text = share_html.inflate(served.body, settings.max_served_file_bytes)
        if text is None:  # compressed (.svgz), and more than the function serves
            return Redirect(_s3_link(share_files, share, served), headers=extra)
        body: Union[str, bytes] = _text(settings, v, share, replace(served, body=text))
        # The text as sent (decoded, with the widget this version injects), not the stored file:
        # a revalidation after an upgrade that changes either gets the new page, not a 304.
        etag = f'"{hashlib.sha256(body.encode("utf-8")).hexdigest()[:32]}"'
        headers["Content-Type"] = f"{served.content_type}; charset=utf-8"
    else:
        body, etag = served.body, served.etag
        # Only the HTTP layer's binary types go out as bytes; anything else as octet-stream.
        headers["Content-Type"] = (served.content_type if served.content_type in v.binary_types
                                   else "application/octet-stream")
    if isinstance(body, bytes) and not _accepts_binary(v):
        # A binary response to a request whose Accept names no binary type cannot be sent.
        return Redirect(_s3_link(share_files, share, served), headers=extra)
    # A protected page embeds an expiring access token: always send it fresh.
    if etag and not (is_html and share.password_hash):
        headers["ETag"] = etag
        if entity_tags.revalidates(v.if_none_match, etag) and "Set-Cookie" not in extra:
            # Empty, of the body's kind: Chalice base64-encodes a binary type's body, and fails
            # on a string there (finding 95).
            return Content(body[:0], headers, status=304)
    if isinstance(body, str) and lambda_answer.too_heavy(body):
        # Under the size limit in UTF-8, over Lambda's in the answer (letters outside ASCII
        # weigh up to three times more there: chalicelib/lambda_answer.py).
        return Redirect(_s3_link(share_files, share, served), headers=extra)
    if isinstance(body, bytes):
        return _ranged(v, body, etag, headers)
    return Content(body, headers)


def _ranged(v: Visit, body: bytes, etag: str, headers: Dict[str, str]) -> Content:
    """A binary file, whole or the range asked for. Text files are always sent whole: the text
    sent is not the file stored (decoded to UTF-8, HTML with the widget and, for a protected
    page, an access path that changes with every answer and no ETag for If-Range to hold on
    to), and it goes out as a string, which a range could cut mid-character."""
    headers["Accept-Ranges"] = "bytes"
    wanted = byte_ranges.requested(v.range, v.if_range, etag, len(body))
    if wanted is None:
        return Content(body, headers)
    headers["Content-Range"] = wanted.content_range(len(body))
    if isinstance(wanted, byte_ranges.Unsatisfiable):
        headers.pop("ETag", None)
        return Content("", {**headers, "Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store"},
                       status=416)
    return Content(body[wanted.first:wanted.last + 1], headers, status=206)


def _text(settings: Settings, v: Visit, share: Share, served: ServedFile) -> str:
    """A text file as served: HTML with the widget, and the <base> a protected page or the
    unslashed root needs."""
    text = share_html.decode_text(served.body)
    if served.content_type != "text/html":
        return text
    text = share_html.inject_widget(text, v.base_url, share.share_id)
    if share.password_hash:
        folder = served.path.rsplit("/", 1)[0] + "/" if "/" in served.path else ""
        return share_html.inject_base(text, share_access.access_root(settings, v.base_url, share)
                                      + quote(folder, safe="/"))
    if _is_unslashed_root(v):
        return share_html.inject_base(text, v.base_url + share_path(share.slug))
    return text


def _s3_link(share_files: ShareFiles, share: Share, file: ServedFile) -> str:
    """A short-lived direct S3 link to the file. S3 cannot send our sandbox header, so a
    document type (HTML, any XML) is handed out as a download, never rendered on S3's origin."""
    return share_files.download_url(share.share_id, file.path,
                                    as_download=uploads.is_active_document(file.content_type))


def _accepts_binary(v: Visit) -> bool:
    taken = accept.accepted(v.accept)
    return "*/*" in taken or bool(taken & {t.lower() for t in v.binary_types})


def _takes_html(v: Visit) -> bool:
    return "text/html" in accept.accepted(v.accept)


def _query_string(v: Visit, drop: str = "") -> str:
    params = {key: value for key, value in v.query.items() if key != drop}
    return "?" + urlencode(params) if params else ""


# --- password-protected shares ---------------------------------------------------------------

def _unlock(settings: Settings, v: Visit, share: Share, path: str,
            access_token: Optional[str]) -> Union[Dict[str, str], Reply]:
    """Extra response headers when the visitor may see the share, else the refusal."""
    if access_token is not None and share_access.unlock_token_valid(settings, share, access_token):
        if _is_top_level_navigation(v):
            return {"Set-Cookie": share_access.unlock_cookie(settings, share, v.base_url)}
        return {}
    # A page opened with ?pw= goes on without it (the cookie carries the proof): the password
    # stays out of the address bar, the history and the address the widget reports.
    in_address = PASSWORD_PARAM in v.query and not v.posted and _is_top_level_navigation(v)
    if any(share_access.unlock_token_valid(settings, share, cookie) for cookie in v.unlock_cookies):
        return _without_password(v, share, path, {}) if in_address else {}
    password = v.read_form_password() if v.posted else v.query.get(PASSWORD_PARAM)
    if password is None:
        return _locked(v, share, path, wrong=False)
    if not share_access.password_matches(settings, share, password, v.client_ip):
        return _locked(v, share, path, wrong=True)
    cookie = {"Set-Cookie": share_access.unlock_cookie(settings, share, v.base_url)}
    if in_address or (v.posted and v.fetch_dest not in ("iframe", "frame")):
        # Post/redirect/get: reloading the page must not re-send the password. A frame gets the
        # page in the answer itself: browsers withhold the Lax cookie from a sandboxed page's
        # frames, so a redirect would land on the form again.
        return _without_password(v, share, path, cookie)
    return cookie


def _without_password(v: Visit, share: Share, path: str, headers: Dict[str, str]) -> Redirect:
    """Back to the same address without the password."""
    address = file_url(v.base_url, share.slug, path + ("/" if path and v.trailing_slash else ""))
    return Redirect(address + _query_string(v, drop=PASSWORD_PARAM), status=303, headers=headers)


def _locked(v: Visit, share: Share, path: str, wrong: bool) -> PasswordRequired:
    as_page = not path or path.lower().endswith((".html", ".htm")) or _takes_html(v)
    return PasswordRequired(slug=share.slug or "", wrong=wrong, as_page=as_page)


def _is_top_level_navigation(v: Visit) -> bool:
    if v.fetch_dest is None:
        # Browsers without Fetch Metadata: treat any request for HTML as a navigation, so a
        # token never ends up in an address bar (an iframe then falls back to the form).
        return _takes_html(v)
    return v.fetch_dest == "document"


def _is_unslashed_root(v: Visit) -> bool:
    return not v.path and not v.trailing_slash


def _is_document_request(v: Visit) -> bool:
    if v.fetch_dest is None:
        return _takes_html(v)
    return v.fetch_dest in DOCUMENT_DESTINATIONS


# --- the share's files -----------------------------------------------------------------------

def served_share(slug: str) -> Share:
    """An active share by slug (any case, as typed in an address bar) or id. Pending shares do
    not exist for viewers; a locked one (protected, and its owner no longer Pro) is unavailable."""
    share = share_store.resolve(slug if share_store.SHARE_ID_PATTERN.match(slug) else slug.lower())
    if share is not None and share.status == share_store.LOCKED:
        raise ShareUnavailable()
    if share is None or share.status != share_store.ACTIVE:
        raise NotFound("Not found")
    return share


def entry_path(share: Share, folder: str = "") -> Optional[str]:
    """What a folder URL serves: its index.html, or for the top folder the only HTML file."""
    files = share.files or {}
    index = f"{folder}/index.html" if folder else "index.html"
    if index in files:
        return index
    if not folder:
        pages = [path for path in files if "/" not in path and path.lower().endswith((".html", ".htm"))]
        if len(pages) == 1:
            return pages[0]
    return None


def file_info(share: Share, path: str) -> ServedFile:
    info = (share.files or {}).get(path)
    if info is None:
        raise NotFound("Not found")
    return ServedFile(path=path, content_type=info["type"], size=int(info["size"]))


def read_file(share_files: ShareFiles, share: Share, path: str) -> ServedFile:
    info = file_info(share, path)
    stored = share_files.read(share.share_id, path)
    if stored is None:
        raise NotFound("Not found")
    return ServedFile(path=path, content_type=info.content_type, size=info.size, body=stored.body, etag=stored.etag)


