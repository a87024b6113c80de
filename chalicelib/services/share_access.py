"""Who may see a protected share: its password (argon2, rate limited per slug and client
address, and per share over all addresses), and the proofs of it that serving accepts
afterwards: an unlock cookie and an access segment in the path (``/s/<slug>/~u.<token>/``),
both HMACs of (share, password version, when the password was given, expiry). Serving renews
a valid proof, but never past an absolute lifetime counted from when the password was given.
Private shares' feedback is guarded here too."""
from __future__ import annotations

import hmac
import math
import re
from typing import Callable, Optional
from urllib.parse import urlsplit

from chalicelib import clock
from chalicelib.crypto import sign, verify_password, verify_signature
from chalicelib.errors import NotFound
from chalicelib.services import ownership, ratelimit
from chalicelib.services.share_links import ACCESS_PREFIX, share_path
from chalicelib.settings import Settings
from chalicelib.store.models import Share
from chalicelib.store.shares import LOCKED

UNLOCK_COOKIE = "spikes_unlock"
UNLOCK_TTL_SECONDS = 12 * 3600


# Password-protected shares: an argon2 check (rate limited per slug and client address),
# then a signed cookie scoped to the share's path so its assets load without the password.

def password_matches(settings: Settings, share: Share, password: str, client_ip: str) -> bool:
    # Every attempt counts, right or wrong: refusing only after wrong ones would let a
    # guesser tell a right answer by its status code.
    _count_try(settings, share, client_ip)
    return bool(share.password_hash) and verify_password(share.password_hash, password)


def _count_try(settings: Settings, share: Share, client_ip: str) -> None:
    ratelimit.enforce_per_client("share-password", client_ip, settings.rate_password_per_minute, 60, within=share.slug)
    # And every address together: a guesser with many networks gets no more than this per share.
    # Counted only once the address's own limit let the attempt through, so one network uses up
    # at most its own share of it. Everyone's budget: not reported in X-RateLimit-* headers.
    ratelimit.enforce("share-password-all", share.share_id, settings.rate_password_per_share_per_minute, 60,
                      reported=False)


def _out_of_tries(settings: Settings, share: Share, client_ip: str) -> bool:
    """Whether a try now would be refused (reads, no try counted)."""
    return ratelimit.would_refuse("share-password", ratelimit.per_client(client_ip, share.slug),
                                  settings.rate_password_per_minute, 60) or \
        ratelimit.would_refuse("share-password-all", share.share_id, settings.rate_password_per_share_per_minute, 60)


def is_private(share: Share) -> bool:
    """Password-protected (or locked after Pro ended): its pages and its feedback are private."""
    return bool(share.password_hash) or share.status == LOCKED


def require_feedback_access(settings: Settings, share: Share, principal, password: Optional[str],
                            client_ip: str, seal: Optional[str] = None,
                            acts_as_owner: Optional[Callable[[], bool]] = None) -> None:
    """The feedback of a private share: its owner (bearer token or API key with spikes:read;
    ``ownership.may_act_as_owner``, a claim's window included), the admin, or whoever knows the
    password, an owner's key without spikes:read included (docs/security.md 350; with no right
    password it is told the scope it lacks). Everyone else gets the 404 of a share that does not exist, so the answer does not
    confirm that there is feedback to find. ``acts_as_owner``: the request's own
    ``ownership.may_act_as_owner`` for the share's owner, when it has one (its reads made once)."""
    owner = acts_as_owner() if acts_as_owner is not None else ownership.may_act_as_owner(principal, share.owner_id)
    if owner and principal.allows("spikes:read"):
        return
    # An owner's key without spikes:read reads as anyone does (327): the password lets it in too.
    if password is not None and share.status != LOCKED:
        if seal is not None and hmac.compare_digest(seal, password_seal(settings, share, password)):
            # The same password proven before, and not changed since: not a new try, but refused
            # (and counted) as any try while none is left, or a guesser told by the 429s of wrong
            # guesses from the answer to the right one would guess on unlimited (docs/security.md 276).
            if _out_of_tries(settings, share, client_ip):
                _count_try(settings, share, client_ip)
            return
        if password_matches(settings, share, password, client_ip):
            return
    if owner:
        principal.require("spikes:read")  # its own share: the key is told what it lacks (403)
    # Only a private share answers this (an unknown key lists nothing): saying so reveals nothing its page does not.
    raise NotFound("Project not found. A password-protected share's feedback is read with its password "
                   "(X-Share-Password or ?password=), or its owner's token or key")


