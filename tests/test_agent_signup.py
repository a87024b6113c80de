"""Agents sign up with no human (POST /auth/api-key without credentials), rate-limited per IP
and switchable by a setting; a signed-in user claims such a key-only account later."""
from __future__ import annotations

from chalicelib.services.accounts import user_id_for
from chalicelib.settings import Settings
from chalicelib.store.models import ApiKey, Share, Spike, User
from tests.conftest import call, sign_in
from tests.test_apikeys import CREATE_KEY_RESPONSE, assert_struct
from tests.test_shares import share_site


def signup(client, body=None, headers=None):
    return call(client, "POST", "/auth/api-key", body if body is not None else {}, headers=headers)


def test_an_agent_gets_working_credentials_in_one_call(client):
    status, created, _ = signup(client, {"name": "ci-agent"})  # exactly what `spikes auth create-key` sends
    assert status == 201, created
    assert_struct(created, CREATE_KEY_RESPONSE)
    assert created["scopes"] == "full" and created["name"] == "ci-agent"
    key = created["api_key"]

    status, me, _ = call(client, "GET", "/me", token=key)
    assert status == 200
    assert me["email"] is None and me["tier"] == "free" and me["claimable"] is True
    assert me["id"] == created["account_id"]

    share = share_site(client, key, name="agent site")
    status, body, _ = call(client, "POST", "/spikes", {"type": "page", "projectKey": share["slug"], "comments": "ok"})
    assert status == 201
    status, listed, _ = call(client, "GET", "/spikes", token=key)
    assert status == 200 and [s["id"] for s in listed["data"]] == [body["id"]]
    status, usage, _ = call(client, "GET", "/usage", token=key)
    assert status == 200 and usage["tier"] == "free" and usage["spikes"] == 1 and usage["shares"] == 1


def test_each_signup_is_a_separate_key_only_account(client):
    first = signup(client)[1]
    second = signup(client)[1]
    assert first["account_id"] != second["account_id"]
    for created in (first, second):
        user = User.get(created["account_id"])
        assert user.email is None and user.tier == "free"
        assert ApiKey.get(created["key_id"]).created_by == "signup"


def test_signup_is_rate_limited_per_ip(client, env, from_network):
    env(RATE_AGENT_SIGNUP_PER_HOUR="2")
    assert signup(client)[0] == 201
    assert signup(client)[0] == 201
    status, body, headers = signup(client)
    assert (status, body["code"]) == (429, "RATE_LIMIT")
    assert int(headers["Retry-After"]) > 0 and body["retry_after"] > 0
    assert list(ApiKey.scan()) and len(list(ApiKey.scan())) == 2  # the refused call created nothing
    # Another address (as API Gateway reports it) has its own allowance.
    from_network("203.0.113.77")
    assert signup(client)[0] == 201
    # A signed-in user creating keys is not the signup limit's business.
    token = sign_in(client, "human@example.com")
    assert call(client, "POST", "/auth/api-key", {}, token=token)[0] == 201


def test_signup_can_be_turned_off(client, env):
    env(AGENT_SIGNUP="false")
    status, body, _ = signup(client)
    assert (status, body["code"]) == (401, "AUTH_REQUIRED") and "spikes login" in body["error"]
    token = sign_in(client, "human@example.com")
    assert call(client, "POST", "/auth/api-key", {"name": "mine"}, token=token)[0] == 201


def test_signup_default_is_on_locally_and_off_in_aws_stages():
    assert Settings(stage="local").agent_signup_enabled is True
    assert Settings(stage="prod", secret_key="s" * 40).agent_signup_enabled is False
    assert Settings(stage="prod", secret_key="s" * 40, agent_signup=True).agent_signup_enabled is True


def test_wrong_credentials_are_not_a_signup(client):
    status, body, _ = signup(client, headers={"Authorization": "Bearer not-a-session"})
    assert (status, body["code"]) == (401, "AUTH_FAILED")
    assert list(ApiKey.scan()) == []


# --- claiming --------------------------------------------------------------------------------

