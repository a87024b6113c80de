"""What a visitor of ``/s/<slug>/...`` is sent: one call, ``visit``, decides it from what the
request says (path, proofs of the password, what the browser accepts) and returns a reply
the HTTP layer only has to shape: a redirect, the password form, or the file (HTML with the
widget injected).

A protected share accepts two proofs of its password (see ``share_access``; whether a
visitor is let in is ``share_unlock``'s): the unlock
cookie, which browsers send on top-level navigations, and an access segment in the path
(``/s/<slug>/~u.<token>/...``), which the page's relative URLs carry through an injected
<base>. The sandboxed page has an opaque origin, so its subresource requests are third-party
and browsers that block third-party cookies would not send the cookie.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Dict, Optional, Union
from urllib.parse import quote

from chalicelib import lambda_answer, web
from chalicelib.errors import NotFound, ShareUnavailable
from chalicelib.services import accept, byte_ranges, entity_tags, share_access, share_html, share_unlock, uploads
from chalicelib.services.share_links import PASSWORD_PARAM, file_url, share_path, split_access_segment
from chalicelib.services.share_visits import (  # noqa: F401 (the HTTP layer reads them here)
    Content, PasswordRequired, Redirect, Reply, Visit, is_document_request,
    is_top_level_navigation, is_unslashed_root, query_string)
from chalicelib.settings import Settings
from chalicelib.store import shares as share_store
from chalicelib.store.files import ShareFiles
from chalicelib.store.models import Share

# /s/<slug> redirects a browser and answers anyone else with the page: caches must tell them apart.
ROOT_VARY = {"Vary": "Sec-Fetch-Dest, Accept"}


@dataclass(frozen=True)
class ServedFile:
    path: str
    content_type: str
    size: int
    body: bytes = b""
    etag: str = ""


def visit(settings: Settings, share_files: ShareFiles, v: Visit) -> Reply:
    if is_unslashed_root(v) and is_document_request(v):
        # Relative links in index.html only resolve under /s/<slug>/: browsers go there. Any
        # other client (the contract's `curl …/s/<slug>`) gets the page here, with a <base>.
        return Redirect(v.base_url + share_path(v.slug) + query_string(v), headers=dict(ROOT_VARY))
    share = served_share(v.slug)
    access_token, path = split_access_segment(v.path)

    extra: Dict[str, str] = {}
    issued: Optional[int] = None  # when a protected share's password was given
    if share.password_hash:
        unlocked = share_unlock.unlock(settings, v, share, path, access_token)
        if not isinstance(unlocked, share_unlock.Unlocked):
            return unlocked
        extra.update(unlocked.headers)
        issued = unlocked.issued
    elif access_token is not None:
        raise NotFound("Not found")

    if not path or v.trailing_slash:
        path = entry_path(share, path.rstrip("/")) or ""
    elif path not in (share.files or {}) and entry_path(share, path):
        return Redirect(file_url(v.base_url, share.slug, path + "/") + query_string(v))
    info = file_info(share, path)
    if access_token is not None and (is_top_level_navigation(v)
                                     or info.content_type == "text/html" and is_document_request(v)):
        # A page or a frame reached under an access path: show the clean URL instead (the widget
        # reports location.href, and GET /spikes?project= shows it). Any file opened in its own
        # tab too (an image, a frame opened in a new tab): its address bar is copied and shared.
        # The cookie, valid for top-level navigations, does the rest; a frame without it asks
        # for the password.
        clean = file_url(v.base_url, share.slug, "" if path == entry_path(share) else path)
        return Redirect(clean + query_string(v), headers=extra)

    if info.size > settings.max_served_file_bytes:
        # Lambda cannot answer with more than 6 MB (uploads refuse documents that large anyway).
        return Redirect(_s3_link(share_files, share, info), headers=extra)
    served = read_file(share_files, share, path)
    return _content(settings, share_files, v, share, served, extra, issued)


def _content(settings: Settings, share_files: ShareFiles, v: Visit, share: Share, served: ServedFile,
             extra: Dict[str, str], issued: Optional[int]) -> Reply:
    scope = "private" if share.password_hash else "public"
    is_html = served.content_type == "text/html"
    headers = {**extra, "Cache-Control": f"no-cache, {scope}" if is_html else f"{scope}, max-age={web.ASSET_MAX_AGE}"}
    if is_unslashed_root(v):
        headers.update(ROOT_VARY)
    if uploads.is_text(served.content_type):
        text = share_html.inflate(served.body, settings.max_served_file_bytes)
        if text is None:  # compressed (.svgz), and more than the function serves
            return Redirect(_s3_link(share_files, share, served), headers=extra)
        body: Union[str, bytes] = _text(settings, v, share, replace(served, body=text), issued)
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


def _text(settings: Settings, v: Visit, share: Share, served: ServedFile, issued: Optional[int]) -> str:
    """A text file as served: HTML with the widget, and the <base> a protected page (its access
    segment renewed from the proof that let the visitor in) or the unslashed root needs."""
    text = share_html.decode_text(served.body)
    if served.content_type != "text/html":
        return text
    text = share_html.inject_widget(text, v.base_url, share.share_id)
    if share.password_hash and issued is not None:
        folder = served.path.rsplit("/", 1)[0] + "/" if "/" in served.path else ""
        return share_html.inject_base(text, share_access.access_root(settings, v.base_url, share, issued)
                                      + quote(folder, safe="/"))
    if is_unslashed_root(v):
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


