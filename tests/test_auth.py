"""Accounts: magic links, verify, recover, rotate, /me, the CLI's polls, device flow."""
from __future__ import annotations

from datetime import timedelta

import pytest

from chalicelib import clock, deps
from chalicelib.crypto import token_hash
from chalicelib.errors import NotFound
from chalicelib.store.models import AuthItem, User
from tests.conftest import ADMIN_TOKEN, call, login_token_from_mail, sent_mails, sign_in


def test_login_sends_a_magic_link_and_verify_creates_a_free_user(client):
    status, body, _ = call(client, "POST", "/auth/login", {"email": "New.User@Example.com"})
    assert status == 200
    assert body["ok"] is True and body["message"] == "Check your email"
    mails = sent_mails("new.user@example.com")
    assert len(mails) == 1 and "/auth/verify?token=" in mails[0]["body"]

    status, body, _ = call(client, "POST", "/auth/verify", {"login_token": login_token_from_mail("new.user@example.com")})
    assert status == 200
    assert body["ok"] is True and body["token"]
    assert body["user"]["email"] == "new.user@example.com" and body["user"]["tier"] == "free"

    status, me, _ = call(client, "GET", "/me", token=body["token"])
    assert status == 200 and me["email"] == "new.user@example.com" and me["tier"] == "free"
    assert me["id"] == body["user"]["id"]


def test_tokens_are_stored_only_as_hashes(client):
    call(client, "POST", "/auth/login", {"email": "h@example.com"})
    login_token = login_token_from_mail("h@example.com")
    _, body, _ = call(client, "POST", "/auth/verify", {"login_token": login_token})
    stored = [item.pk for item in AuthItem.scan()]
    assert f"login#{token_hash(login_token)}" in stored
    assert f"bearer#{token_hash(body['token'])}" in stored
    assert not any(login_token in pk or body["token"] in pk for pk in stored)


def test_second_login_reuses_the_same_account(client):
    first = sign_in(client, "same@example.com")
    second = sign_in(client, "SAME@example.com")
    _, me1, _ = call(client, "GET", "/me", token=first)
    _, me2, _ = call(client, "GET", "/me", token=second)
    assert me1["id"] == me2["id"]


def test_verify_refuses_unknown_reused_and_expired_tokens(client):
    status, body, _ = call(client, "POST", "/auth/verify", {"login_token": "not-a-real-token"})
    assert (status, body["code"]) == (401, "TOKEN_INVALID")
    assert "POST /auth/login" in body["error"]  # each refusal says what to do next

    call(client, "POST", "/auth/login", {"email": "reuse@example.com"})
    token = login_token_from_mail("reuse@example.com")
    assert call(client, "POST", "/auth/verify", {"login_token": token})[0] == 200
    status, body, _ = call(client, "POST", "/auth/verify", {"login_token": token})
    assert (status, body["code"]) == (401, "TOKEN_USED") and "POST /auth/login" in body["error"]

    call(client, "POST", "/auth/login", {"email": "late@example.com"})
    token = login_token_from_mail("late@example.com")
    later = clock.now() + timedelta(seconds=deps.settings().login_token_ttl_seconds + 1)
    try:
        clock.use(lambda: later)
        status, body, _ = call(client, "POST", "/auth/verify", {"login_token": token})
    finally:
        clock.use(None)
    assert (status, body["code"]) == (401, "TOKEN_EXPIRED") and "POST /auth/login" in body["error"]


def test_verify_validates_its_body(client):
    status, body, _ = call(client, "POST", "/auth/verify", {})
    assert status == 400 and body["code"] == "VALIDATION_ERROR"
    assert body["details"][0]["field"] == "login_token" and body["details"][0]["code"] == "MISSING_FIELD"


