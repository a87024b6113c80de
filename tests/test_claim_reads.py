"""What a key-only account was reading carries on once a person claims it (docs/security.md 310,
311): its key then authenticates as the person, and the share listing's cursor and the exports it
started were bound to the account it was made for."""
from __future__ import annotations

from chalicelib.store import shares as share_store
from tests.conftest import call, sign_in


def _agent(client) -> dict:
    status, created, _ = call(client, "POST", "/auth/api-key", {"name": "agent"})
    assert status == 201, created
    return created


def _claim(client, human: str, raw: str) -> None:
    status, body, _ = call(client, "POST", "/auth/link-key", {"api_key": raw}, token=human)
    assert status == 200, body


def test_a_share_listing_paged_across_a_claim_carries_on(client):
    agent = _agent(client)
    for i in range(3):
        share_store.insert(share_store.new(f"sh_agent{i:07d}", slug=f"agent-site-{i}", owner_id=agent["account_id"],
                                           created_at=f"2026-11-01T00:00:0{i}.000000Z", owner_tier="free"),
                           agent["account_id"], under_limit=None)
    status, first, headers = call(client, "GET", "/shares?limit=1", token=agent["api_key"])
    assert status == 200 and [share["slug"] for share in first] == ["agent-site-2"], first
    human = sign_in(client, "claimer@example.com")
    _claim(client, human, agent["api_key"])
    listed, cursor = [], headers["X-Next-Cursor"]
    for _ in range(5):  # bounded: two pages are left
        status, page, headers = call(client, "GET", f"/shares?limit=1&cursor={cursor}", token=agent["api_key"])
        assert status == 200, page
        listed += [share["slug"] for share in page]
        cursor = headers.get("X-Next-Cursor")
        if cursor is None:
            break
    assert listed == ["agent-site-1", "agent-site-0"]
    # Anyone else's cursor is still refused.
    other = sign_in(client, "other@example.com")
    assert call(client, "GET", "/shares?limit=1&cursor=" + call(
        client, "GET", "/shares?limit=1", token=human)[2]["X-Next-Cursor"], token=other)[0] == 400


def test_exports_a_key_only_account_started_are_read_after_its_claim(client):
    agent = _agent(client)
    key = agent["api_key"]
    assert call(client, "POST", "/spikes", {"type": "page", "projectKey": "agent-project", "comments": "mine"},
                token=key)[0] == 201
    started = {}
    for name, query in (("own", ""), ("public", "?project=public-site")):
        status, shown, _ = call(client, "POST", f"/exports{query}", token=key)
        assert status == 202, shown
        started[name] = shown["id"]
    human = sign_in(client, "claimer@example.com")
    _claim(client, human, key)
    for name, export_id in started.items():
        for reader in (key, human):
            status, shown, _ = call(client, "GET", f"/exports/{export_id}", token=reader)
            assert status == 200 and shown["status"] == "done", (name, reader == key, shown)
    # Another person, and another key of the claimer's, are strangers to them.
    other = sign_in(client, "other@example.com")
    status, second, _ = call(client, "POST", "/auth/api-key", {"name": "second"}, token=human)
    assert status == 201, second
    for reader in (other, second["api_key"]):
        assert [call(client, "GET", f"/exports/{export_id}", token=reader)[0] for export_id in started.values()] == \
            [404, 404]
