"""Sign-in hardening (docs/security.md, 240-245): a session's absolute lifetime, the limit on
``POST /auth/verify`` and the installation's budget of sign-in mails."""
from __future__ import annotations

from datetime import timedelta

from chalicelib import clock
from chalicelib.crypto import token_hash
from chalicelib.store import auth as auth_store
from chalicelib.store.models import AuthItem, User
from tests.conftest import call, login_token_from_mail, sign_in

DAY = 86400


def _at(base, days: float) -> None:
    clock.use(lambda: base + timedelta(days=days))


def test_a_session_in_continuous_use_ends_its_lifetime_after_sign_in(client, env):
    """Sessions expired only when idle: one used every few days (a stolen token an attacker keeps
    using) lived for ever. It now ends SPIKES_SESSION_MAX_DAYS after its sign-in, and a rotation
    does not start a new lifetime (security finding 240)."""
    env(SESSION_MAX_DAYS="30")
    token = sign_in(client, "daily@example.com")
    base = clock.now()
    try:
        for days in (5, 12, 19):
            _at(base, days)
            assert call(client, "GET", "/me", token=token)[0] == 200, days
        _at(base, 20)
        status, rotated, _ = call(client, "POST", "/auth/rotate-token", token=token)
        assert status == 200, rotated
        _at(base, 29.9)
        assert call(client, "GET", "/me", token=rotated["token"])[0] == 200
        assert auth_store.session(token_hash(rotated["token"])).expires_at <= clock.epoch() + 0.1 * DAY + 1
        _at(base, 30.01)
        status, body, _ = call(client, "GET", "/me", token=rotated["token"])
        assert (status, body["code"]) == (401, "AUTH_FAILED")
        assert "30 days" in body["error"] and "sign in again" in body["error"]
    finally:
        clock.use(None)


def test_a_session_an_earlier_version_minted_ends_its_lifetime_after_its_creation(client, env):
    """Sessions stored before ``signed_in_at`` count from their ``created_at``: one in use since
    long before the upgrade is refused at once, a younger one is given its end as its expiry (the
    TTL then deletes it) with no upgrade step."""
    env(SESSION_MAX_DAYS="30")
    user_id = "82f5a5ab-d444-551d-a15f-8d0bf4ff12d8"
    User(user_id, email="alice@example.com", tier="free", created_at="2026-11-24T10:00:00Z", active_shares=0,
         session_epoch=0).save()
    now = int(clock.epoch())
    for name, age_days in (("old-in-use", 40), ("young", 10)):  # both used yesterday: idle expiry far off
        AuthItem(f"bearer#{token_hash(name)}", kind="bearer", label="magic-link", created_at=now - age_days * DAY,
                 user_id=user_id, session_epoch=0, expires_at=now + 89 * DAY).save()
    status, body, _ = call(client, "GET", "/me", token="old-in-use")
    assert (status, body["code"]) == (401, "AUTH_FAILED")
    assert call(client, "GET", "/me", token="young")[0] == 200
    assert AuthItem.get(f"bearer#{token_hash('young')}").expires_at == now - 10 * DAY + 30 * DAY


def test_sign_in_links_are_opened_and_exchanged_a_limited_number_of_times_per_network(client, env, from_network):
    """GET and POST /auth/verify were not limited: every request, guesses included, cost reads of
    the auth table, without end. They now share a per-network limit answered like every other
    auth route's (security finding 241). A person who opens their link twice, whose mail scanner
    fetched it first from its own network, and who then approves it, is not refused."""
    env(RATE_VERIFY_PER_MINUTE="5")
    from_network("198.51.100.7")
    for malformed in ({}, {"login_token": 5}, {"login_token": "x", "approve": "perhaps"}):  # refused before counted
        status, body, headers = call(client, "POST", "/auth/verify", malformed)
        assert (status, body["code"]) == (400, "VALIDATION_ERROR") and "X-RateLimit-Limit" not in headers, body
    for n in range(5):
        status, body, headers = call(client, "POST", "/auth/verify", {"login_token": f"guess-{n}"})
        assert (status, body["code"]) == (401, "TOKEN_INVALID")
        assert headers["X-RateLimit-Limit"] == "5" and headers["X-RateLimit-Remaining"] == str(4 - n)
    status, body, headers = call(client, "POST", "/auth/verify", {"login_token": "guess-5"})
    assert (status, body["code"]) == (429, "RATE_LIMIT") and body["retry_after"] >= 1
    assert headers["Retry-After"] == str(body["retry_after"]) and headers["X-RateLimit-Remaining"] == "0"
    page = client.http.get("/auth/verify?token=guess-6")  # the page counts too, and tells a person to wait
    assert page.status_code == 429 and page.headers["Content-Type"].startswith("text/html")
    assert b"reload this page" in page.body and int(page.headers["Retry-After"]) >= 1

    from_network("203.0.113.9")  # the person, on their own network
    assert call(client, "POST", "/auth/recover", {"email": "person@example.com"})[0] == 200
    link = login_token_from_mail("person@example.com")
    from_network("192.0.2.200")  # their mail provider's scanner
    assert call(client, "GET", f"/auth/verify?token={link}")[0] == 200
    from_network("203.0.113.9")
    assert [call(client, "GET", f"/auth/verify?token={link}")[0] for _ in range(2)] == [200, 200]
    status, body, _ = call(client, "POST", "/auth/verify", {"login_token": link})
    assert status == 200 and body["token"]


