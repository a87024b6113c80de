"""The seventh review (docs/security.md, "The seventh review"): a fresh-eyes pass over what the
sessions before it landed, its findings and the smaller defects it fixed on the way. Each test
failed before its fix. On moto and on DynamoDB Local where a condition in the store decides."""
from __future__ import annotations

from chalicelib.errors import Conflict
from chalicelib.services import apikeys
from chalicelib.store import accounts as account_store
from chalicelib.store import apikeys as key_store
from chalicelib.store import key_moves
from chalicelib.services.accounts import user_id_for
from tests.conftest import call, sign_in


# --- A claim leaves no key of the claimed account behind -------------------------------------

def _listed(client, session: str) -> set:
    status, body, _ = call(client, "GET", "/auth/api-keys", token=session)
    assert status == 200, body
    return {entry["key_id"] for entry in body}


def _hides_nothing(client, human: str, human_id: str, key_id: str) -> None:
    """A key that acts as the user is the user's to see and revoke."""
    key = key_store.get(key_id)
    assert key is not None and key.user_id == human_id, "a key acting as the user stayed with the claimed account"
    assert key_id in _listed(client, human)
    assert call(client, "DELETE", f"/auth/api-key/{key_id}", token=human)[0] == 200


def test_a_key_made_just_before_a_claim_is_moved_with_the_others(backend_client, monkeypatch):
    """The claim found the account's keys on the owner index, which lags its writes: a key its
    agent made a moment before the claim stayed with the claimed account, acting as the user
    (the account is merged into it) while the user could neither list nor revoke it, not even
    by revoking the key that made it. The claim now follows each key's ``made_keys``, read
    consistently."""
    client = backend_client
    status, created, _ = call(client, "POST", "/auth/api-key", {"name": "agent"})
    assert status == 201, created
    status, made, _ = call(client, "POST", "/auth/api-key", {"name": "just made"}, token=created["api_key"])
    assert status == 201, made
    human = sign_in(client, "claims-lagging-index@example.com")
    human_id = user_id_for("claims-lagging-index@example.com")
    listed = key_store.owned_by
    monkeypatch.setattr(key_store, "owned_by", lambda owner_id, newest_first=True: [  # the index lags
        key for key in listed(owner_id, newest_first) if key.key_id != made["key_id"]])
    status, body, _ = call(client, "POST", "/auth/link-key", {"api_key": created["api_key"]}, token=human)
    assert status == 200 and body["moved"]["keys"] == 2, body
    monkeypatch.undo()
    assert call(client, "GET", "/me", token=made["api_key"])[1]["id"] == human_id
    _hides_nothing(client, human, human_id, made["key_id"])
    assert call(client, "GET", "/me", token=made["api_key"])[0] == 401


def test_a_key_made_while_a_claim_runs_is_refused_or_moved(backend_client, monkeypatch):
    """A creation that authenticated before the claim marked the account and wrote its key after
    the claim read the keys left that key with the claimed account the same way. A key is now
    written to an account only while it is not merged (409; sent again, it is the new owner's)."""
    client = backend_client
    status, created, _ = call(client, "POST", "/auth/api-key", {"name": "agent"})
    assert status == 201, created
    agent = key_store.get(created["key_id"])
    stale_owner = account_store.get(created["account_id"], consistent=True)  # as its request read it
    human = sign_in(client, "claims-in-flight@example.com")
    human_id = user_id_for("claims-in-flight@example.com")
    outcomes = []
    moving = key_moves.move_to_owner

    def create_meanwhile(*args):  # after the account is marked and its keys read
        if not outcomes:
            try:
                outcomes.append(apikeys.create(stale_owner, apikeys.KeyRequest(name="in flight"),
                                               actor=agent).key.key_id)
            except Conflict as refused:
                outcomes.append(refused)
        return moving(*args)
    monkeypatch.setattr(key_moves, "move_to_owner", create_meanwhile)
    status, body, _ = call(client, "POST", "/auth/link-key", {"api_key": created["api_key"]}, token=human)
    assert status == 200, body
    monkeypatch.undo()
    assert len(outcomes) == 1
    if isinstance(outcomes[0], Conflict):  # refused: retried, it is the new owner's
        status, again, _ = call(client, "POST", "/auth/api-key", {"name": "retried"}, token=created["api_key"])
        assert status == 201, again
        outcomes[0] = again["key_id"]
    for key_id in set(outcomes) | set(key_store.get(created["key_id"]).made_keys or ()):
        _hides_nothing(client, human, human_id, key_id)


# --- A budget cap is a number of cents, never a JSON boolean ----------------------------------

def test_a_budget_cap_is_a_number_of_cents_not_a_boolean(client):
    """Lax parsing took ``true`` as a cap of 1 cent and ``false`` as 0, which refuses every
    charge: an agent writing ``"monthly_cap_cents": false`` for "no cap" stopped its own posts
    (and ``PATCH /spikes``' ``resolved`` already refuses such coercions). Now a 400 naming the
    field; ``null`` still removes a cap."""
    session = sign_in(client, "boolean-cap@example.com")
    status, key, _ = call(client, "POST", "/auth/api-key", {"name": "capped", "monthly_cap_cents": 700}, token=session)
    assert status == 201, key
    call(client, "PATCH", "/me", {"monthly_cap_cents": 900}, token=session)
    for value in (True, False):
        for method, path in (("PATCH", "/me"), ("POST", "/auth/api-key"), ("PATCH", f"/auth/api-key/{key['key_id']}")):
            status, body, _ = call(client, method, path, {"monthly_cap_cents": value}, token=session)
            assert (status, body["code"]) == (400, "VALIDATION_ERROR"), (method, path, value, body)
            assert [detail["field"] for detail in body["details"]] == ["monthly_cap_cents"], body
    assert call(client, "GET", "/me", token=session)[1]["monthly_cap_cents"] == 900
    listed = call(client, "GET", "/auth/api-keys", token=session)[1]
    assert [entry["monthly_cap_cents"] for entry in listed] == [700]
    assert call(client, "PATCH", "/me", {"monthly_cap_cents": None}, token=session)[1]["monthly_cap_cents"] is None
