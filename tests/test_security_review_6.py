"""The sixth review (docs/security.md, "The sixth review"): sign-in links, the CLI's polls,
sessions and API keys, as an attacker. Each test failed before its fix. On moto and on
DynamoDB Local where a condition in the store decides."""
from __future__ import annotations

from datetime import timedelta
from typing import Iterator

import pytest

from chalicelib import clock, deps
from chalicelib.store.models import AuthItem
from tests.conftest import call, login_token_from_mail


# --- An approved sign-in that nobody collected in time is not handed out later ----------------

@pytest.fixture
def later() -> Iterator:
    """Move the clock ``seconds`` ahead for the rest of the test."""
    def move(seconds: int) -> None:
        moment = clock.now() + timedelta(seconds=seconds)
        clock.use(lambda: moment)
    yield move
    clock.use(None)


def _bearer_items() -> int:
    return sum(1 for item in AuthItem.scan() if item.kind == "bearer")


def _approve(client, email: str, device: bool = False) -> dict:
    """A sign-in (the CLI's e-mail login, or a device) approved by the mailbox owner; what
    starting it answered."""
    if device:
        _, started, _ = call(client, "POST", "/auth/device")
        call(client, "POST", "/auth/device/confirm", {"user_code": started["user_code"], "email": email})
    else:
        _, started, _ = call(client, "POST", "/auth/login", {"email": email})
    status, _, _ = call(client, "POST", "/auth/verify", {"login_token": login_token_from_mail(email), "approve": True})
    assert status == 200
    return started


def test_an_approved_cli_sign_in_is_not_collected_after_it_expired(backend_client, later):
    """The CLI polls for 5 minutes; a person who approves later (the link is valid for 15)
    leaves an approved sign-in nobody collected. Once it expired, polling with the address
    from the same network (an office NAT, a cafe) or with the poll token gets nothing, not a
    session, however long TTL takes to delete the item."""
    client = backend_client
    started = _approve(client, "late-cli@example.com")
    sessions_before = _bearer_items()
    later(deps.settings().login_token_ttl_seconds + 60)
    for poll in ("email=late-cli@example.com", f"poll_token={started['poll_token']}"):
        status, body, _ = call(client, "GET", f"/auth/poll?{poll}")
        assert (status, body["code"]) == (401, "TOKEN_EXPIRED"), body
    assert _bearer_items() == sessions_before


def test_an_approved_device_is_not_collected_after_its_code_expired(backend_client, later):
    client = backend_client
    device = _approve(client, "late-dev@example.com", device=True)
    sessions_before = _bearer_items()
    later(deps.settings().device_code_ttl_seconds + 60)
    status, body, _ = call(client, "GET", f"/auth/device/poll?device_code={device['device_code']}")
    assert (status, body["code"]) == (401, "TOKEN_EXPIRED"), body
    assert _bearer_items() == sessions_before


def test_a_sign_in_expiring_between_the_read_and_the_write_hands_out_nothing(backend_client, later):
    """The store's condition, not only the service's check: the item as read was live."""
    from chalicelib.services import sessions
    from chalicelib.store import auth as auth_store
    device = _approve(backend_client, "race@example.com", device=True)
    item = auth_store.device(device["device_code"])
    later(deps.settings().device_code_ttl_seconds + 1)
    session = sessions.new(deps.settings(), item.verified_user_id, "cli-device")
    with pytest.raises(auth_store.Spent):
        auth_store.collect(item, int(clock.epoch()), session)


@pytest.mark.parametrize("device", [False, True], ids=["cli-email", "device"])
def test_signing_out_everywhere_voids_an_approved_sign_in_not_collected_yet(backend_client, device):
    """A person approves a sign-in, then (it was not their program, or they changed their mind)
    signs out everywhere before the program polls: the program gets nothing, as every session
    minted before is void. A sign-in approved after the sign-out is collected as usual."""
    client = backend_client
    email = "everywhere@example.com"
    if device:
        _, started, _ = call(client, "POST", "/auth/device")
        call(client, "POST", "/auth/device/confirm", {"user_code": started["user_code"], "email": email})
        poll = f"/auth/device/poll?device_code={started['device_code']}"
    else:
        _, started, _ = call(client, "POST", "/auth/login", {"email": email})
        poll = f"/auth/poll?poll_token={started['poll_token']}"
    status, opened, _ = call(client, "POST", "/auth/verify",
                             {"login_token": login_token_from_mail(email), "approve": True})
    assert status == 200
    assert call(client, "POST", "/auth/logout", {"everywhere": True}, token=opened["token"])[0] == 200
    sessions_before = _bearer_items()
    status, body, _ = call(client, "GET", poll)
    assert (status, body["code"]) == (401, "TOKEN_EXPIRED"), body
    assert _bearer_items() == sessions_before

    if not device:
        _approve(client, email)  # approved under the new epoch: collected, and it works
        status, body, _ = call(client, "GET", "/auth/poll?email=" + email)
        assert status == 200 and call(client, "GET", "/me", token=body["token"])[0] == 200, body


