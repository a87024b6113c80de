"""Bearer session tokens (what magic links, the CLI's polls and rotation hand out): the one
place that mints, checks, refreshes and revokes them. API keys live in ``apikeys``.

A session is stored under the hash of its token (``store/auth.py``; the token itself is never
stored), holding its user, the user's ``session_epoch`` when it was minted and its idle expiry.
Using a session pushes its expiry out again, written at most once per
``REFRESH_INTERVAL_SECONDS`` per session rather than on every request. "Sign out everywhere"
bumps the user's ``session_epoch``: one atomic write voids every session minted before it,
however many there are, without finding them. However much it is used, a session ends
``SPIKES_SESSION_MAX_DAYS`` after its person signed in (``signed_in_at``, kept by a rotation):
a stolen token does not live for ever by being used (docs/security.md, 240).
"""
from __future__ import annotations

from typing import Optional, Tuple

from chalicelib import clock
from chalicelib.crypto import new_token, token_hash
from chalicelib.errors import AuthFailed
from chalicelib.logs import get_logger
from chalicelib.settings import Settings
from chalicelib.store import accounts
from chalicelib.store import auth as auth_store
from chalicelib.store.auth import NewSession
from chalicelib.store.models import AuthItem, User

log = get_logger("spikes.sessions")

REFRESH_INTERVAL_SECONDS = 24 * 3600


def idle_seconds(settings: Settings) -> int:
    return settings.session_idle_days * 24 * 3600


def lifetime_seconds(settings: Settings) -> int:
    return settings.session_max_days * 24 * 3600


def new(settings: Settings, user_id: str, label: str, epoch: Optional[int] = None,
        signed_in_at: Optional[int] = None) -> NewSession:
    """A session for ``user_id``, to be stored with the step that grants it (its token is shown
    once). Valid under the user's current ``session_epoch`` unless ``epoch`` is given; signed in
    now unless ``signed_in_at`` (a rotation's predecessor's) is given."""
    now = int(clock.epoch())
    signed_in = now if signed_in_at is None else signed_in_at
    return NewSession(token=new_token(), user_id=user_id, label=label, created_at=now, signed_in_at=signed_in,
                      expires_at=min(now + idle_seconds(settings), signed_in + lifetime_seconds(settings)),
                      epoch=accounts.session_epoch(user_id) if epoch is None else epoch)


def signed_in(item: AuthItem) -> int:
    """When the session's person signed in. One minted before ``signed_in_at`` was stored counts
    from its ``created_at``: its sign-in, or its last rotation (no older time is known), so an
    upgrade needs no step and no scan (docs/security.md, 240)."""
    return int(item.signed_in_at if item.signed_in_at is not None else item.created_at or 0)


def idle_expiry(item: AuthItem, idle: int) -> float:
    """When the session expires unless used. One minted by a version before idle expiry has no
    ``expires_at`` (and no TTL): its last use is unknown, so idle since its creation at the
    latest; its first use since then gives it an expiry like any other's (docs/security.md 187)."""
    return item.expires_at if item.expires_at is not None else int(item.created_at or 0) + idle


def authenticate(token: str, settings: Settings) -> Tuple[User, str]:
    """The user a session token belongs to and the token's hash; AuthFailed when it is unknown,
    revoked, past its lifetime, idle for too long or from before the user's last "sign out
    everywhere"."""
    hashed = token_hash(token)
    item = auth_store.session(hashed)
    if item is None:
        raise AuthFailed()
    now = clock.epoch()
    idle = idle_seconds(settings)
    # The TTL deletes expired items lazily (within days): check the expiry ourselves.
    if item.kind != "bearer":
        raise AuthFailed()
    # The lifetime first: a session's expiry is never past its end, and its end says why.
    ends_at = signed_in(item) + lifetime_seconds(settings)
    if ends_at <= now:
        raise AuthFailed(f"This session has ended: sessions last {settings.session_max_days} days "
                         "after signing in, however much they are used; sign in again")
    if idle_expiry(item, idle) <= now:
        raise AuthFailed("This session has expired; sign in again")
    user = accounts.get(item.user_id, consistent=True)  # "sign out everywhere" applies at once too
    if user is None:
        raise AuthFailed()
    if int(item.session_epoch or 0) != int(user.session_epoch or 0):
        raise AuthFailed("This session was signed out; sign in again")
    # At most once a day, and at least twice per idle period: with SPIKES_SESSION_IDLE_DAYS=1 a
    # day's wait never came before the expiry, and a session in use died a day after sign-in.
    # Never past the lifetime's end: an earlier version's expiry beyond it is brought back once,
    # so the TTL deletes the item when it ends.
    expiry = min(int(now) + idle, ends_at)
    stored = item.expires_at
    if stored is None or stored > ends_at or expiry - stored > min(REFRESH_INTERVAL_SECONDS, idle // 2):
        if not auth_store.extend_session(item, expiry, ends_at):  # revoked between the read and the write
            raise AuthFailed()
    return user, hashed


def revoke(token_hash_: str) -> None:
    """Sign out one session (idempotent)."""
    auth_store.delete_session(token_hash_)


def revoke_all(user: User) -> None:
    """Sign out every session of ``user``: one atomic increment."""
    accounts.bump_session_epoch(user)
    log.info("sessions.revoked_all", user_id=user.user_id)


def rotate(settings: Settings, user: User, old_hash: str, label: str) -> str:
    """Replace the presented session with a new one (its token returned); AuthFailed when it
    was already rotated or revoked."""
    presented = auth_store.session(old_hash)
    if presented is None:
        raise AuthFailed("This token was already rotated or revoked")
    # The successor ends when the presented session would: rotating is no way to live for ever.
    successor = new(settings, user.user_id, label, epoch=int(user.session_epoch or 0),
                    signed_in_at=signed_in(presented))
    try:
        auth_store.replace_session(old_hash, successor)
    except auth_store.Spent:
        raise AuthFailed("This token was already rotated or revoked") from None
    return successor.token
