"""GET /spikes with a credential on feedback surely not the caller's is counted before ownership
is read (docs/security.md 341): a refused page cost the account read that tells a claim's owner."""
from __future__ import annotations

from chalicelib.services import ownership
from chalicelib.store import shares as share_store
from tests.conftest import call, sign_in
from tests.factories import make_share


def test_a_listing_surely_not_the_callers_is_refused_before_ownership_is_read(client, env, from_network,
                                                                              monkeypatch):
    env(RATE_LISTINGS_PER_MINUTE="1")
    make_share("owner@example.com", "theirs")
    make_share("owner@example.com", "hidden", status=share_store.LOCKED)  # private: its owner's alone
    owner, stranger = sign_in(client, "owner@example.com"), sign_in(client, "stranger@example.com")
    from_network("203.0.113.7")
    assert call(client, "GET", "/spikes?project=theirs")[0] == 200  # the network's one, without a credential
    accounts_read = []
    reading = ownership.account_store.merged_into
    monkeypatch.setattr(ownership.account_store, "merged_into",
                        lambda account_id: accounts_read.append(account_id) or reading(account_id))
    for project in ("theirs", "hidden", "nobodys-project"):
        status, body, headers = call(client, "GET", f"/spikes?project={project}", token=stranger)
        # One answer whether a private share is there or not: refused before its access is asked.
        assert status == 429 and body["code"] == "RATE_LIMIT", (project, body)
        assert int(headers["Retry-After"]) == body["retry_after"] >= 1
        assert accounts_read == [], project  # nor whether a claim joined the share's owner to the caller
    # The owner on the same network lists its shares as before: uncounted, never refused.
    for project in ("theirs", "hidden"):
        status, body, headers = call(client, "GET", f"/spikes?project={project}", token=owner)
        assert status == 200 and "X-RateLimit-Limit" not in headers, (project, body)
    # Under the limit, a private share not the caller's is still the 404 of one that does not exist.
    from_network("198.51.100.9")
    status, body, _ = call(client, "GET", "/spikes?project=hidden", token=stranger)
    assert status == 404 and body["code"] == "NOT_FOUND", body
