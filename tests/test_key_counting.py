"""Counting an account from before ``live_keys`` reads a bounded part of its keys per request
(docs/security.md 334). The first request that changed one of its keys (a creation, a
revocation, a claim bringing keys to it or taking them away) read its whole owner index to
count its live keys: revoked keys are kept for good and an account makes 30 an hour, so a year
of rotations, some 260,000 items, was one read longer than the request. On moto and DynamoDB Local."""
from __future__ import annotations

import pytest

from chalicelib import clock, deps
from chalicelib.errors import DependencyUnavailable
from chalicelib.services import apikeys, key_places
from chalicelib.store import key_slots
from chalicelib.store.models import ApiKey, User
from chalicelib.services.accounts import user_id_for
from tests.conftest import call, sign_in
from tests.factories import make_user

LIVE, REVOKED = 3, 9
READ_AT_MOST = 4


def _old_account_with_rotations(email: str):
    """An account from before the places (no ``live_keys``), with live and many revoked keys."""
    owner = make_user(email)
    _, live = _keys_of(owner.user_id, email[:4])
    assert User.get(owner.user_id, consistent_read=True).live_keys is None
    return owner, live


def _keys_of(user_id: str, tag: str):
    """``LIVE`` live and ``REVOKED`` revoked keys of the account; their ids, and the live ones'."""
    made, live = [], []
    for n in range(LIVE + REVOKED):
        key_id = f"key_{tag}{'a' * 11}{chr(ord('a') + n)}"  # the shape of an id we issue
        revoked = {"revoked_at": "2026-01-02T00:00:00.000Z"} if n % 4 else {}
        ApiKey(key_id, key_hash="h", key_prefix="p", user_id=user_id,
               created_at=f"2026-01-01T00:00:{n:02d}.000Z", **revoked).save()
        made.append(key_id)
        live += [] if revoked else [key_id]
    assert len(live) == LIVE
    return made, live


@pytest.fixture
def key_index_reads(key_index_scans, monkeypatch):
    """The items each Query of the keys' owner index evaluated, with counting's bounds made small."""
    monkeypatch.setattr(key_slots, "COUNT_PAGE", 2, raising=False)
    monkeypatch.setattr(key_slots, "COUNT_READ_ITEMS", READ_AT_MOST, raising=False)
    return key_index_scans


def test_counting_an_old_account_reads_a_bounded_part_of_its_keys_per_request(store_backend, key_index_reads):
    owner, live = _old_account_with_rotations("rotations@example.com")
    calls = 0
    for calls in range(1, 20):  # bounded: 12 keys, 4 a call
        key_index_reads.clear()
        counted = key_places.ensure_counted(owner.user_id, clock.epoch())
        assert sum(key_index_reads) <= READ_AT_MOST, key_index_reads
        if counted:
            break
    assert calls > 1 and key_slots.holders(owner.user_id) == sorted(live)
    stored = User.get(owner.user_id, consistent_read=True)
    assert stored.live_keys_counting is None and stored.live_keys_counted_to is None


def test_an_account_of_live_keys_only_is_counted_a_bounded_part_per_request(store_backend, key_index_reads):
    """Every key found is an item read, so the read's bound (``COUNT_READ_ITEMS``) bounds the keys
    found too: with every key live, as many found as read, a call still reads no more."""
    owner = make_user("all-live@example.com")
    live = [f"key_live{'a' * 11}{chr(ord('a') + n)}" for n in range(3 * READ_AT_MOST + 1)]
    for n, key_id in enumerate(live):
        ApiKey(key_id, key_hash="h", key_prefix="p", user_id=owner.user_id,
               created_at=f"2026-01-01T00:00:{n:02d}.000Z").save()
    counted, calls = False, 0
    while not counted and calls < 20:  # bounded: 13 keys, 4 a call
        calls += 1
        key_index_reads.clear()
        counted = key_places.ensure_counted(owner.user_id, clock.epoch())
        assert sum(key_index_reads) <= READ_AT_MOST, key_index_reads
    assert counted and calls >= 4 and key_slots.holders(owner.user_id) == sorted(live)


def test_a_key_change_waits_while_the_account_is_being_counted_then_counts_exactly(store_backend, key_index_reads,
                                                                                 env):
    """A creation refused while its account is counted takes none of the hourly allowance: an
    account of 260,000 keys is counted over 26 requests, and an allowance of 30 an hour spent on
    them left it no key to make."""
    env(RATE_KEYS_PER_HOUR="1")
    owner, live = _old_account_with_rotations("creation@example.com")
    made = None
    for _ in range(20):  # bounded
        key_index_reads.clear()
        try:
            made = apikeys.create(owner, apikeys.KeyRequest(name="new"), settings=deps.settings())
            break
        except DependencyUnavailable as refused:  # 503 with Retry-After: call again
            assert refused.headers["Retry-After"]
        assert sum(key_index_reads) <= READ_AT_MOST, key_index_reads
    assert made is not None and key_slots.holders(owner.user_id) == sorted(live + [made.key.key_id])
    apikeys.revoke(owner, live[0])
    assert key_slots.holders(owner.user_id) == sorted(live[1:] + [made.key.key_id])


def test_a_claim_by_an_old_account_answers_202_while_it_is_counted_then_completes(backend_client, key_index_reads):
    client = backend_client
    status, agent, _ = call(client, "POST", "/auth/api-key", {"name": "agent"})
    assert status == 201, agent
    human = sign_in(client, "rotator@example.com")
    human_id = user_id_for("rotator@example.com")
    User(human_id).update(actions=[User.live_keys.remove()])  # an account from before the places
    _, live = _keys_of(human_id, "rota")
    answers = []
    for _ in range(20):  # bounded: 12 keys, 4 a call
        key_index_reads.clear()
        status, body, _ = call(client, "POST", "/auth/link-key", {"api_key": agent["api_key"]}, token=human)
        # What counting reads, and the claimed account's keys (one) once the person is counted.
        assert status in (200, 202) and sum(key_index_reads) <= READ_AT_MOST + 1, (body, key_index_reads)
        answers.append(status)
        if status == 200:
            break
    assert answers[0] == 202 and answers[-1] == 200, answers
    assert key_slots.holders(human_id) == sorted(live + [agent["key_id"]])
    assert key_slots.holders(agent["account_id"]) == []
