"""What finding 61 left of API keys' places and revocations (docs/security.md, 72): revoking a
key reads its own tree only, not its account's whole owner index. On moto and DynamoDB Local."""
from __future__ import annotations

from chalicelib.services import apikeys
from chalicelib.store import key_slots
from chalicelib.store.models import ApiKey
from tests.conftest import call, sign_in
from tests.factories import make_user


def _create(client, credential: str, name: str) -> dict:
    status, body, _ = call(client, "POST", "/auth/api-key", {"name": name}, token=credential)
    assert status == 201, body
    return body


def test_revoking_a_key_reads_none_of_its_accounts_other_keys(backend_client, dynamodb_calls):
    """Each revocation read the whole owner index (every key the account ever made, revoked ones
    included, a Query page per 1 MB) to find keys made before ``made_keys`` was kept: a CI making
    and revoking a key per job paid for its whole history on every revocation. A key written
    since names all it makes, so revoking it is its own transaction and, when it made keys, one
    consistent read of those."""
    client = backend_client
    session = sign_in(client, "revoke-direct@example.com")
    history = [_create(client, session, f"job-{i}") for i in range(6)]
    maker = _create(client, session, "maker")
    made = _create(client, maker["api_key"], "made")
    dynamodb_calls.clear()
    assert call(client, "DELETE", f"/auth/api-key/{history[0]['key_id']}", token=session)[0] == 200
    assert (dynamodb_calls["Query"], dynamodb_calls["BatchGetItem"]) == (0, 0), dynamodb_calls
    assert dynamodb_calls["TransactWriteItems"] == 1, dynamodb_calls
    dynamodb_calls.clear()
    assert call(client, "DELETE", f"/auth/api-key/{maker['key_id']}", token=session)[0] == 200
    assert (dynamodb_calls["Query"], dynamodb_calls["BatchGetItem"]) == (0, 1), dynamodb_calls
    for key in (history[0], maker, made):
        assert call(client, "GET", "/me", token=key["api_key"])[0] == 401, key["name"]
    user_id = call(client, "GET", "/me", token=session)[1]["id"]
    assert sorted(key_slots.holders(user_id)) == sorted(key["key_id"] for key in history[1:])


def test_a_key_from_before_made_keys_still_revokes_what_it_made(store_backend):
    """A key written before ``made_keys`` was kept may have made keys it does not name: for such
    a key the owner index is still read (``created_by``), and what it made is revoked with it."""
    owner = make_user("revoke-legacy@example.com")
    ApiKey("key_gggggggggggggggg", key_hash="h", key_prefix="p", user_id=owner.user_id,
           created_at="2026-01-01T00:00:00.000Z", created_by="session").save()
    ApiKey("key_hhhhhhhhhhhhhhhh", key_hash="h", key_prefix="p", user_id=owner.user_id,
           created_at="2026-01-01T00:00:01.000Z", created_by="key:key_gggggggggggggggg").save()
    revoked = apikeys.revoke(owner, "key_gggggggggggggggg")
    assert revoked.key_id == "key_gggggggggggggggg"
    assert all(ApiKey.get(key_id, consistent_read=True).revoked_at
               for key_id in ("key_gggggggggggggggg", "key_hhhhhhhhhhhhhhhh"))
    assert key_slots.holders(owner.user_id) == []


def test_a_key_makes_at_most_max_made_keys_and_is_told_so(backend_client, monkeypatch):
    """A key's ``made_keys`` is one item's set and keeps revoked keys too: a CI making and revoking
    a key per job from one key grew it to DynamoDB's 400 KB item limit, after which every key it
    was to make failed in the transaction. It now makes at most MAX_MADE_KEYS, then a clear 409;
    the account's other keys and its session still make keys. On moto and DynamoDB Local."""
    from chalicelib.store import apikeys as key_store
    monkeypatch.setattr(key_store, "MAX_MADE_KEYS", 2)
    client = backend_client
    session = sign_in(client, "made-many@example.com")
    maker = _create(client, session, "ci")
    made = [_create(client, maker["api_key"], f"job-{i}") for i in range(2)]
    for key in made:  # revoked ones still count: the set keeps them (their revocation is final)
        assert call(client, "DELETE", f"/auth/api-key/{key['key_id']}", token=session)[0] == 200
    status, body, _ = call(client, "POST", "/auth/api-key", {"name": "job-2"}, token=maker["api_key"])
    assert (status, body["code"]) == (409, "CONFLICT"), body
    assert "made 2 keys" in body["error"] and "session" in body["error"]
    stored = ApiKey.get(maker["key_id"], consistent_read=True)
    assert stored.revoked_at is None and set(stored.made_keys) == {key["key_id"] for key in made}
    # The maker still works, another key of the account and the session still make keys.
    assert call(client, "GET", "/auth/api-keys", token=maker["api_key"])[0] == 200
    other = _create(client, session, "other")
    assert _create(client, other["api_key"], "from-other")["key_id"]
    # A revoked maker is told it is revoked, not that it is full.
    assert call(client, "DELETE", f"/auth/api-key/{maker['key_id']}", token=session)[0] == 200
    assert call(client, "POST", "/auth/api-key", {"name": "late"}, token=maker["api_key"])[0] == 401
