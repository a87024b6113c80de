"""GET /spikes/export is rate limited (docs/security.md, 248): each export reads a whole partition
for up to 25 s and may leave a file in S3 for a day, so unbounded exports of a public project
were a cost and denial-of-service lever on the operator's account."""
from __future__ import annotations

from chalicelib.services import targets
from tests.conftest import call, sign_in, sign_up_agents
from tests.factories import make_share


def _export(client, project: str, token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.http.get(f"/spikes/export?project={project}&format=jsonl", headers=headers)


def test_anonymous_exports_are_limited_per_network_and_a_refused_one_reads_nothing(client, env, from_network,
                                                                                    dynamodb_calls):
    env(RATE_EXPORTS_PER_MINUTE="3")
    assert call(client, "POST", "/spikes", {"type": "page", "projectKey": "public-site", "comments": "hi"})[0] == 201
    from_network("203.0.113.7")
    for remaining in ("2", "1", "0"):
        response = _export(client, "public-site")
        assert response.status_code == 200 and len(response.body.splitlines()) == 1
        assert response.headers["X-RateLimit-Limit"] == "3"
        assert response.headers["X-RateLimit-Remaining"] == remaining
    targets.forget()  # a cold function: a share's lookup before the count would be a read here
    dynamodb_calls.clear()
    status, body, headers = call(client, "GET", "/spikes/export?project=public-site&format=jsonl")
    assert status == 429 and body == {"error": "Rate limit exceeded", "code": "RATE_LIMIT",
                                      "retry_after": body["retry_after"], "request_id": body["request_id"]}
    assert int(headers["Retry-After"]) == body["retry_after"] >= 1 and headers["X-RateLimit-Remaining"] == "0"
    # Only the limit's own counter was written: no share, no spike, no S3 staging was read.
    assert set(dynamodb_calls) <= {"UpdateItem"}, dict(dynamodb_calls)
    # Another network keeps its own allowance; one IPv6 address's /64 shares one.
    from_network("198.51.100.9")
    assert _export(client, "public-site").status_code == 200
    from_network("2001:db8::1")
    assert [_export(client, "public-site").status_code for _ in range(3)] == [200] * 3
    from_network("2001:db8::2")
    assert _export(client, "public-site").status_code == 429


def test_a_signed_in_callers_exports_count_per_account_whatever_the_network_or_credential(client, env, from_network):
    env(RATE_EXPORTS_PER_MINUTE="2")
    make_share("alice@example.com", "alice-site")
    make_share("bob@example.com", "bob-site")
    alice_laptop, alice_ci, bob = (sign_in(client, "alice@example.com"), sign_in(client, "alice@example.com"),
                                   sign_in(client, "bob@example.com"))
    from_network("203.0.113.7")  # one shared CI network
    assert _export(client, "alice-site", alice_laptop).status_code == 200
    from_network("198.51.100.9")
    assert _export(client, "alice-site", alice_ci).status_code == 200
    refused = _export(client, "alice-site", alice_laptop)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    # Another account on the same network is not refused for Alice's exports, nor is a
    # visitor there without credentials (who counts per network).
    from_network("203.0.113.7")
    answers = [_export(client, "bob-site", bob) for _ in range(2)]
    assert [a.status_code for a in answers] == [200, 200] and answers[0].headers["X-RateLimit-Limit"] == "2"
    assert _export(client, "alice-site").status_code == 200


def test_a_key_without_spikes_read_never_spends_its_accounts_exports(client, env, from_network):
    """A narrow key (leaked, say) was counted against its account before its scope was checked:
    its refused calls used up the owner's exports. Refusals that need no read now come first, and
    a key without spikes:read, which reads only what anyone may, counts per network (263)."""
    from chalicelib.crypto import hash_password
    from tests.test_apikeys import create_key
    env(RATE_EXPORTS_PER_MINUTE="2")
    owner = sign_in(client, "owner@example.com")
    make_share("owner@example.com", "vault", password_hash=hash_password("open sesame"))
    narrow = {"X-API-Key": create_key(client, owner, scopes="shares:read")["api_key"]}
    from_network("203.0.113.7")
    for _ in range(3):  # past the limit
        for method, path in (("GET", "/spikes/export"), ("POST", "/exports")):
            status, body, headers = call(client, method, path, headers=narrow)
            assert (status, body["code"]) == (403, "SCOPE_DENIED") and "X-RateLimit-Remaining" not in headers
    # Its exports of a project (its owner's private one: refused once the share is read) count with
    # its network's, not its account's.
    assert [call(client, "POST", "/exports?project=vault", headers=narrow)[0] for _ in range(3)] == [403, 403, 429]
    answer = _export(client, "vault", owner)
    assert answer.status_code == 200 and answer.headers["X-RateLimit-Remaining"] == "1"


def test_both_export_routes_report_the_export_budget_once_with_its_values(client, env):
    """GET /spikes/export and POST /exports count on one budget, and each answer reports it once,
    with its values: the HTTP layer reports the tightest limit a request used (the export routes
    also set the same headers themselves, which that overwrote)."""
    from chalicelib import clock
    env(RATE_EXPORTS_PER_MINUTE="3")
    make_share("alice@example.com", "alice-site")
    token = sign_in(client, "alice@example.com")
    answers = [call(client, "GET", "/spikes/export?project=alice-site&format=jsonl", token=token),
               call(client, "POST", "/exports?project=alice-site", token=token)]
    for remaining, (status, _, headers) in zip(("2", "1"), answers):
        assert status in (200, 202), status
        reported = sorted(name.lower() for name in headers if name.lower().startswith("x-ratelimit-"))
        assert reported == ["x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"], headers
        assert (headers["X-RateLimit-Limit"], headers["X-RateLimit-Remaining"]) == ("3", remaining)
        assert int(headers["X-RateLimit-Reset"]) >= clock.epoch()


def test_an_export_refused_for_its_parameters_counts_nothing(client, env, from_network):
    """A bad format, rating or project is refused before the export is counted (263): a caller
    (or a broken script) sending them without end does not spend the export allowance of its
    network, or of its account."""
    env(RATE_EXPORTS_PER_MINUTE="2")
    make_share("alice@example.com", "alice-site")
    token = sign_in(client, "alice@example.com")
    from_network("203.0.113.7")
    for query in ("project=alice-site&format=xml", "project=alice-site&rating=maybe", "project=" + "p" * 300):
        for method, path in (("GET", "/spikes/export"), ("POST", "/exports")):
            for credential in (token, None):
                status, body, headers = call(client, method, f"{path}?{query}", token=credential)
                assert (status, body["code"]) == (400, "VALIDATION_ERROR"), (method, query, body)
                assert "X-RateLimit-Remaining" not in headers
    assert _export(client, "alice-site", token).headers["X-RateLimit-Remaining"] == "1"
    assert _export(client, "alice-site").headers["X-RateLimit-Remaining"] == "1"


def test_accounts_exporting_feedback_not_their_own_count_with_their_network_too(client, env, from_network):
    """Agent signups (no e-mail, key-only accounts, 5 an hour per network) each counted their
    exports of someone else's public project per account: a few signups multiplied the network's
    exports, and what they read, past what 284 bounds (docs/security.md, 308)."""
    env(RATE_EXPORTS_PER_MINUTE="2", RATE_AGENT_SIGNUP_PER_HOUR="10")
    make_share("owner@example.com", "theirs")
    owner = sign_in(client, "owner@example.com")
    from_network("203.0.113.7")
    agents = sign_up_agents(client, 3)
    first = _export(client, "theirs", agents[0])
    assert first.status_code == 200 and first.headers["X-RateLimit-Remaining"] == "1"
    status, body, headers = call(client, "POST", "/exports?project=theirs", token=agents[1])
    assert status == 202 and headers["X-RateLimit-Remaining"] == "0", body
    refused = _export(client, "theirs", agents[2])
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert call(client, "POST", "/exports?project=theirs", token=agents[2])[0] == 429
    assert _export(client, "theirs").status_code == 429  # the network's, without a credential too
    # Their own feedback, and the share's owner on the same network, count per account as before.
    assert _export(client, "theirs", owner).status_code == 200
    assert call(client, "GET", "/spikes/export?format=jsonl", token=agents[0])[0] == 200
    # Another network: an account with budget left exports again.
    from_network("198.51.100.9")
    assert _export(client, "theirs", agents[1]).status_code == 200
