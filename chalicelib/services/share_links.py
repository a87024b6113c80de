"""The shapes of a share's URLs, built in one place: where a share is served
(``/s/<slug>/``) and the access segment (``~u.<token>``) that carries a protected share's
unlock proof in the path."""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Optional, Tuple
from urllib.parse import quote, unquote, unquote_plus

if TYPE_CHECKING:  # light to import: uploads (and through it serving's routes) read ACCESS_PREFIX
    from chalicelib.store.models import Share

# The query parameter that carries a protected share's password (what the real clients send).
PASSWORD_PARAM = "pw"
# First path segment that carries a protected share's access token: /s/<slug>/~u.<token>/…
ACCESS_PREFIX = "~u."
_URL_PATH = re.compile(r"^(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^/?#]*)?(?P<path>[^?#]*)(?P<tail>.*)$", re.DOTALL)


def share_path(slug: str) -> str:
    """Where a share is served: the one place its path is built."""
    return f"/s/{slug}/"


def file_url(base_url: str, slug: str, path: str = "") -> str:
    """A file or folder (``path`` as stored, decoded) of a share as an address: every segment
    percent-encoded, so a name with ``#``, ``?``, ``%`` or spaces stays one path, and a header
    that carries it (``Location``) stays ASCII, as servers must write it."""
    return base_url + share_path(slug) + quote(path, safe="/")


def share_url(base_url: str, share: Share) -> str:
    """The share's address as the API reports it (the contract's ``url``: no trailing slash)."""
    return base_url + share_path(share.slug).rstrip("/")


def split_access_segment(path: str) -> Tuple[Optional[str], str]:
    """(access token, the rest of the path) when the path starts with an access segment."""
    first, _, rest = path.partition("/")
    if first.startswith(ACCESS_PREFIX):
        return first[len(ACCESS_PREFIX):], rest
    return None, path


def strip_access_segments(url: str) -> str:
    """``url`` without any access-path segment (``~u.<token>``, also percent-encoded): an
    address that unlocks a share must never be stored or shown."""
    if not url or "u." not in unquote(url).lower():
        return url
    match = _URL_PATH.match(url)
    head, path, tail = match.group("head") or "", match.group("path"), match.group("tail")
    kept = [segment for segment in path.split("/") if not unquote(segment).lower().startswith(ACCESS_PREFIX)]
    return head + "/".join(kept) + tail


def strip_password(url: str) -> str:
    """``url`` without a ``pw`` query parameter (the share's password, however spelled): an
    address that unlocks a share must never be stored or shown. Other parameters stay as sent."""
    if not url or "?" not in url:
        return url
    match = _URL_PATH.match(url)
    query, hash_sign, fragment = match.group("tail").partition("#")
    if not query.startswith("?"):
        return url
    kept = [part for part in query[1:].split("&") if unquote_plus(part.partition("=")[0]) != PASSWORD_PARAM]
    return (match.group("head") or "") + match.group("path") + ("?" + "&".join(kept) if kept else "") \
        + hash_sign + fragment
