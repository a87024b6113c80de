"""The seventh keys review (docs/security.md, "The seventh keys review"): API keys, their
scopes, self-signup and the agent paths. Each test failed before its fix."""
from __future__ import annotations

from tests.conftest import call, sign_in


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

def test_self_signup_is_limited_in_all_not_only_per_client_network(client, env, monkeypatch):
    """Each key-only account holds the free tier's shares and spikes on the operator's bill. The
    only limit was per client network (5 an hour): a client with many networks (an IPv6 /48, a
    botnet) farmed accounts without end, 5 an hour on each."""
    from chalicelib.api import inputs
    from chalicelib.store.models import ApiKey, User
    env(RATE_AGENT_SIGNUPS_PER_HOUR="3")
    made = []
    for network in range(5):
        monkeypatch.setattr(inputs, "client_ip", lambda request, n=network: f"2001:db8:{n:x}::1")
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