def test_a_sign_out_landing_after_the_check_still_voids_the_collected_session(backend_client, monkeypatch):
    """The poll read the epoch before the sign-out landed: the session it hands out is minted
    under the approval's epoch, so it is void the moment it is used."""
    from chalicelib.services import accounts as account_service
    client = backend_client
    email = "race-out@example.com"
    _, started, _ = call(client, "POST", "/auth/login", {"email": email})
    status, opened, _ = call(client, "POST", "/auth/verify",
                             {"login_token": login_token_from_mail(email), "approve": True})
    epoch_at_approval = account_service.account_store.session_epoch(opened["user"]["id"])
    assert call(client, "POST", "/auth/logout", {"everywhere": True}, token=opened["token"])[0] == 200
    monkeypatch.setattr(account_service.account_store, "session_epoch", lambda user_id: epoch_at_approval)
    status, body, _ = call(client, "GET", f"/auth/poll?poll_token={started['poll_token']}")
    assert status == 200, body
    monkeypatch.undo()
    status, answer, _ = call(client, "GET", "/me", token=body["token"])
    assert status == 401, answer


# --- A leaked key cannot mint keys without end --------------------------------------------------

def _create(client, credential: str, name: str):
    return call(client, "POST", "/auth/api-key", {"name": name}, token=credential)


def test_an_account_holds_a_bounded_number_of_live_keys(backend_client, env):
    """A ``full`` key (what signup and a bare ``create-key`` hand out) holds ``keys:manage``. Had
    it leaked, its holder could mint keys without end, each able to mint more: revoking the
    leaked key then walks a tree too large for one request (the tail stays valid) and
    ``GET /auth/api-keys`` passes Lambda's 6 MB. Live keys are capped per account, the owner's
    own and the ones keys made alike; a revoked key frees its place."""
    client = backend_client
    env(MAX_API_KEYS="3")
    from tests.conftest import sign_in
    session = sign_in(client, "keys-cap@example.com")
    status, first, _ = _create(client, session, "first")
    assert status == 201
    assert _create(client, first["api_key"], "made-1")[0] == 201
    assert _create(client, first["api_key"], "made-2")[0] == 201
    status, body, _ = _create(client, first["api_key"], "made-3")
    assert (status, body["code"]) == (429, "KEY_LIMIT"), body
    assert body["limit"] == 3
    status, body, _ = _create(client, session, "owner's own")
    assert (status, body["code"]) == (429, "KEY_LIMIT"), body
    assert len(call(client, "GET", "/auth/api-keys", token=session)[1]) == 3

    status, _, _ = call(client, "DELETE", f"/auth/api-key/{first['key_id']}", token=session)  # and what it made
    assert status == 200
    assert _create(client, session, "after revoking")[0] == 201


def test_an_expired_key_frees_its_place(backend_client, env, later):
    client = backend_client
    env(MAX_API_KEYS="1")
    from tests.conftest import sign_in
    session = sign_in(client, "keys-expiry@example.com")
    soon = (clock.now() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    status, _, _ = call(client, "POST", "/auth/api-key", {"name": "short", "expires_at": soon}, token=session)
    assert status == 201
    assert _create(client, session, "second")[1]["code"] == "KEY_LIMIT"
    later(2 * 3600)
    status, _, _ = call(client, "POST", "/auth/api-key", {"name": "second"}, token=session)
    assert status == 201


def test_key_creation_is_rate_limited_per_account(client, env):
    """Revoking keys frees places; creating them is also limited in time, per account whatever
    the credential, so a leaked key cannot churn through keys either."""
    env(RATE_KEYS_PER_HOUR="3")
    from tests.conftest import sign_in
    session = sign_in(client, "keys-rate@example.com")
    status, key, _ = _create(client, session, "one")
    assert status == 201
    assert _create(client, session, "two")[0] == 201
    assert _create(client, key["api_key"], "three")[0] == 201
    status, body, headers = _create(client, key["api_key"], "four")
    assert (status, body["code"]) == (429, "RATE_LIMIT"), body
    assert int(headers["Retry-After"]) > 0
    other = sign_in(client, "someone-else@example.com")
    assert _create(client, other, "theirs")[0] == 201


def test_revoking_a_key_does_not_read_its_revoked_descendants_again(backend_client, dynamodb_calls):
    """Within the limits a leaked key's holder can still churn: make keys, revoke them, make
    more, leaving its live ones last in the tree. Revoking the leaked key read every
    descendant twice, revoked or not, and so ran out of time before the live ones. A key the
    owner index shows revoked made all it ever will (it made nothing after its revocation), so
    it costs no read; only live keys, and keys not listed yet, are read and revoked."""
    client = backend_client
    from tests.conftest import sign_in
    session = sign_in(client, "churn@example.com")
    leaked = _create(client, session, "leaked")[1]
    made = [_create(client, leaked["api_key"], f"made-{i}")[1] for i in range(12)]
    for key in made[:-1]:  # the holder revokes its own, keeping one
        assert call(client, "DELETE", f"/auth/api-key/{key['key_id']}", token=leaked["api_key"])[0] == 200
    dynamodb_calls.clear()
    assert call(client, "DELETE", f"/auth/api-key/{leaked['key_id']}", token=session)[0] == 200
    reads = dynamodb_calls["GetItem"]
    status, body, _ = call(client, "GET", "/me", token=made[-1]["api_key"])
    assert (status, body["code"]) == (401, "AUTH_FAILED")
    # The session's own (user and session item), the revoked key, and the one live key made.
    assert reads <= 5, dynamodb_calls
