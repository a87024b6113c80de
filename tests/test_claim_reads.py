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


def test_a_share_listing_paged_across_a_claim_carries_on(client, monkeypatch):
    agent = _agent(client)
    for i in range(3):
        share_store.insert(share_store.new(f"sh_agent{i:07d}", slug=f"agent-site-{i}", owner_id=agent["account_id"],
                                           created_at=f"2026-11-01T00:00:0{i}.000000Z", owner_tier="free"),
                           agent["account_id"], under_limit=None)
    status, first, headers = call(client, "GET", "/shares?limit=1", token=agent["api_key"])
    assert status == 200 and [share["slug"] for share in first] == ["agent-site-2"], first
    human = sign_in(client, "claimer@example.com")
    _claim(client, human, agent["api_key"])
    # The key's own account's cursor is known claimed from the key (claimed_from): no read of it.
    from chalicelib.services import ownership
    asked, claimed_into = [], ownership.claimed_into
    monkeypatch.setattr(ownership, "claimed_into", lambda *args: asked.append(args) or claimed_into(*args))
    listed, cursor = [], headers["X-Next-Cursor"]
    for _ in range(5):  # bounded: two pages are left
        status, page, headers = call(client, "GET", f"/shares?limit=1&cursor={cursor}", token=agent["api_key"])
        assert status == 200, page
        listed += [share["slug"] for share in page]
        cursor = headers.get("X-Next-Cursor")
        if cursor is None:
            break
    assert listed == ["agent-site-1", "agent-site-0"] and asked == []
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


def _pages(client, path: str, cursor: str, token: str) -> list:
    """What ``path``'s listing shows from ``cursor`` on, page by page (bounded), as ``token``."""
    listed = []
    for _ in range(10):
        status, page, headers = call(client, "GET", f"{path}&cursor={cursor}", token=token)
        assert status == 200, (path, page)
        items = page["data"] if isinstance(page, dict) else page
        listed += [item.get("id") or item.get("key_id") or item.get("slug") for item in items]
        cursor = page["next_cursor"] if isinstance(page, dict) else headers.get("X-Next-Cursor")
        if cursor is None:
            return listed
    raise AssertionError(f"{path} did not end")


def _first_page(client, path: str, token: str):
    """The first page's names and the cursor after it."""
    status, page, headers = call(client, "GET", path, token=token)
    assert status == 200, page
    items = page["data"] if isinstance(page, dict) else page
    cursor = page["next_cursor"] if isinstance(page, dict) else headers.get("X-Next-Cursor")
    assert cursor, (path, page)
    return [item.get("id") or item.get("key_id") or item.get("slug") for item in items], cursor


def test_the_claimers_session_carries_on_with_the_cursors_the_key_was_given(client):
    """A cursor is bound to the account it listed: after a claim the person, signed in, paging on
    with a cursor the agent's key was given (its spikes, shares or keys, now the person's) got
    400 INVALID_CURSOR; so did the key itself for spikes and keys (310 carried on shares only)."""
    agent = _agent(client)
    key, account = agent["api_key"], agent["account_id"]
    for i in range(3):
        share_store.insert(share_store.new(f"sh_cursor{i:06d}", slug=f"cursor-site-{i}", owner_id=account,
                                           created_at=f"2026-11-01T00:00:0{i}.000000Z", owner_tier="free"),
                           account, under_limit=None)
        assert call(client, "POST", "/spikes", {"type": "page", "projectKey": "agent-notes", "id": f"own-{i}"},
                    token=key)[0] == 201
        if i:
            assert call(client, "POST", "/auth/api-key", {"name": f"made {i}"}, token=key)[0] == 201
    listings = ("/spikes?limit=1", "/spikes?limit=1&resolved=false", "/shares?limit=1", "/auth/api-keys?limit=1")
    whole = {path: _pages(client, path, "", key) for path in listings}
    started = {path: _first_page(client, path, key) for path in listings}
    human = sign_in(client, "cursor-claimer@example.com")
    _claim(client, human, key)
    for reader in (human, key):
        for path, (first, cursor) in started.items():
            assert first + _pages(client, path, cursor, reader) == whole[path], (path, reader == key)
    # The claimed account's cursors are still nobody else's.
    other = sign_in(client, "cursor-stranger@example.com")
    for path, (_, cursor) in started.items():
        assert call(client, "GET", f"{path}&cursor={cursor}", token=other)[0] == 400, path