def test_sign_in_mails_from_everywhere_together_are_limited_per_hour(client, env, from_network):
    """Sign-in mails were limited per mailbox and per client network only: a client with many
    networks, asking for many addresses, made SES send without end (its cost, and the bounces and
    complaints that get the account's sending suspended, every mail of the installation with it).
    They are now limited from everywhere together too (security finding 242), after the mailbox's
    and the client's own limits, so a request those refuse takes none of everyone's budget."""
    from tests.conftest import sent_mails
    env(RATE_SIGN_IN_MAILS_PER_HOUR="3", RATE_LOGIN_PER_IP="1")
    from_network("198.51.100.1")
    assert call(client, "POST", "/auth/login", {"email": "a@example.com"})[0] == 200
    assert call(client, "POST", "/auth/login", {"email": "b@example.com"})[0] == 429  # its own limit
    for n, path in ((2, "/auth/recover"), (3, "/auth/login")):
        from_network(f"198.51.100.{n}")
        status, body, headers = call(client, "POST", path, {"email": f"user{n}@example.com"})
        assert status == 200, body
        assert "X-RateLimit-Limit" not in headers or headers["X-RateLimit-Limit"] != "3"  # others' use untold
    for n, path in ((4, "/auth/login"), (5, "/auth/recover")):
        from_network(f"198.51.100.{n}")
        status, body, headers = call(client, "POST", path, {"email": "late@example.com"})
        assert (status, body["code"]) == (429, "RATE_LIMIT"), body
        assert "sign-in mails" in body["error"] and headers["Retry-After"] == str(body["retry_after"])
    assert sent_mails("late@example.com") == [] and len(sent_mails()) == 3


def test_a_device_confirmation_naming_an_unknown_code_spends_no_sign_in_mail_budget(client, env, from_network):
    """`POST /auth/device/confirm` counted everyone's sign-in mail budget (242) before it looked
    the device code up, so a mistyped or guessed code used it up though no mail went out. The
    caller's own limits still count first (they bound guessing codes); everyone's budget is
    spent only when a mail is about to be sent."""
    from tests.conftest import sent_mails
    env(RATE_SIGN_IN_MAILS_PER_HOUR="2")
    for n in range(4):
        from_network(f"198.51.100.{10 + n}")
        status, body, _ = call(client, "POST", "/auth/device/confirm",
                               {"user_code": "BCDF-GHJK", "email": f"typo{n}@example.com"})
        assert (status, body["code"]) == (404, "NOT_FOUND"), body
    from_network("198.51.100.20")
    for n in range(2):
        device = call(client, "POST", "/auth/device")[1]
        status, body, _ = call(client, "POST", "/auth/device/confirm",
                               {"user_code": device["user_code"], "email": f"real{n}@example.com"})
        assert status == 200, body
    device = call(client, "POST", "/auth/device")[1]
    status, body, _ = call(client, "POST", "/auth/device/confirm",
                           {"user_code": device["user_code"], "email": "third@example.com"})
    assert (status, body["code"]) == (429, "RATE_LIMIT") and "sign-in mails" in body["error"]
    assert len(sent_mails()) == 2
    from_network("198.51.100.21")
    assert call(client, "POST", "/auth/login", {"email": "late@example.com"})[0] == 429
