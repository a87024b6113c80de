"""The seventh keys review (docs/security.md, "The seventh keys review"): API keys, their
scopes, self-signup and the agent paths. Each test failed before its fix."""
from __future__ import annotations

from tests.conftest import call, sign_in
from tests.test_agent_tier import agent, configured  # noqa: F401 - fixtures
from tests.test_outbound_webhooks import receiver  # noqa: F401 - fixture


# --- 152. A key asked for with a field the server does not know is refused ---------------------

def test_a_key_asked_for_with_an_unknown_field_is_refused_not_made_with_every_scope(client):
    """A misspelt limit (`scope` for `scopes`, `expires_in`, `cap_cents`) was ignored: the key
    was made `full`, with no expiry and no cap, and the answer (201) looked like success."""
    token = sign_in(client, "owner@example.com")
    for body in ({"name": "ci", "scope": "read"}, {"name": "ci", "expires_in": 3600},
                 {"name": "ci", "cap_cents": 5}, {"name": "ci", "Scopes": "read"}):
        status, refused, _ = call(client, "POST", "/auth/api-key", body, token=token)
        assert (status, refused["code"]) == (400, "VALIDATION_ERROR"), (body, status, refused)
        field = next(name for name in body if name != "name")
        assert [detail["field"] for detail in refused["details"]] == [field], refused
        assert "scopes" in refused["details"][0]["message"], refused  # says what it does take
    status, listed, _ = call(client, "GET", "/auth/api-keys", token=token)
    assert (status, listed) == (200, [])
    # Self-signup too: no account is made for a request that asked for something else.
    status, refused, _ = call(client, "POST", "/auth/api-key", {"scope": "read"})
    assert (status, refused["code"]) == (400, "VALIDATION_ERROR"), refused
    # What the CLI and the dashboard send is taken as before.
    for body in ({}, {"name": "agent"}, {"name": "ci", "scopes": "read", "expires_at": "2099-01-01T00:00:00Z",
                                         "monthly_cap_cents": 5}):
        status, created, _ = call(client, "POST", "/auth/api-key", body, token=token)
        assert status == 201, created
    assert created["scopes"] == "read" and created["monthly_cap_cents"] == 5


# --- 153. Self-signup is limited in all, not only per client network ----------------------------

def test_self_signup_is_limited_in_all_not_only_per_client_network(client, env, from_network):
    """Each key-only account holds the free tier's shares and spikes on the operator's bill. The
    only limit was per client network (5 an hour): a client with many networks (an IPv6 /48, a
    botnet) farmed accounts without end, 5 an hour on each."""
    from chalicelib.store.models import ApiKey, User
    env(RATE_AGENT_SIGNUPS_PER_HOUR="3")
    made = []
    for network in range(5):
        from_network(f"2001:db8:{network:x}::1")
        status, body, headers = call(client, "POST", "/auth/api-key", {})
        made.append(status)
        if status == 201:
            # The caller's headers describe its own network's budget, not how many others signed up.
            assert headers["X-RateLimit-Limit"] == "5", headers
    assert made == [201, 201, 201, 429, 429], made
    assert (body["code"], body["retry_after"] > 0, int(headers["Retry-After"]) > 0) == ("RATE_LIMIT", True, True)
    assert len(list(ApiKey.scan())) == len(list(User.scan())) == 3  # refused: nothing made
    # A signed-in user's keys are not signups.
    token = sign_in(client, "human@example.com")
    assert call(client, "POST", "/auth/api-key", {"name": "ci"}, token=token)[0] == 201


# --- 154. Pointing a share's webhook somewhere needs spikes:read ------------------------------