def test_login_rejects_a_bad_email_with_field_details(client):
    status, body, _ = call(client, "POST", "/auth/login", {"email": "not-an-email"})
    assert status == 400 and body["code"] == "VALIDATION_ERROR" and body["error"] == "Validation failed"
    assert body["details"][0]["field"] == "email"


def test_recover_answers_and_works_the_same_for_known_and_unknown_addresses(backend_client, dynamodb_calls):
    """Neither the answer nor the work behind it (so neither the timing) tells whether an
    address has an account: both read the account, store one link and send one mail."""
    client = backend_client
    sign_in(client, "known@example.com")
    before = len(sent_mails())
    answers, calls = [], []
    for email in ("known@example.com", "nobody@example.com"):
        dynamodb_calls.clear()
        answers.append(call(client, "POST", "/auth/recover", {"email": email})[:2])
        calls.append(dict(dynamodb_calls))
    assert answers[0] == answers[1] == (200, {"ok": True, "message": "Recovery email sent"})
    assert calls[0] == calls[1], calls
    assert len(sent_mails()) == before + 2
    assert sent_mails("known@example.com")[-1]["subject"] == "Recover your Spikes account"
    assert "no account uses this address" in sent_mails("nobody@example.com")[-1]["body"]
    for email in ("known@example.com", "nobody@example.com"):
        status, verified, _ = call(client, "POST", "/auth/verify", {"login_token": login_token_from_mail(email)})
        assert status == 200 and verified["user"]["email"] == email


def test_login_answers_the_same_for_new_and_existing_addresses(client):
    sign_in(client, "exists@example.com")
    existing = call(client, "POST", "/auth/login", {"email": "exists@example.com"})
    fresh = call(client, "POST", "/auth/login", {"email": "fresh@example.com"})
    assert existing[0] == fresh[0] == 200
    assert existing[1].keys() == fresh[1].keys()
    assert existing[1]["message"] == fresh[1]["message"]


def test_me_requires_a_valid_bearer_token(client):
    status, body, _ = call(client, "GET", "/me")
    assert (status, body["code"]) == (401, "AUTH_REQUIRED")
    status, body, _ = call(client, "GET", "/me", token="forged")
    assert (status, body["code"]) == (401, "AUTH_FAILED")


def test_rotate_token_invalidates_the_old_token_at_once(client, user_token):
    status, body, _ = call(client, "POST", "/auth/rotate-token", token=user_token)
    assert status == 200 and body["ok"] is True and body["token"] != user_token
    assert body["user"]["email"] == "owner@example.com"
    assert call(client, "GET", "/me", token=user_token)[1]["code"] == "AUTH_FAILED"
    assert call(client, "GET", "/me", token=body["token"])[0] == 200
    status, again, _ = call(client, "POST", "/auth/rotate-token", token=user_token)
    assert (status, again["code"]) == (401, "AUTH_FAILED")


def test_rotate_token_requires_auth(client):
    status, body, _ = call(client, "POST", "/auth/rotate-token")
    assert (status, body["code"]) == (401, "AUTH_REQUIRED")


def test_login_is_rate_limited_per_address(client):
    for _ in range(5):
        assert call(client, "POST", "/auth/login", {"email": "bomb@example.com"})[0] == 200
    status, body, headers = call(client, "POST", "/auth/login", {"email": "bomb@example.com"})
    assert status == 429 and body["code"] == "RATE_LIMIT" and body["error"] == "Rate limit exceeded"
    assert body["retry_after"] >= 1 and headers["Retry-After"] == str(body["retry_after"])
    assert len(sent_mails("bomb@example.com")) == 5
    assert call(client, "POST", "/auth/login", {"email": "other@example.com"})[0] == 200


def test_login_is_rate_limited_per_client_ip(client, env):
    env(RATE_LOGIN_PER_IP="3")
    for i in range(3):
        assert call(client, "POST", "/auth/login", {"email": f"u{i}@example.com"})[0] == 200
    status, body, _ = call(client, "POST", "/auth/login", {"email": "u9@example.com"})
    assert (status, body["code"]) == (429, "RATE_LIMIT")


