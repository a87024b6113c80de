"""Bearer session tokens (what magic links, the CLI's polls and rotation hand out): the one
place that mints, checks, refreshes and revokes them. API keys live in ``apikeys``.

A session is an ``AuthItem`` ``bearer#<sha256(token)>`` (the token itself is never stored)
holding its user, the user's ``session_epoch`` when it was minted and ``expires_at``, its idle
expiry (also the table's TTL attribute). Using a session pushes its expiry out again, written
at most once per ``REFRESH_INTERVAL_SECONDS`` per session rather than on every request.
"Sign out everywhere" bumps the user's ``session_epoch``: one atomic write voids every session
minted before it, however many there are, without finding them.
"""
from __future__ import annotations

from typing import Optional, Tuple

from pynamodb.exceptions import UpdateError

from chalicelib import clock
from chalicelib.crypto import new_token, token_hash
from chalicelib.errors import AuthFailed
from chalicelib.logs import get_logger
from chalicelib.settings import Settings
from chalicelib.store.models import AuthItem, User
from chalicelib.store.transactions import Transaction

log = get_logger("spikes.sessions")

REFRESH_INTERVAL_SECONDS = 24 * 3600


def _pk(hashed: str) -> str:
    return f"bearer#{hashed}"


def idle_seconds(settings: Settings) -> int:
    return settings.session_idle_days * 24 * 3600


def current_epoch(user_id: str) -> int:
    try:
        return int(User.get(user_id, consistent_read=True, attributes_to_get=["session_epoch"]).session_epoch or 0)
    except User.DoesNotExist:
        return 0


def mint(tx: Transaction, settings: Settings, user_id: str, label: str, epoch: Optional[int] = None) -> str:
    """Add a new session for ``user_id`` to ``tx``; returns the token (shown once)."""
    token = new_token()
    now = int(clock.epoch())
    tx.save("bearer", AuthItem(_pk(token_hash(token)), kind="bearer", user_id=user_id, label=label, created_at=now,
                               expires_at=now + idle_seconds(settings),
                               session_epoch=current_epoch(user_id) if epoch is None else epoch),
            condition=AuthItem.pk.does_not_exist())
    return token


def authenticate(token: str, settings: Settings) -> Tuple[User, str]:
    """The user a session token belongs to and the token's hash; AuthFailed when it is unknown,
    revoked, idle for too long or from before the user's last "sign out everywhere"."""
    hashed = token_hash(token)
    try:
        item = AuthItem.get(_pk(hashed))
    except AuthItem.DoesNotExist:
        raise AuthFailed() from None
    now = clock.epoch()
    # The TTL deletes expired items lazily (within days): check the expiry ourselves.
    if item.kind != "bearer" or (item.expires_at is not None and item.expires_at <= now):
        raise AuthFailed("This session has expired; sign in again") from None
    try:
        user = User.get(item.user_id)
    except User.DoesNotExist:
        raise AuthFailed() from None
    if int(item.session_epoch or 0) != int(user.session_epoch or 0):
        raise AuthFailed("This session was signed out; sign in again")
    idle = idle_seconds(settings)
    if item.expires_at is None or item.expires_at < now + idle - REFRESH_INTERVAL_SECONDS:
        try:
            item.update(actions=[AuthItem.expires_at.set(int(now) + idle)], condition=AuthItem.pk.exists())
        except UpdateError as exc:  # revoked between the read and the write
            if exc.cause_response_code == "ConditionalCheckFailedException":
                raise AuthFailed() from None
            raise
    return user, hashed


def revoke(token_hash_: str) -> None:
    """Sign out one session (idempotent)."""
    AuthItem(_pk(token_hash_)).delete()


def revoke_all(user: User) -> None:
    """Sign out every session of ``user``: one atomic increment."""
    user.update(actions=[User.session_epoch.add(1)])
    log.info("sessions.revoked_all", user_id=user.user_id)


def replace(tx: Transaction, settings: Settings, user: User, old_hash: str, label: str) -> str:
    """Rotation: delete the presented session and mint its successor in ``tx``."""
    tx.delete("old-bearer", AuthItem(_pk(old_hash)), condition=AuthItem.pk.exists())
    return mint(tx, settings, user.user_id, label, epoch=int(user.session_epoch or 0))
