"""The agent tier's money paths around a claim, and self-signup's order of checks
(docs/security.md, 169-172). Each test failed before its fix."""
from __future__ import annotations

from tests.conftest import call


# --- 169. A refused signup takes none of the signup allowance ------------------------------------

def test_an_invalid_signup_takes_none_of_the_clients_or_everyones_allowance(client, env):
    """Self-signup counted the request against the client's and everyone's allowance before it
    read `scopes` and `expires_at`: a client's mistakes used up its own hour, and a few invalid
    requests from anywhere used up everyone's, turning away every other agent."""
    from chalicelib.store.models import ApiKey, User
    env(RATE_AGENT_SIGNUP_PER_HOUR="1", RATE_AGENT_SIGNUPS_PER_HOUR="1")
    for body in ({"scopes": "reed"}, {"scopes": "read", "expires_at": "2001-01-01T00:00:00Z"},
                 {"expires_at": "2001-01-01T00:00:00Z"}):
        status, refused, _ = call(client, "POST", "/auth/api-key", body)
        assert (status, refused["code"]) == (400, "VALIDATION_ERROR"), (body, refused)
    assert list(ApiKey.scan()) == [] and list(User.scan()) == []
    status, created, _ = call(client, "POST", "/auth/api-key", {"scopes": "read"})
    assert status == 201, created
    status, refused, _ = call(client, "POST", "/auth/api-key", {})
    assert (status, refused["code"]) == (429, "RATE_LIMIT"), refused  # the limits still count valid signups
