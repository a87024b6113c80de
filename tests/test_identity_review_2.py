"""The second identity review (docs/security.md, "The second identity review"): sign-in, keys,
their budgets and what answers tell. Each test failed before its fix."""
from __future__ import annotations

from tests.conftest import call, sign_in
from tests.test_agent_tier import agent, configured, post_spike  # noqa: F401 - fixtures
from tests.test_shares import share_site


# --- Credentials sent in a form the server does not read never sign up a new account ----------

def test_a_key_asked_for_with_unreadable_credentials_is_a_401_not_a_new_account(client):
    """`POST /auth/api-key` without credentials signs an agent up: a new key-only account. A
    signed-in user whose client sent the session without `Bearer ` (or under another scheme, or
    an empty header) was handed a `201` and a key of a new, empty account, as if it were a key
    of theirs: the shares made with it went to an account they did not know they had."""
    token = sign_in(client, "owner@example.com")
    for headers in ({"Authorization": token}, {"Authorization": f"Token {token}"},
                    {"Authorization": "Basic b3duZXI6c2VjcmV0"}, {"Authorization": "Bearer "},
                    {"X-API-Key": ""}):
        status, body, _ = call(client, "POST", "/auth/api-key", {"name": "ci"}, headers=headers)
        assert (status, body["code"]) == (401, "AUTH_FAILED"), (headers, status, body)
    status, listed, _ = call(client, "GET", "/auth/api-keys", token=token)
    assert (status, listed) == (200, [])
    status, created, _ = call(client, "POST", "/auth/api-key", {"name": "agent"})  # what the CLI sends
    assert status == 201 and created["api_key"].startswith("sk_spikes_")


# --- A key's spending cap bounds the keys it made ----------------------------------------------

def test_a_keys_spending_cap_bounds_the_keys_it_made_and_theirs(client, agent):
    """A key with `keys:manage` makes keys with at most its own cap, but each had a budget of its
    own: a `full` key capped at 2 cents (what an owner hands an agent to bound it) could mint
    keys and spend 2 cents again with each, up to the account's 100 live keys and 30 new ones an
    hour. What a key and every key under it spend now counts against its cap, as it stands."""
    token, _, _ = agent
    capped = call(client, "POST", "/auth/api-key", {"name": "agent", "monthly_cap_cents": 2}, token=token)[1]
    share = share_site(client, capped["api_key"], name="by key")  # 1 cent of its 2
    made = call(client, "POST", "/auth/api-key", {"name": "sub-agent"}, token=capped["api_key"])[1]
    assert made["monthly_cap_cents"] == 2  # inherited: a budget of its own, until now
    made_by_made = call(client, "POST", "/auth/api-key", {"name": "sub-sub"}, token=made["api_key"])[1]

    def spend(limit: int):
        stored = 0
        for n in range(limit):
            status, body, _ = post_spike(client, share["slug"], token=(made, made_by_made)[n % 2]["api_key"])
            if status != 201:
                return stored, (status, body["code"], body["cap"], body["monthly_cap_cents"])
            stored += 1
        return stored, None

    assert spend(40) == (10, (429, "BUDGET_EXCEEDED", "key", 2))  # the cent left, at 0.1 a spike
    assert call(client, "GET", "/usage", token=token)[1]["cost_this_period_cents"] == 2
    # The owner raises the agent's cap: the keys it made may spend the difference, no more.
    assert call(client, "PATCH", f"/auth/api-key/{capped['key_id']}", {"monthly_cap_cents": 3}, token=token)[0] == 200
    stored, refusal = spend(40)
    assert (stored, refusal[:3]) == (10, (429, "BUDGET_EXCEEDED", "key"))  # the sub-agent's own 2 are spent too
    # A key the owner's session makes answers to its own cap only.
    own = call(client, "POST", "/auth/api-key", {"name": "owner's", "monthly_cap_cents": 1}, token=token)[1]
    assert post_spike(client, share["slug"], token=own["api_key"])[0] == 201


def test_a_chain_of_keys_making_keys_is_bounded(client, user_token):
    """Each key a key makes answers to the caps of all the keys above it, one write each in the
    transaction of every charge: the chain is bounded (the owner's session starts a new one)."""
    key = call(client, "POST", "/auth/api-key", {"name": "0"}, token=user_token)[1]["api_key"]
    for depth in range(1, 11):
        status, body, _ = call(client, "POST", "/auth/api-key", {"name": str(depth)}, token=key)
        assert status == 201, (depth, body)
        key = body["api_key"]
    status, body, _ = call(client, "POST", "/auth/api-key", {"name": "11"}, token=key)
    assert (status, body["code"]) == (403, "SCOPE_DENIED"), body
    assert call(client, "POST", "/auth/api-key", {"name": "fresh"}, token=user_token)[0] == 201


# --- A sign-in answer tells its caller nothing of what others asked for --------------------------

def test_sign_in_answers_do_not_tell_how_many_links_others_asked_for(client, from_network):
    """`X-RateLimit-*` report the tightest budget a request used. On `/auth/login`,
    `/auth/recover` and `/auth/device/confirm` that was the address's (5 mails in 15 minutes,
    counted whoever asks), so a stranger asking once read in `X-RateLimit-Remaining` how many
    links the address had been sent lately from anywhere: that its owner had just signed in, or
    asked to recover the account. They now report the caller's own budget (its network's)."""
    from_network("198.51.100.7")  # the owner, at home
    for _ in range(2):
        assert call(client, "POST", "/auth/login", {"email": "owner@example.com"})[0] == 200
    for n, (path, body) in enumerate((("/auth/login", {}), ("/auth/recover", {}),
                                      ("/auth/device/confirm", {"user_code": "BCDF-GHJK"}))):
        from_network(f"203.0.113.{n + 1}")  # a stranger, each time from a network of its own
        status, _, headers = call(client, "POST", path, {"email": "owner@example.com", **body})
        assert status in (200, 404), (path, status)
        assert (headers["X-RateLimit-Limit"], headers["X-RateLimit-Remaining"]) == ("20", "19"), (path, headers)
