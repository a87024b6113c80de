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


OLDER_HISTORY = 10
READ_AT_MOST = 4


def test_revoking_a_key_from_before_made_keys_reads_a_bounded_part_of_its_account_per_request(store_backend,
                                                                                          key_index_scans, monkeypatch):
    """A key from before ``made_keys`` may have made keys it does not name, found on the owner
    index only: every revocation of it read the account's whole index, its revoked keys included
    (kept for good, 30 made an hour: some 260,000 in a year of rotations), in one request that
    such a read outlasts, and every retry read it all again, so what the key made stayed live
    (docs/security.md 348). A request now reads a bounded part, goes on where the last stopped,
    answers 503 meanwhile, and marks the key looked up once the index is read to its end."""
    from chalicelib.errors import DependencyUnavailable
    from chalicelib.store import older_made_keys
    scanned = key_index_scans
    monkeypatch.setattr(older_made_keys, "READ_ITEMS", READ_AT_MOST, raising=False)
    monkeypatch.setattr(older_made_keys, "PAGE", 2, raising=False)
    owner = make_user("revoke-older@example.com")
    maker, made = "key_mmmmmmmmmmmmmmmm", "key_nnnnnnnnnnnnnnnn"
    ApiKey(maker, key_hash="h", key_prefix="p", user_id=owner.user_id, created_at="2026-01-01T00:00:00.000Z",
           created_by="session").save()
    ApiKey(made, key_hash="h", key_prefix="p", user_id=owner.user_id, created_at="2026-01-01T00:00:01.000Z",
           created_by="key:" + maker).save()
    for n in range(OLDER_HISTORY):  # the rotations since, newer: read first
        ApiKey(f"key_rrrrrrrrrrrrrrr{chr(ord('a') + n)}", key_hash="h", key_prefix="p", user_id=owner.user_id,
               created_at=f"2026-02-01T00:00:{n:02d}.000Z", created_by="session",
               revoked_at="2026-02-02T00:00:00.000Z", made_keys_complete=True).save()
    from chalicelib.store.models import User
    User(owner.user_id).update(actions=[User.live_keys.set({maker: True, made: True})])
    calls = 0
    for calls in range(1, 20):  # bounded: 12 keys, 4 a call
        scanned.clear()
        try:
            apikeys.revoke(owner, maker)
            done = True
        except DependencyUnavailable as refused:
            assert refused.headers["Retry-After"] == "1"
            done = False
        assert sum(scanned) <= READ_AT_MOST, scanned
        assert ApiKey.get(maker, consistent_read=True).revoked_at  # revoked by the first request
        if done:
            break
    assert calls > 1 and ApiKey.get(made, consistent_read=True).revoked_at
    assert key_slots.holders(owner.user_id) == []
    stored = ApiKey.get(maker, consistent_read=True)
    assert stored.made_keys_complete and set(stored.made_keys) == {made} and stored.made_keys_read_to is None
    scanned.clear()
    apikeys.revoke(owner, maker)  # looked up for good: its tree alone is read
    assert scanned == []


def test_a_revocation_retried_for_a_moved_key_reads_one_budget_in_all(store_backend, key_index_scans, monkeypatch):
    """A claim moving a key of the tree mid-revocation (``Moved``) makes the request try again for
    the new owner, up to 3 times, and each try had its own ``READ_ITEMS`` of the owner index: one
    request read three times what 348 bounds it to. The tries now share one budget (docs/security.md 351)."""
    from chalicelib.errors import Conflict
    from chalicelib.services import key_owners
    from chalicelib.store import apikeys as key_store
    from chalicelib.store import older_made_keys
    scanned = key_index_scans
    monkeypatch.setattr(older_made_keys, "READ_ITEMS", READ_AT_MOST, raising=False)
    monkeypatch.setattr(older_made_keys, "PAGE", 2, raising=False)
    owner = make_user("revoke-moved@example.com")
    maker, moving = "key_pppppppppppppppp", "key_qqqqqqqqqqqqqqqq"
    ApiKey(maker, key_hash="h", key_prefix="p", user_id=owner.user_id, created_at="2026-01-01T00:00:00.000Z",
           created_by="session", made_keys={moving}).save()  # from before made_keys_complete
    ApiKey(moving, key_hash="h", key_prefix="p", user_id=owner.user_id, created_at="2026-01-01T00:00:01.000Z",
           created_by="key:" + maker).save()
    for n in range(OLDER_HISTORY):
        ApiKey(f"key_sssssssssssssss{chr(ord('a') + n)}", key_hash="h", key_prefix="p", user_id=owner.user_id,
               created_at=f"2026-02-01T00:00:{n:02d}.000Z", created_by="session",
               revoked_at="2026-02-02T00:00:00.000Z", made_keys_complete=True).save()
    from chalicelib.store.models import User
    User(owner.user_id).update(actions=[User.live_keys.set({maker: True, moving: True})])
    revoking = key_store._revoke
    # A claim keeps moving ``moving`` away as it is revoked: every try ends in Moved, for an account
    # the claim made one with the owner's.
    monkeypatch.setattr(key_store, "_revoke", lambda item, owners, at: False if item.key_id == moving
                        else revoking(item, owners, at))
    monkeypatch.setattr(key_owners.ownership, "one_by_claim", lambda *owners: True)
    try:
        apikeys.revoke(owner, maker)
    except Conflict:
        pass
    assert len(scanned) > 0 and sum(scanned) <= READ_AT_MOST, scanned  # before: 4 read by each of 3 tries
