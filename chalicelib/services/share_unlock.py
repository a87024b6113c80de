"""Whether a visitor of a password-protected share may see it: a valid proof (the access
segment of the path, or an unlock cookie) or the password itself (``?pw=`` or the form), and
the proofs the answer renews. A renewed proof keeps the time the password was given, so no
use of a proof, however frequent, outlives the absolute lifetime (docs/security.md, 165)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional, Union

from chalicelib import clock
from chalicelib.services import share_access
from chalicelib.services.share_links import PASSWORD_PARAM, file_url
from chalicelib.services.share_visits import (PasswordRequired, Redirect, Reply, Visit, is_top_level_navigation,
                                              query_string, takes_html)
from chalicelib.settings import Settings
from chalicelib.store.models import Share


@dataclass(frozen=True)
class Unlocked:
    """The visitor may see the share: since when (the password was given), and the extra
    response headers (a renewed cookie)."""
    issued: int
    headers: Dict[str, str] = field(default_factory=dict)


def unlock(settings: Settings, v: Visit, share: Share, path: str,
           access_token: Optional[str]) -> Union[Unlocked, Reply]:
    """What lets the visitor in, else the refusal (the password form, or a redirect)."""
    issued = share_access.proof_issued(settings, share, access_token) if access_token is not None else None
    if issued is not None:
        if is_top_level_navigation(v):
            return Unlocked(issued, {"Set-Cookie": share_access.unlock_cookie(settings, share, v.base_url, issued)})
        return Unlocked(issued)
    # A page opened with ?pw= goes on without it (the cookie carries the proof): the password
    # stays out of the address bar, the history and the address the widget reports.
    in_address = PASSWORD_PARAM in v.query and not v.posted and is_top_level_navigation(v)
    from_cookies = [share_access.proof_issued(settings, share, cookie) for cookie in v.unlock_cookies]
    if any(found is not None for found in from_cookies):
        # Any valid one will do (a planted cookie may come first: 158); the latest given lasts longest.
        issued = max(found for found in from_cookies if found is not None)
        return _without_password(v, share, path, {}) if in_address else Unlocked(issued)
    password = v.read_form_password() if v.posted else v.query.get(PASSWORD_PARAM)
    if password is None:
        return _locked(v, share, path, wrong=False)
    if not share_access.password_matches(settings, share, password, v.client_ip):
        return _locked(v, share, path, wrong=True)
    issued = int(clock.epoch())
    cookie = {"Set-Cookie": share_access.unlock_cookie(settings, share, v.base_url, issued)}
    if in_address or (v.posted and v.fetch_dest not in ("iframe", "frame")):
        # Post/redirect/get: reloading the page must not re-send the password. A frame gets the
        # page in the answer itself: browsers withhold the Lax cookie from a sandboxed page's
        # frames, so a redirect would land on the form again.
        return _without_password(v, share, path, cookie)
    return Unlocked(issued, cookie)


def _without_password(v: Visit, share: Share, path: str, headers: Dict[str, str]) -> Redirect:
    """Back to the same address without the password."""
    address = file_url(v.base_url, share.slug, path + ("/" if path and v.trailing_slash else ""))
    return Redirect(address + query_string(v, drop=PASSWORD_PARAM), status=303, headers=headers)


def _locked(v: Visit, share: Share, path: str, wrong: bool) -> PasswordRequired:
    as_page = not path or path.lower().endswith((".html", ".htm")) or takes_html(v)
    return PasswordRequired(slug=share.slug or "", wrong=wrong, as_page=as_page)
