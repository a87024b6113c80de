"""Two requests counting the same account from before ``live_keys`` at once (docs/security.md 61,
334): each writes its progress, and the map at the end, only while what it read is still so. A
request whose read was overtaken (the other one went on, or counted the account, and a key
changed since) writes nothing: the position never goes back, the map is never written over.
On moto and DynamoDB Local."""
from __future__ import annotations

import json

from chalicelib import clock
from chalicelib.services import apikeys, key_places
from chalicelib.store import key_slots, rows
from chalicelib.store.models import ApiKey, User
from tests.test_key_counting import _old_account_with_rotations


def _overtaken_once(monkeypatch, user_id: str, meanwhile) -> list:
    """``meanwhile()`` runs the first time the counting of ``user_id`` has read its part of the
    index, before that request writes what it read."""
    reading, done = rows.query_index, []

    def query_index(model, index, hash_key, **kwargs):
        found = reading(model, index, hash_key, **kwargs)
        if model is ApiKey and hash_key == user_id and not done:
            done.append(True)
            meanwhile()
        return found
    monkeypatch.setattr(rows, "query_index", query_index)
    return done


def test_a_count_overtaken_by_another_and_a_new_key_does_not_write_over_the_map(store_backend, monkeypatch):
    owner, live = _old_account_with_rotations("overtaken-count@example.com")
    made = []

    def another_request_counts_then_makes_a_key():
        assert key_places.ensure_counted(owner.user_id, clock.epoch())
        made.append(apikeys.create(owner, apikeys.KeyRequest(name="made meanwhile")).key.key_id)
    overtaken = _overtaken_once(monkeypatch, owner.user_id, another_request_counts_then_makes_a_key)
    assert key_places.ensure_counted(owner.user_id, clock.epoch())  # counted: by the other request
    assert overtaken and made
    assert key_slots.holders(owner.user_id) == sorted(live + made)


def test_a_count_overtaken_by_another_does_not_move_its_position_back(store_backend, monkeypatch):
    monkeypatch.setattr(key_slots, "COUNT_PAGE", 2, raising=False)
    monkeypatch.setattr(key_slots, "COUNT_READ_ITEMS", 4, raising=False)
    owner, live = _old_account_with_rotations("overtaken-position@example.com")
    ahead = []

    def another_request_goes_on_twice():
        for _ in range(2):
            assert not key_places.ensure_counted(owner.user_id, clock.epoch())
        ahead.append(User.get(owner.user_id, consistent_read=True).live_keys_counted_to)
    overtaken = _overtaken_once(monkeypatch, owner.user_id, another_request_goes_on_twice)
    assert not key_places.ensure_counted(owner.user_id, clock.epoch())  # its first part: read again by the other
    assert overtaken and ahead and json.loads(ahead[0])
    assert User.get(owner.user_id, consistent_read=True).live_keys_counted_to == ahead[0]
    for _ in range(10):  # bounded: 12 keys, 4 a call
        if key_places.ensure_counted(owner.user_id, clock.epoch()):
            break
    assert key_slots.holders(owner.user_id) == sorted(live)
