"""GET /shares counts per account (docs/security.md, 309): one call reads up to 10,000 shares and
their totals, hundreds of reads, and nothing bounded how often an account asked."""
from __future__ import annotations

from tests.conftest import call, sign_in
from tests.factories import make_share

CLI = {"User-Agent": "ureq/2.12.1"}


def test_share_listings_are_limited_per_account_and_a_refused_one_reads_no_share(client, env, from_network,
                                                                                 dynamodb_calls):
    from tests.test_apikeys import create_key
    env(RATE_SHARE_LISTINGS_PER_MINUTE="3")
    make_share("owner@example.com", "mine")
    laptop, ci = sign_in(client, "owner@example.com"), sign_in(client, "owner@example.com")
    key = create_key(client, laptop, scopes="shares:read")["api_key"]
    other = sign_in(client, "other@example.com")
    from_network("203.0.113.7")
    for token, remaining in ((laptop, "2"), (key, "1")):
        status, listed, headers = call(client, "GET", "/shares", token=token, headers=CLI)
        assert status == 200 and [share["slug"] for share in listed] == ["mine"]
        assert (headers["X-RateLimit-Limit"], headers["X-RateLimit-Remaining"]) == ("3", remaining)
    from_network("198.51.100.9")  # the same account elsewhere, with another credential: one budget
    assert call(client, "GET", "/shares?limit=1", token=ci)[0] == 200
    dynamodb_calls.clear()
    status, body, headers = call(client, "GET", "/shares", token=laptop)
    assert status == 429 and body["code"] == "RATE_LIMIT" and int(headers["Retry-After"]) == body["retry_after"] >= 1
    assert "Query" not in dynamodb_calls and "BatchGetItem" not in dynamodb_calls, dict(dynamodb_calls)
    # Another account on the same network lists as before; the account's other reads are not refused.
    assert call(client, "GET", "/shares", token=other)[0] == 200
    assert call(client, "GET", "/shares/mine?exported_spikes=false", token=laptop)[0] == 200