def test_cli_email_poll_is_bound_to_the_requesting_client(client):
    from chalicelib import deps
    from chalicelib.services.accounts import Accounts
    status, body, _ = call(client, "POST", "/auth/login", {"email": "cli@example.com"})
    poll_token = body["poll_token"]
    status, pending, _ = call(client, "GET", "/auth/poll?email=cli@example.com")
    assert status == 202 and pending == {"verified": False}

    # Another machine polling the same address learns nothing.
    accounts = Accounts(deps.settings(), deps.mailer(), "http://testserver")
    with pytest.raises(NotFound, match="for this client"):
        accounts.poll_login("cli@example.com", None, "203.0.113.9")

    call(client, "POST", "/auth/verify", {"login_token": login_token_from_mail("cli@example.com"), "approve": True})
    status, done, _ = call(client, "GET", "/auth/poll?email=cli@example.com")
    assert status == 200 and done["verified"] is True and done["token"]
    assert call(client, "GET", "/me", token=done["token"])[1]["email"] == "cli@example.com"
    status, again, _ = call(client, "GET", f"/auth/poll?poll_token={poll_token}")
    assert (status, again["code"]) == (401, "TOKEN_USED")


def test_poll_token_collects_from_anywhere_once(client):
    _, body, _ = call(client, "POST", "/auth/login", {"email": "pt@example.com"})
    call(client, "POST", "/auth/verify", {"login_token": login_token_from_mail("pt@example.com"), "approve": True})
    status, done, _ = call(client, "GET", f"/auth/poll?poll_token={body['poll_token']}")
    assert status == 200 and done["token"]


def test_poll_without_a_login_request_is_not_found(client):
    status, body, _ = call(client, "GET", "/auth/poll?email=ghost@example.com")
    assert (status, body["code"]) == (404, "NOT_FOUND")


def test_device_code_flow(client):
    status, device, _ = call(client, "POST", "/auth/device")
    assert status == 200
    assert set(device) >= {"device_code", "user_code", "verification_url", "expires_in", "interval"}
    status, pending, _ = call(client, "GET", f"/auth/device/poll?device_code={device['device_code']}")
    assert status == 202 and pending["status"] == "pending"

    page = client.http.get(f"/auth/device?code={device['user_code']}")
    assert page.status_code == 200 and device["user_code"].encode() in page.body
    assert page.headers["Content-Type"].startswith("text/html")

    status, _, _ = call(client, "POST", "/auth/device/confirm", {"user_code": device["user_code"],
                                                                  "email": "dev@example.com"})
    assert status == 200
    call(client, "POST", "/auth/verify", {"login_token": login_token_from_mail("dev@example.com"), "approve": True})
    status, done, _ = call(client, "GET", f"/auth/device/poll?device_code={device['device_code']}")
    assert status == 200 and done["status"] == "complete"
    assert call(client, "GET", "/me", token=done["token"])[1]["email"] == "dev@example.com"
    status, again, _ = call(client, "GET", f"/auth/device/poll?device_code={device['device_code']}")
    assert (status, again["code"]) == (401, "TOKEN_USED")


def test_device_confirm_with_unknown_code_is_not_found(client):
    status, body, _ = call(client, "POST", "/auth/device/confirm", {"user_code": "ZZZZ-ZZZZ", "email": "x@example.com"})
    assert (status, body["code"]) == (404, "NOT_FOUND")
    status, body, _ = call(client, "GET", "/auth/device/poll?device_code=nope")
    assert (status, body["code"]) == (401, "TOKEN_INVALID")