def password_seal(settings: Settings, share: Share, password: str) -> str:
    """A mark of ``password`` as the share's password at its current version. A reader who proved
    the password once (a background export's start) and gives it again on each later read (its
    polls) is recognised by it without spending a counted try each time, which limited polling to
    five a minute and spent the share's password budget of everyone else (docs/security.md 275).
    It stops matching when the password changes (its version is in it)."""
    return sign(settings.secret_key.get_secret_value(),
                f"feedback-password|{share.share_id}|{int(share.password_version or 0)}|{password}")


def sealed_password(settings: Settings, share: Optional[Share], principal, password: Optional[str]) -> Optional[str]:
    """The seal to keep when ``password`` opened a private share's feedback (None when the share is
    not private, or when ownership did: the password was not what let the reader in)."""
    if share is None or password is None or not is_private(share) or (
            principal is not None and principal.allows("spikes:read")
            and ownership.may_act_as_owner(principal, share.owner_id)):
        return None
    return password_seal(settings, share, password)


def _unlock_message(share: Share, issued: int, expires: int) -> str:
    return f"unlock|{share.share_id}|{int(share.password_version or 0)}|{issued}|{expires}"


def _lifetime_end(settings: Settings, issued: int) -> int:
    return issued + settings.share_unlock_max_hours * 3600


def _expiry(settings: Settings, issued: int, now: float) -> int:
    """When a proof renewed at ``now`` expires: rounded up to the hour (pages served within the
    hour share one token, so the asset URLs that carry it stay cacheable), never past the
    absolute lifetime."""
    return min(math.ceil((now + UNLOCK_TTL_SECONDS) / 3600) * 3600, _lifetime_end(settings, issued))


def unlock_token(settings: Settings, share: Share, issued: int, now: Optional[float] = None) -> str:
    """A proof that the password was given at ``issued``. Renewing one keeps that time, so no
    chain of renewals outlives the absolute lifetime (docs/security.md, 165)."""
    expires = _expiry(settings, issued, clock.epoch() if now is None else now)
    signature = sign(settings.secret_key.get_secret_value(), _unlock_message(share, issued, expires))
    return f"{issued}.{expires}.{signature}"


_EPOCH = re.compile(r"[0-9]{1,12}")


def proof_issued(settings: Settings, share: Share, token: Optional[str], now: Optional[float] = None) -> Optional[int]:
    """When the password behind ``token`` was given, if it is a valid proof: for this share and
    its current password version, before its expiry and within the absolute lifetime (the
    current setting: lowering it shortens proofs already out). Otherwise None. A proof of the
    earlier ``<expires>.<signature>`` shape, which carried no such time, is refused."""
    parts = (token or "").split(".", 2)
    # ASCII digits only: str.isdigit() accepts '²', which int() refuses.
    if len(parts) != 3 or not all(_EPOCH.fullmatch(part) for part in parts[:2]) or not parts[2]:
        return None
    issued, expires = int(parts[0]), int(parts[1])
    moment = clock.epoch() if now is None else now
    if expires < moment or _lifetime_end(settings, issued) <= moment:
        return None
    if not verify_signature(settings.secret_key.get_secret_value(), _unlock_message(share, issued, expires), parts[2]):
        return None
    return issued


def access_root(settings: Settings, base_url: str, share: Share, issued: int) -> str:
    """The share's root under a renewed access segment: what a protected page's <base> points at."""
    return f"{base_url}{share_path(share.slug)}{ACCESS_PREFIX}{unlock_token(settings, share, issued)}/"


def unlock_cookie(settings: Settings, share: Share, base_url: str, issued: int) -> str:
    """The Set-Cookie value of a renewed unlock proof (the password given at ``issued``). Scoped
    to this share's path; Lax is enough: only top-level navigations rely on it. It lives as long
    as the proof it carries."""
    now = clock.epoch()
    token = unlock_token(settings, share, issued, now)
    max_age = max(1, _expiry(settings, issued, now) - int(now))
    cookie_path = urlsplit(base_url).path + share_path(share.slug)
    secure = "; Secure" if base_url.startswith("https://") else ""
    return (f"{UNLOCK_COOKIE}={token}; Path={cookie_path}; "
            f"Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}")
