"""The second identity review (docs/security.md, "The second identity review"): sign-in, keys,
their budgets and what answers tell. Each test failed before its fix."""
from __future__ import annotations

from tests.conftest import call, sign_in


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
