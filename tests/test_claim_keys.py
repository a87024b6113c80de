"""A change or revocation of an agent's key that a claim overtakes acts on the key (docs/security.md
78): the claim marks the account, then moves its keys one by one, and a request on one of them
read the key, or the caller's account, on one side of that move and wrote on the other. On moto
and on DynamoDB Local: a condition in the store decides."""
from __future__ import annotations

import pytest

from chalicelib import clock, deps
from chalicelib.errors import AuthFailed, NotFound
from chalicelib.services import apikeys, key_places
from chalicelib.store import accounts as account_store
from chalicelib.store import apikeys as key_store
from chalicelib.store import key_moves, key_slots
from tests.test_claim_leftovers import _agent_and_human, _claim, _during_the_claim


def _act(action: str, user, key_id: str):
    if action == "change":
        return apikeys.update(user, key_id, name="renamed")
    return apikeys.revoke(user, key_id)


def _assert_acted_on(action: str, answered, created, human_id: str, raw: str) -> None:
    stored = key_store.get(answered.key_id)
    assert stored.user_id == human_id
    if action == "change":
        assert answered.name == stored.name == "renamed"
        return
    assert answered.revoked_at and answered.revoked_at == stored.revoked_at, "answered revoked, the key still live"
    with pytest.raises(AuthFailed):
        apikeys.authenticate(raw, deps.settings())
    assert answered.key_id not in (key_slots.holders(human_id) or []) + (key_slots.holders(created["account_id"]) or [])


@pytest.mark.parametrize("action", ["change", "revoke"])
@pytest.mark.parametrize("timing", ["not-moved-yet", "moved-after-its-read", "moved-before-its-read"])
def test_a_key_request_a_claim_overtakes_acts_on_the_key(backend_client, monkeypatch, action, timing):
    """A key of the agent not moved yet, asked for by a key that authenticates as the new owner
    (the account marked): 404. Moved between a request's read and its write (conditioned on
    the owner as read): a change answered 409, a revocation answered 200 with the key live.
    Moved before the read of a request that read the account before the marking: 404. Sent
    again after the claim, each worked. Each now acts on the key the first time."""
    client = backend_client
    created, agent, human, human_id = _agent_and_human(client, f"claim-key-{action}-{timing}@example.com")
    other = apikeys.create(agent.user, apikeys.KeyRequest(name="other"), settings=deps.settings())
    if timing == "not-moved-yet":  # the claim's first key move is this one: the presented key moves last
        done = _during_the_claim(monkeypatch, lambda: _act(
            action, apikeys.authenticate(created["api_key"], deps.settings())[1], other.key.key_id))
        _claim(client, human, created["api_key"])
        monkeypatch.undo()
        answered = done[0]
    elif timing == "moved-after-its-read":
        read, claimed = key_store.get, []

        def read_then_claimed(key_id):
            found = read(key_id)
            if key_id == other.key.key_id and not claimed:
                claimed.append(_claim(client, human, created["api_key"]))
            return found
        monkeypatch.setattr(key_store, "get", read_then_claimed)
        answered = _act(action, agent.user, other.key.key_id)
        monkeypatch.undo()
        assert claimed and claimed[0]["moved"]["keys"] == 2, claimed
    else:
        _claim(client, human, created["api_key"])
        answered = _act(action, agent.user, other.key.key_id)
    _assert_acted_on(action, answered, created, human_id, other.api_key)
    stranger = apikeys.signup(deps.settings(), "127.0.0.9", apikeys.KeyRequest(name="stranger"))
    for caller in (agent.user, account_store.get(human_id, consistent=True)):  # someone else's key: not found
        with pytest.raises(NotFound):
            _act(action, caller, stranger.key.key_id)


@pytest.mark.parametrize("moved", ["the-made-key", "the-maker"])
@pytest.mark.parametrize("caller", ["agent-as-read", "new-owner"])
def test_a_revocation_amid_a_claim_revokes_the_keys_made_on_either_side(backend_client, moved, caller):
    """Revoking a key revokes the keys it made; amid a claim, one of the two moved and the other
    not yet, the one on the other side was skipped (not the owner's as read): a 200 with a key
    made by the revoked one still live. Both are now revoked."""
    client = backend_client
    created, agent, human, human_id = _agent_and_human(client, f"claim-made-{moved}-{caller}@example.com")
    maker = apikeys.create(agent.user, apikeys.KeyRequest(name="maker"), settings=deps.settings())
    made = apikeys.create(agent.user, apikeys.KeyRequest(name="made"), actor=maker.key, settings=deps.settings())
    assert account_store.mark_merged(account_store.get(created["account_id"], consistent=True), human_id)
    key_places.ensure_counted(human_id, clock.epoch())
    key_moves.move_to_owner(key_store.get((made if moved == "the-made-key" else maker).key.key_id),
                            created["account_id"], human_id)
    user = agent.user if caller == "agent-as-read" else apikeys.authenticate(created["api_key"], deps.settings())[1]
    answered = apikeys.revoke(user, maker.key.key_id)
    assert answered.revoked_at
    for raw in (maker.api_key, made.api_key):
        with pytest.raises(AuthFailed):
            apikeys.authenticate(raw, deps.settings())
    _claim(client, human, created["api_key"])  # the claim finishes: they stay revoked
    assert {key_store.get(item.key.key_id).user_id for item in (maker, made)} == {human_id}
    assert all(key_store.get(item.key.key_id).revoked_at for item in (maker, made))
