"""An account's live API keys are capped exactly (docs/security.md, 61): each holds a place on
its account, taken in the transaction that writes the key and given back in the one that
revokes or moves it (store/key_slots.py, services/key_places.py). On moto and DynamoDB Local;
the race on DynamoDB Local only (moto's transactions are not isolated across threads)."""
from __future__ import annotations

import threading

import pytest

from chalicelib import deps
from chalicelib.limit_errors import KeyLimit
from chalicelib.services import apikeys
from chalicelib.store import key_slots
from chalicelib.store.models import ApiKey, User
from chalicelib.services.accounts import user_id_for
from tests.conftest import call, sign_in
from tests.factories import make_user
from tests.lost_answers import commit_answer_lost, skip_on_moto


def _places(user_id: str) -> list:
    return key_slots.holders(user_id)


def _live(user_id: str) -> list:
    return [key.key_id for key in ApiKey.owner_index.query(user_id) if key.revoked_at is None]


def test_the_cap_holds_exactly_under_a_racing_burst(store_backend, env):
    """Counting live keys on the owner index before writing one let every creation of a burst
    (concurrent Lambdas) pass the same count: the cap was passed by up to what the hourly rate
    allows. The place is now taken in the key's own transaction, conditioned on the map."""
    if store_backend == "moto":
        pytest.skip("moto's in-memory transactions are not isolated across threads; DynamoDB Local is")
    env(MAX_API_KEYS="5", RATE_KEYS_PER_HOUR="1000")
    owner = make_user("burst@example.com")
    apikeys.create(owner, apikeys.KeyRequest(name="first"))  # counted: the race is on the cap, not the counting
    settings = deps.settings()
    outcomes, lock = [], threading.Lock()
    start = threading.Barrier(16)

    def create(i: int) -> None:
        start.wait(timeout=30)
        try:
            apikeys.create(owner, apikeys.KeyRequest(name=f"burst-{i}"), settings=settings)
            outcome = "ok"
        except KeyLimit:
            outcome = "limit"
        with lock:
            outcomes.append(outcome)
    threads = [threading.Thread(target=create, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(outcomes) == ["limit"] * 12 + ["ok"] * 4, outcomes
    assert len(_live(owner.user_id)) == 5
    assert sorted(_places(owner.user_id)) == sorted(_live(owner.user_id))


def test_revoking_frees_a_place_once_and_an_old_account_is_counted_from_its_keys(store_backend, env):
    """An account from before the places has no map: the first change counts its live keys on
    the owner index (revoked ones and long-expired ones not), once, under a condition."""
    env(MAX_API_KEYS="3")
    owner = make_user("legacy@example.com")
    for key_id, extra in (("key_aaaaaaaaaaaaaaaa", {}), ("key_bbbbbbbbbbbbbbbb", {"revoked_at": "2026-01-02T00:00:00.000Z"}),
                          ("key_cccccccccccccccc", {"expires_at": "2026-01-03T00:00:00.000Z"}),
                          ("key_dddddddddddddddd", {})):
        ApiKey(key_id, key_hash="h", key_prefix="p", user_id=owner.user_id, created_at="2026-01-01T00:00:00.000Z",
               **extra).save()
    assert User.get(owner.user_id).live_keys is None
    made = apikeys.create(owner, apikeys.KeyRequest(name="third")).key
    assert _places(owner.user_id) == sorted(["key_aaaaaaaaaaaaaaaa", "key_dddddddddddddddd", made.key_id])
    with pytest.raises(KeyLimit):
        apikeys.create(owner, apikeys.KeyRequest(name="fourth"))
    apikeys.revoke(owner, made.key_id)
    apikeys.revoke(owner, made.key_id)  # again: its place is given back once
    assert _places(owner.user_id) == ["key_aaaaaaaaaaaaaaaa", "key_dddddddddddddddd"]
    fourth = apikeys.create(owner, apikeys.KeyRequest(name="fourth")).key
    with pytest.raises(KeyLimit):
        apikeys.create(owner, apikeys.KeyRequest(name="fifth"))
    assert _places(owner.user_id) == sorted(["key_aaaaaaaaaaaaaaaa", "key_dddddddddddddddd", fourth.key_id])


def test_an_old_account_revoking_first_is_counted_too(store_backend):
    owner = make_user("legacy-revoke@example.com")
    ApiKey("key_eeeeeeeeeeeeeeee", key_hash="h", key_prefix="p", user_id=owner.user_id,
           created_at="2026-01-01T00:00:00.000Z").save()
    ApiKey("key_ffffffffffffffff", key_hash="h", key_prefix="p", user_id=owner.user_id,
           created_at="2026-01-01T00:00:00.000Z").save()
    apikeys.revoke(owner, "key_eeeeeeeeeeeeeeee")
    assert _places(owner.user_id) == ["key_ffffffffffffffff"]
    apikeys.revoke(owner, "key_ffffffffffffffff")
    assert _places(owner.user_id) == []  # an empty map, still counted
    assert User.get(owner.user_id, consistent_read=True).live_keys is not None


def test_a_place_left_behind_is_freed_when_the_account_is_full(store_backend, env):
    """A key revoked outside the places' transaction (an earlier version, during its deploy)
    keeps its place until a creation finds the account full; that creation frees it."""
    env(MAX_API_KEYS="2")
    owner = make_user("leftover@example.com")
    first = apikeys.create(owner, apikeys.KeyRequest(name="one")).key
    apikeys.create(owner, apikeys.KeyRequest(name="two"))
    first.update(actions=[ApiKey.revoked_at.set("2026-01-02T00:00:00.000Z")])
    assert len(_places(owner.user_id)) == 2
    apikeys.create(owner, apikeys.KeyRequest(name="three"))
    assert sorted(_places(owner.user_id)) == sorted(_live(owner.user_id))
    with pytest.raises(KeyLimit):
        apikeys.create(owner, apikeys.KeyRequest(name="four"))


def test_an_expired_key_cannot_be_changed(backend_client, env):
    """Its place may have been freed: extending it would bring a key back past the cap."""
    from datetime import timedelta
    from chalicelib import clock
    client = backend_client
    session = sign_in(client, "expired-patch@example.com")
    soon = (clock.now() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    status, key, _ = call(client, "POST", "/auth/api-key", {"name": "short", "expires_at": soon}, token=session)
    assert status == 201
    moment = clock.now() + timedelta(hours=2)
    clock.use(lambda: moment)
    try:
        later = (moment + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
        status, body, _ = call(client, "PATCH", f"/auth/api-key/{key['key_id']}", {"expires_at": later}, token=session)
        assert (status, body["code"]) == (409, "CONFLICT"), body
    finally:
        clock.use(None)


def test_a_claim_carries_its_keys_places_and_may_pass_the_cap(backend_client, env):
    """Claiming a key-only account moves its live keys' places to the user in each key's
    move: the claim never fails for the cap; the user creates no key until below it again."""
    client = backend_client
    env(MAX_API_KEYS="3")
    status, created, _ = call(client, "POST", "/auth/api-key", {"name": "agent"})
    assert status == 201, created
    agent_key = created["api_key"]
    made = [call(client, "POST", "/auth/api-key", {"name": f"made-{i}"}, token=agent_key)[1] for i in range(2)]
    assert call(client, "DELETE", f"/auth/api-key/{made[0]['key_id']}", token=agent_key)[0] == 200
    human = sign_in(client, "claims-places@example.com")
    own = [call(client, "POST", "/auth/api-key", {"name": f"own-{i}"}, token=human)[1] for i in range(2)]
    status, body, _ = call(client, "POST", "/auth/link-key", {"api_key": agent_key}, token=human)
    assert status == 200 and body["moved"]["keys"] == 3, body
    human_id = user_id_for("claims-places@example.com")
    expected = sorted([created["key_id"], made[1]["key_id"]] + [key["key_id"] for key in own])
    assert _places(human_id) == expected == sorted(_live(human_id))
    assert _places(created["account_id"]) == []
    again = call(client, "POST", "/auth/link-key", {"api_key": made[1]["api_key"]}, token=human)[1]
    assert (again["claimed_account_id"], again["moved"]["keys"]) == (created["account_id"], 0), again
    status, body, _ = call(client, "POST", "/auth/api-key", {"name": "over"}, token=human)
    assert (status, body["code"]) == (429, "KEY_LIMIT"), body
    for key in own:
        assert call(client, "DELETE", f"/auth/api-key/{key['key_id']}", token=human)[0] == 200
    assert call(client, "POST", "/auth/api-key", {"name": "below again"}, token=human)[0] == 201


def test_a_key_whose_commit_answer_was_lost_is_made_once(backend_client, store_backend):
    """DynamoDB can commit a transaction and answer 500; sent again, the key's own condition
    refused it and the creation answered 500 with the key made (a place taken, a key the caller
    never saw). The attempts share a client request token, so the retry is answered as done."""
    skip_on_moto(store_backend)
    client = backend_client
    human = sign_in(client, "lost-answer@example.com")
    with commit_answer_lost("keys") as lost:
        status, created, _ = call(client, "POST", "/auth/api-key", {"name": "once"}, token=human)
    assert lost and status == 201, created
    listed = call(client, "GET", "/auth/api-keys", token=human)[1]
    assert [key["key_id"] for key in listed] == [created["key_id"]]
    assert _places(user_id_for("lost-answer@example.com")) == [created["key_id"]]


def test_a_full_account_refused_takes_none_of_the_hourly_allowance(backend_client, store_backend, env):
    """A creation refused because the account is full took one of the hourly creations first:
    a few refusals, and once a key was revoked its owner could create none until the hour
    passed. The place is checked before the allowance is taken; making room, which reads the
    keys holding places, is bounded by an allowance of its own."""
    env(MAX_API_KEYS="2", RATE_KEYS_PER_HOUR="3")
    client = backend_client
    human = sign_in(client, "full@example.com")
    made = [call(client, "POST", "/auth/api-key", {"name": f"k{n}"}, token=human)[1] for n in range(2)]
    for _ in range(3):
        status, refused, _ = call(client, "POST", "/auth/api-key", {"name": "one more"}, token=human)
        assert (status, refused["code"]) == (429, "KEY_LIMIT")
    status, bounded, _ = call(client, "POST", "/auth/api-key", {"name": "one more"}, token=human)
    assert (status, bounded["code"]) == (429, "RATE_LIMIT")
    assert call(client, "DELETE", f"/auth/api-key/{made[0]['key_id']}", token=human)[0] == 200
    status, created, _ = call(client, "POST", "/auth/api-key", {"name": "after a revoke"}, token=human)
    assert status == 201, created
    assert call(client, "DELETE", f"/auth/api-key/{made[1]['key_id']}", token=human)[0] == 200
    assert call(client, "POST", "/auth/api-key", {"name": "past the hour's"}, token=human)[1]["code"] == "RATE_LIMIT"
