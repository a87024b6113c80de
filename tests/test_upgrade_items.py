"""Items an earlier version wrote, in the shape it wrote them (raw puts, as read back from a data
folder that version's `make dev` saved), served by this one: a stage or a `.local-data/`
upgraded in place keeps every account, share, spike and session working (docs/deploy.md
"Upgrading")."""
from __future__ import annotations

from datetime import timedelta

from chalicelib import clock
from chalicelib.crypto import token_hash
from chalicelib.store.models import AuthItem, User
from tests.conftest import call

USER_ID = "82f5a5ab-d444-551d-a15f-8d0bf4ff12d8"  # uuid5 of alice@example.com
IDLE_DAYS = 90


def _session_before_idle_expiry(token: str, created_at: float) -> None:
    """A bearer session as versions before idle expiry (e9bc215) stored it: no ``expires_at``,
    no ``session_epoch``."""
    AuthItem(f"bearer#{token_hash(token)}", kind="bearer", label="magic-link", created_at=int(created_at),
             user_id=USER_ID).save()


def _account() -> None:
    """The user item as the first versions wrote it (none of the attributes added since)."""
    User(USER_ID, email="alice@example.com", tier="free", created_at="2026-11-24T10:00:00Z", active_shares=0).save()


def test_a_session_minted_before_idle_expiry_expires_when_idle_too(client, env):
    """Such a session was accepted for good while unused: only a use gave it an expiry, so a
    token left in an old laptop's CLI config worked years later (security finding 187). Its
    last use unknown, it is idle since its creation at the latest; used in time, it gets an
    expiry like any other session and lives on while used."""
    env(SESSION_IDLE_DAYS=str(IDLE_DAYS))
    _account()
    now = clock.epoch()
    _session_before_idle_expiry("old-unused-session", now - (IDLE_DAYS + 1) * 86400)
    _session_before_idle_expiry("old-session-in-use", now - 10 * 86400)

    status, body, _ = call(client, "GET", "/me", token="old-unused-session")
    assert (status, body["code"]) == (401, "AUTH_FAILED")

    status, body, _ = call(client, "GET", "/me", token="old-session-in-use")
    assert (status, body["email"]) == (200, "alice@example.com")
    stored = AuthItem.get(f"bearer#{token_hash('old-session-in-use')}")
    assert stored.expires_at >= now + (IDLE_DAYS - 1) * 86400
    base = clock.now()
    try:
        clock.use(lambda: base + timedelta(days=IDLE_DAYS - 5))  # past creation + idle, used since
        assert call(client, "GET", "/me", token="old-session-in-use")[0] == 200
    finally:
        clock.use(None)
