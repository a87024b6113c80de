"""GET /spikes read without a credential is rate limited per client network (docs/security.md,
257): a public project key is in every page the widget is on, and each page of a listing is
Queries billed to the operator, so paging one without end was a cost lever for anyone."""
from __future__ import annotations

from chalicelib.services import targets
from tests.conftest import call, sign_in, sign_up_agents
from tests.factories import make_share

CLI = {"User-Agent": "ureq/2.12.1"}


def test_listings_without_a_credential_are_limited_per_network_and_a_refused_one_reads_nothing(
        client, env, from_network, dynamodb_calls):
    env(RATE_LISTINGS_PER_MINUTE="3")
    assert call(client, "POST", "/spikes", {"type": "page", "projectKey": "public-site", "comments": "hi"})[0] == 201
    from_network("203.0.113.7")
    for remaining in ("2", "1", "0"):
        status, body, headers = call(client, "GET", "/spikes?project=public-site&limit=1")
        assert status == 200 and len(body["data"]) == 1
        assert (headers["X-RateLimit-Limit"], headers["X-RateLimit-Remaining"]) == ("3", remaining)
    targets.forget()  # a cold function: a share's lookup before the count would be a read here
    dynamodb_calls.clear()
    status, body, headers = call(client, "GET", "/spikes?project=public-site")
    assert status == 429 and body == {"error": "Rate limit exceeded", "code": "RATE_LIMIT",
                                      "retry_after": body["retry_after"], "request_id": body["request_id"]}
    assert int(headers["Retry-After"]) == body["retry_after"] >= 1 and headers["X-RateLimit-Remaining"] == "0"
    # Only the limit's own counter was written: no share, no spike was read.
    assert set(dynamodb_calls) <= {"UpdateItem"}, dict(dynamodb_calls)
    # `spikes pull --from` (no credential) is the same listing, and counted with it.
    assert call(client, "GET", "/spikes?project=public-site", headers=CLI)[0] == 429
    # Another network keeps its own allowance; one IPv6 address's /64 shares one.
    from_network("198.51.100.9")
    assert call(client, "GET", "/spikes?project=public-site", headers=CLI)[0] == 200
    from_network("2001:db8::1")
    assert [call(client, "GET", "/spikes?project=public-site")[0] for _ in range(3)] == [200] * 3
    from_network("2001:db8::2")
    assert call(client, "GET", "/spikes?project=public-site")[0] == 429


def test_a_share_password_holders_listings_count_with_the_network(client, env, from_network):
    env(RATE_LISTINGS_PER_MINUTE="2")
    token = sign_in(client, "owner@example.com")
    status, share, _ = call(client, "PATCH", f"/shares/{make_share('owner@example.com', 'closed', tier='pro').share_id}",
                            {"password": "open sesame"}, token=token)
    assert status == 200, share
    from_network("203.0.113.7")
    password = {"X-Share-Password": "open sesame"}
    assert [call(client, "GET", "/spikes?project=closed", headers=password)[0] for _ in range(3)] == [200, 200, 429]
    assert call(client, "GET", "/spikes?project=closed&password=open%20sesame")[0] == 429
    # The owner, on the same network, reads with their session as before.
    assert call(client, "GET", "/spikes?project=closed", token=token)[0] == 200


def test_callers_with_a_credential_are_not_limited_by_it(client, env, from_network):
    env(RATE_LISTINGS_PER_MINUTE="1")
    make_share("owner@example.com", "owned")
    token = sign_in(client, "owner@example.com")
    status, key, _ = call(client, "POST", "/auth/api-key", {"name": "agent"}, token=token)
    assert status == 201, key
    from_network("203.0.113.7")
    assert call(client, "GET", "/spikes?project=owned")[0] == 200  # the network's one listing
    assert call(client, "GET", "/spikes?project=owned")[0] == 429
    for _ in range(3):
        # The dashboard (a session), an agent's key, the CLI's pull, the MCP server's get_spikes,
        # the CLI's push (?token=, a bare array) and the admin token: as before, uncounted.
        for path, kwargs in (("/spikes?project=owned&limit=20", {"token": token}),
                             ("/spikes?project=owned", {"token": key["api_key"]}),
                             ("/spikes", {"token": token, "headers": CLI}),
                             ("/spikes?page=&rating=&resolved=false", {"token": key["api_key"], "headers": CLI}),
                             (f"/spikes?token={token}", {"headers": CLI}),
                             ("/spikes?project=owned&token=admin-test-token", {})):
            status, body, headers = call(client, "GET", path, **kwargs)
            assert status == 200 and "X-RateLimit-Limit" not in headers, (path, status, body)
    assert isinstance(call(client, "GET", f"/spikes?token={token}", headers=CLI)[1], list)


def test_a_credential_on_feedback_not_its_own_counts_with_its_network(client, env, from_network, dynamodb_calls):
    """An agent's signup (no e-mail, key-only) or any free account's session paged someone else's
    public project uncounted (docs/security.md, 307): it now counts on its network's counter, the
    anonymous callers' there, and a refused page reads no spike."""
    env(RATE_LISTINGS_PER_MINUTE="3")
    make_share("owner@example.com", "theirs")
    owner = sign_in(client, "owner@example.com")
    assert call(client, "POST", "/spikes", {"type": "page", "projectKey": "public-site", "comments": "hi"})[0] == 201
    from_network("203.0.113.7")
    [agent_key] = sign_up_agents(client, 1)
    stranger = sign_in(client, "stranger@example.com")
    assert call(client, "GET", "/spikes?project=theirs")[0] == 200  # the network's first, without a credential
    for path, token, remaining in (("/spikes?project=theirs&limit=1", agent_key, "1"),
                                   ("/spikes?project=public-site", stranger, "0")):
        status, body, headers = call(client, "GET", path, token=token)
        assert status == 200 and (headers["X-RateLimit-Limit"], headers["X-RateLimit-Remaining"]) == ("3", remaining)
    dynamodb_calls.clear()
    status, body, headers = call(client, "GET", "/spikes?project=public-site", token=agent_key)
    assert status == 429 and body["code"] == "RATE_LIMIT" and int(headers["Retry-After"]) == body["retry_after"] >= 1
    assert "Query" not in dynamodb_calls, dict(dynamodb_calls)  # no spike read
    assert call(client, "GET", f"/spikes?project=theirs&token={stranger}", headers=CLI)[0] == 429  # the push's array too
    # Their own feedback (no ?project=), the share's owner and the admin on the same network: as before.
    for path, token in (("/spikes", agent_key), ("/spikes", stranger), ("/spikes?project=theirs", owner),
                        ("/spikes?project=public-site", "admin-test-token")):
        status, body, headers = call(client, "GET", path, token=token)
        assert status == 200 and "X-RateLimit-Limit" not in headers, (path, body)
    # Another network: the stranger's session reads again (counted per network, not per account).
    from_network("198.51.100.9")
    assert call(client, "GET", "/spikes?project=theirs", token=stranger)[0] == 200
