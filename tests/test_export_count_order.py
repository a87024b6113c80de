"""An account's export of feedback surely not its own is counted with its network before ownership
is read (docs/security.md 342), as a listing is (341): a refused one cost the account read that
tells a claim's owner, and the password's check."""
from __future__ import annotations

from chalicelib.services import ownership
from chalicelib.store import shares as share_store
from tests.conftest import call, sign_in
from tests.factories import make_share

EXPORTS = (("GET", "/spikes/export?format=jsonl&project={}"), ("POST", "/exports?format=jsonl&project={}"))


def test_an_export_surely_not_the_callers_is_refused_before_ownership_is_read(client, env, from_network,
                                                                            monkeypatch):
    env(RATE_EXPORTS_PER_MINUTE="2")
    make_share("owner@example.com", "theirs")
    make_share("owner@example.com", "hidden", status=share_store.LOCKED)  # private: its owner's alone
    owner = sign_in(client, "owner@example.com")
    accounts_read = []
    reading = ownership.account_store.merged_into
    monkeypatch.setattr(ownership.account_store, "merged_into",
                        lambda account_id: accounts_read.append(account_id) or reading(account_id))
    for n, (method, path) in enumerate(EXPORTS):
        from_network(f"203.0.113.{n + 1}")
        for _ in range(2):  # the network's two, without a credential
            assert call(client, method, path.format("theirs"))[0] in (200, 202)
        for project in ("theirs", "hidden", "nobodys-project"):
            # A fresh account each: its own export counter has its two left, the network's none.
            stranger = sign_in(client, f"stranger-{n}-{project}@example.com")
            status, body, headers = call(client, method, path.format(project), token=stranger)
            # One answer whether a private share is there or not: refused before its access is asked.
            assert status == 429 and body["code"] == "RATE_LIMIT", (method, project, body)
            assert int(headers["Retry-After"]) == body["retry_after"] >= 1
            assert accounts_read == [], (method, project)  # nor whether a claim joined the owner to the caller
        # The owner on the same network exports its shares as before: counted per account alone.
        status, body, _ = call(client, method, path.format("hidden"), token=owner)
        assert status in (200, 202), (method, body)
    # Under the limit, a private share not the caller's is still the 404 of one that does not exist.
    for n, (method, path) in enumerate(EXPORTS):
        from_network(f"198.51.100.{n + 1}")
        stranger = sign_in(client, f"under-{n}@example.com")
        status, body, _ = call(client, method, path.format("hidden"), token=stranger)
        assert status == 404 and body["code"] == "NOT_FOUND", (method, body)