def test_device_poll_is_limited_per_client_but_never_a_cli_polling_at_the_interval(client):
    """GET /auth/device/poll was unlimited: any client could hammer it with made-up codes, one
    Lambda run and one DynamoDB read each. It is limited per client network like the e-mail poll,
    above what a CLI asks for when it polls every ``interval`` seconds for the code's whole life."""
    from datetime import datetime, timezone
    start = datetime(2026, 3, 2, 10, 0, 7, tzinfo=timezone.utc)
    clock.use(lambda: start)
    try:
        status, device, _ = call(client, "POST", "/auth/device")
        assert status == 200
        polls = device["expires_in"] // device["interval"]
        for n in range(polls):
            clock.use(lambda n=n: start + timedelta(seconds=n * device["interval"]))
            status, body, headers = call(client, "GET", f"/auth/device/poll?device_code={device['device_code']}")
            assert status == 202, (n, body)
            assert int(headers["X-RateLimit-Remaining"]) > 0
        clock.use(lambda: start + timedelta(hours=1))
        limit = deps.settings().rate_poll_per_minute
        for _ in range(limit):
            assert call(client, "GET", "/auth/device/poll?device_code=made-up")[0] == 401
        status, body, headers = call(client, "GET", "/auth/device/poll?device_code=made-up")
        assert (status, body["code"]) == (429, "RATE_LIMIT")
        assert headers["Retry-After"] == str(body["retry_after"]) and headers["X-RateLimit-Limit"] == str(limit)
    finally:
        clock.use(None)


def test_device_poll_limit_stays_above_a_short_configured_interval(client, env):
    """A server that tells the CLI to poll every second must not refuse it for doing so."""
    env(DEVICE_POLL_INTERVAL_SECONDS="1", RATE_POLL_PER_MINUTE="30")
    from datetime import datetime, timezone
    start = datetime(2026, 3, 2, 10, 0, 7, tzinfo=timezone.utc)
    clock.use(lambda: start)
    try:
        _, device, _ = call(client, "POST", "/auth/device")
        assert device["interval"] == 1
        for n in range(90):
            clock.use(lambda n=n: start + timedelta(seconds=n))
            status, body, _ = call(client, "GET", f"/auth/device/poll?device_code={device['device_code']}")
            assert status == 202, (n, body)
    finally:
        clock.use(None)


def test_verify_page_does_not_consume_the_token(client):
    call(client, "POST", "/auth/login", {"email": "page@example.com"})
    token = login_token_from_mail("page@example.com")
    page = client.http.get(f"/auth/verify?token={token}")
    assert page.status_code == 200 and b"Approve sign-in" in page.body and token.encode() in page.body
    assert call(client, "POST", "/auth/verify", {"login_token": token})[0] == 200


def test_verify_page_escapes_its_input(client):
    page = client.http.get("/auth/verify?token=%22%3E%3Cscript%3Ealert(1)%3C/script%3E")
    assert b"<script>alert(1)" not in page.body


def test_admin_token_is_compared_and_refused_when_wrong(client):
    from chalicelib.services import identity
    assert identity.resolve(None, ADMIN_TOKEN, ADMIN_TOKEN).is_admin
    status, body, _ = call(client, "GET", "/me?token=wrong")
    assert (status, body["code"]) == (401, "AUTH_FAILED")


def test_user_is_created_once_per_address(client):
    sign_in(client, "once@example.com")
    sign_in(client, "once@example.com")
    assert len([u for u in User.scan() if u.email == "once@example.com"]) == 1


def test_me_reports_the_tier_in_force_when_grace_has_lapsed(client, user_token):
    from chalicelib.services.accounts import user_id_for
    user = User.get(user_id_for("owner@example.com"))
    user.update(actions=[User.tier.set("pro"), User.grace_until.set(int(clock.epoch()) + 3600)])
    assert call(client, "GET", "/me", token=user_token)[1]["tier"] == "pro"
    later = clock.now() + timedelta(seconds=3601)
    try:
        clock.use(lambda: later)
        assert call(client, "GET", "/me", token=user_token)[1]["tier"] == "free"
    finally:
        clock.use(None)
