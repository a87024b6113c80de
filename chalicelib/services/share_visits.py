"""What a request for a share's page says (``Visit``) and what serving may answer (``Reply``),
with the questions about the request that both the password check (``share_unlock``) and the
page itself (``share_pages``) ask: is it a navigation, does it take HTML."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, FrozenSet, Optional, Tuple, Union
from urllib.parse import urlencode

from chalicelib.services import accept

# Fetch Metadata destinations that put a document (and so a location.href) in a browsing context.
DOCUMENT_DESTINATIONS = {"document", "iframe", "frame", "embed", "object"}


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


def takes_html(v: Visit) -> bool:
    return "text/html" in accept.accepted(v.accept)


def query_string(v: Visit, drop: str = "") -> str:
    params = {key: value for key, value in v.query.items() if key != drop}
    return "?" + urlencode(params) if params else ""


def is_top_level_navigation(v: Visit) -> bool:
    if v.fetch_dest is None:
        # Browsers without Fetch Metadata: treat any request for HTML as a navigation, so a
        # token never ends up in an address bar (an iframe then falls back to the form).
        return takes_html(v)
    return v.fetch_dest == "document"


def is_document_request(v: Visit) -> bool:
    if v.fetch_dest is None:
        return takes_html(v)
    return v.fetch_dest in DOCUMENT_DESTINATIONS


def is_unslashed_root(v: Visit) -> bool:
    return not v.path and not v.trailing_slash
