"""The second security review (docs/security.md, "Second review"): each test failed before its
fix. In-process, with the chalice test client and moto, like the first review's tests."""
from __future__ import annotations

from chalicelib.store.models import Share, User
from tests.conftest import call, sign_in
from tests.test_agent_signup import signup
from tests.test_shares import share_site


# --- 14. Only a full key claims its account ---------------------------------------------------

def test_a_narrower_key_cannot_claim_its_key_only_account(client):
    created = signup(client)[1]
    full_key = created["api_key"]
    share = share_site(client, full_key, name="agent work")
    # The agent hands a read-only key to a reviewer (or leaks it in a CI log).
    read_key = call(client, "POST", "/auth/api-key", {"name": "reader", "scopes": "read"}, token=full_key)[1]["api_key"]
    spikes_key = call(client, "POST", "/auth/api-key", {"scopes": "spikes:write"}, token=full_key)[1]["api_key"]

    thief = sign_in(client, "thief@example.com")
    for narrow in (read_key, spikes_key):
        status, body, _ = call(client, "POST", "/auth/link-key", {"api_key": narrow}, token=thief)
        assert (status, body["code"], body["required_scope"]) == (403, "SCOPE_DENIED", "full"), body
    # Nothing moved: the account, its share and its keys are still the agent's.
    assert User.get(created["account_id"]).merged_into is None
    assert Share.get(f"share#{share['share_id']}").owner_id == created["account_id"]
    assert call(client, "GET", "/shares", token=thief)[1] == []
    status, me, _ = call(client, "GET", "/me", token=full_key)
    assert status == 200 and me["claimable"] is True

    # The full key still claims it.
    human = sign_in(client, "claimer@example.com")
    status, body, _ = call(client, "POST", "/auth/link-key", {"api_key": full_key}, token=human)
    assert status == 200 and body["moved"]["shares"] == 1