def test_a_signed_in_user_claims_a_key_only_account(client):
    created = signup(client, {"name": "agent"})[1]
    key = created["api_key"]
    other = call(client, "POST", "/auth/api-key", {"name": "agent-2"}, token=key)[1]
    share = share_site(client, key, name="agent work")
    spike_ids = [call(client, "POST", "/spikes", {"type": "page", "projectKey": share["slug"], "comments": str(i)})[1]["id"]
                 for i in range(3)]

    human = sign_in(client, "claimer@example.com")
    status, body, _ = call(client, "POST", "/auth/link-key", {"api_key": key}, token=human)
    assert status == 200, body
    assert body["ok"] is True and body["claimed_account_id"] == created["account_id"]
    assert body["moved"] == {"keys": 2, "shares": 1, "spikes": 3}

    human_id = user_id_for("claimer@example.com")
    # The shares, spikes and keys are the user's now, seen with the session and with the keys.
    status, shares, _ = call(client, "GET", "/shares", token=human)
    assert status == 200 and [s["id"] for s in shares] == [share["share_id"]]
    assert shares[0]["spike_count"] == 3
    status, spikes, _ = call(client, "GET", "/spikes", token=human)
    assert sorted(s["id"] for s in spikes["data"]) == sorted(spike_ids)
    status, keys, _ = call(client, "GET", "/auth/api-keys", token=human)
    assert {k["key_id"] for k in keys} == {created["key_id"], other["key_id"]}
    for raw in (key, other["api_key"]):
        status, me, _ = call(client, "GET", "/me", token=raw)
        assert status == 200 and me["email"] == "claimer@example.com" and me["claimable"] is False
    assert User.get(human_id).active_shares == 1 and User.get(created["account_id"]).active_shares == 0
    assert User.get(created["account_id"]).merged_into == human_id
    assert Share.get(f"share#{share['share_id']}").owner_id == human_id
    stored = [item for spike_id in spike_ids for item in Spike.id_index.query(spike_id)]
    assert len(stored) == 3 and all(item.owner_id == human_id for item in stored)

    # New feedback on the share goes to the user; claiming again changes nothing.
    call(client, "POST", "/spikes", {"type": "page", "projectKey": share["slug"], "comments": "after"})
    assert len(call(client, "GET", "/spikes", token=human)[1]["data"]) == 4
    status, body, _ = call(client, "POST", "/auth/link-key", {"api_key": key}, token=human)
    assert status == 200 and body["moved"] == {"keys": 0, "shares": 0, "spikes": 0}
    # A client retrying after a lost answer is told the same account, with either key.
    assert body["claimed_account_id"] == created["account_id"]
    status, body, _ = call(client, "POST", "/auth/link-key", {"api_key": other["api_key"]}, token=human)
    assert (status, body["claimed_account_id"]) == (200, created["account_id"])


def test_an_interrupted_claim_is_finished_by_calling_again(client, monkeypatch):
    from chalicelib.store import spike_moves
    key = signup(client)[1]["api_key"]
    share = share_site(client, key)
    call(client, "POST", "/spikes", {"type": "page", "projectKey": share["slug"], "comments": "x"})
    human = sign_in(client, "claimer@example.com")

    def crash(*_args):
        raise RuntimeError("Lambda timed out")
    monkeypatch.setattr(spike_moves, "move_in_time", crash)  # dies after the shares moved
    assert call(client, "POST", "/auth/link-key", {"api_key": key}, token=human)[0] == 500
    monkeypatch.undo()
    status, body, _ = call(client, "POST", "/auth/link-key", {"api_key": key}, token=human)
    assert status == 200 and body["moved"]["spikes"] == 1 and body["moved"]["keys"] == 1
    assert len(call(client, "GET", "/spikes", token=human)[1]["data"]) == 1


def test_claiming_needs_a_session_and_a_key_only_account(client):
    key = signup(client)[1]["api_key"]
    status, body, _ = call(client, "POST", "/auth/link-key", {"api_key": key}, token=key)
    assert (status, body["code"], body["required_scope"]) == (403, "SCOPE_DENIED", "account:write")
    # Nobody signs in to a key-only account: the agent is told the way on (a claim), not `spikes login`.
    assert "POST /auth/link-key" in body["error"] and "spikes login" not in body["error"]
    for method, path, payload in (("GET", "/billing/checkout", None), ("PATCH", "/me", {"monthly_cap_cents": 5})):
        status, body, _ = call(client, method, path, payload, token=key)
        assert status == 403 and "POST /auth/link-key" in body["error"], (path, body)
    assert call(client, "POST", "/auth/link-key", {"api_key": key})[0] == 401

    owner = sign_in(client, "owner@example.com")
    owned_key = call(client, "POST", "/auth/api-key", {}, token=owner)[1]["api_key"]
    thief = sign_in(client, "thief@example.com")
    status, body, _ = call(client, "POST", "/auth/link-key", {"api_key": owned_key}, token=thief)
    assert (status, body["code"]) == (409, "CONFLICT")
    status, body, _ = call(client, "POST", "/auth/link-key", {"api_key": "sk_spikes_" + "a" * 59}, token=thief)
    assert (status, body["code"]) == (401, "AUTH_FAILED")
    status, body, _ = call(client, "POST", "/auth/link-key", {}, token=thief)
    assert status == 400 and body["details"][0]["field"] == "api_key"