def test_a_key_that_cannot_read_feedback_cannot_point_a_webhook_at_itself(client, user_token, env, receiver):
    """A webhook's receiver gets every new spike whole, reviewers' e-mail addresses included. A key
    granted `shares:write` without `spikes:read` (a deploy agent that publishes shares), to which
    every listing and export leaves the addresses out, set any of the owner's shares' webhook to a
    URL of its own and was sent them all."""
    import json

    from tests.test_outbound_webhooks import _deliver
    from tests.test_shares import make_pro, share_site, upload
    env(WEBHOOK_ALLOW_LOOPBACK="true", WEBHOOK_TIMEOUT_SECONDS="3")
    make_pro("owner@example.com")
    share = share_site(client, user_token, "Checkout")
    publisher = call(client, "POST", "/auth/api-key", {"scopes": "shares:read shares:write"}, token=user_token)[1]
    key = publisher["api_key"]
    for method, path, body in (("PATCH", f"/shares/{share['share_id']}", {"webhook_url": receiver.url}),
                               ("POST", "/shares/uploads", {"name": "new", "webhook_url": receiver.url,
                                                            "files": [{"path": "index.html", "size": 5}]})):
        status, refused, _ = call(client, method, path, body, token=key)
        assert (status, refused["code"], refused["required_scope"]) == (403, "SCOPE_DENIED", "spikes:read"), refused
    status, refused, _ = upload(client, key, metadata={"name": "other", "webhook_url": receiver.url})
    assert (status, refused["code"]) == (403, "SCOPE_DENIED"), refused
    status, listed, _ = call(client, "GET", "/shares", token=user_token)
    assert [item["name"] for item in listed] == ["Checkout"] and listed[0]["webhook_url"] is None
    # Feedback with an address posted now reaches nobody's receiver.
    status, _, _ = call(client, "POST", "/spikes", {"type": "page", "projectKey": share["slug"], "comments": "hi",
                                                    "reviewer": {"id": "r1", "name": "Rae", "email": "rae@example.com"}})
    assert status == 201
    _deliver()
    assert receiver.requests == []
    # The key still publishes shares, and removes a webhook; one that reads feedback sets one.
    assert upload(client, key, metadata={"name": "plain"})[0] == 201
    assert call(client, "PATCH", f"/shares/{share['share_id']}", {"webhook_url": ""}, token=key)[0] == 200
    reader = call(client, "POST", "/auth/api-key", {"scopes": "shares:write spikes:read"}, token=user_token)[1]
    status, set_, _ = call(client, "PATCH", f"/shares/{share['share_id']}", {"webhook_url": receiver.url},
                           token=reader["api_key"])
    assert status == 200 and set_["webhook_secret"].startswith("whsec_"), set_
    call(client, "POST", "/spikes", {"type": "page", "projectKey": share["slug"], "comments": "again",
                                     "reviewer": {"id": "r1", "name": "Rae", "email": "rae@example.com"}})
    _deliver()
    [request] = receiver.requests
    assert json.loads(request["body"])["spike"]["reviewer"]["email"] == "rae@example.com"


# --- 155. A spending cap is told to its owner, not to whoever posts feedback --------------------

def test_a_reviewer_refused_by_the_owners_cap_is_not_told_the_cap(client, agent):
    """A post refused by an agent-tier account's cap answered every poster, a reviewer on the
    widget included, "This account reached its monthly spending cap of 1 cents; raise the cap"
    and `monthly_cap_cents`: the owner's billing settings, to anyone who has the page."""
    from tests.test_agent_tier import post_spike
    from tests.test_shares import share_site
    token, _, _ = agent
    share = share_site(client, token, "Pricing page")  # costs the cent the cap allows
    assert call(client, "PATCH", "/me", {"monthly_cap_cents": 1}, token=token)[0] == 200
    stranger = sign_in(client, "stranger@example.com")
    for credential in (None, stranger):
        status, refused, headers = post_spike(client, share["slug"], token=credential)
        assert (status, refused["code"], refused["cap"]) == (429, "BUDGET_EXCEEDED", "account"), refused
        assert "monthly_cap_cents" not in refused and " 1 cents" not in refused["error"], refused
        assert "try again after" in refused["error"].lower() and refused["period_ends"], refused
    # The owner's own post (its session, or a key of its account) is told the cap, as before.
    key = call(client, "POST", "/auth/api-key", {"name": "ci"}, token=token)[1]["api_key"]
    for credential in (token, key):
        status, refused, _ = post_spike(client, share["slug"], token=credential)
        assert (status, refused["monthly_cap_cents"]) == (429, 1), refused
        assert "spending cap of 1 cents" in refused["error"], refused
