"""Whose cursors a claim carries on (docs/security.md 310, 332): a cursor of a claimed account is
the claimer's to page on, with a session or with a key now theirs, and nobody else's: not
another person's, not the key of another claimed account (its ``claimed_from`` names its own
account only), and never on another listing than the one it was given for."""
from __future__ import annotations

from chalicelib.store import shares as share_store
from tests.conftest import call, sign_in
from tests.test_claim_reads import _agent, _claim, _first_page

LISTINGS = ("/spikes?limit=1", "/shares?limit=1", "/auth/api-keys?limit=1")


def test_a_claimed_accounts_cursor_opens_no_other_account_nor_another_listing(client):
    agent = _agent(client)
    key, account = agent["api_key"], agent["account_id"]
    for i in range(3):
        share_store.insert(share_store.new(f"sh_carried{i:05d}", slug=f"carried-site-{i}", owner_id=account,
                                           created_at=f"2026-11-01T00:00:0{i}.000000Z", owner_tier="free"),
                           account, under_limit=None)
        assert call(client, "POST", "/spikes", {"type": "page", "projectKey": "carried-notes", "id": f"own-{i}"},
                    token=key)[0] == 201
        if i:
            assert call(client, "POST", "/auth/api-key", {"name": f"made {i}"}, token=key)[0] == 201
    cursors = {path: _first_page(client, path, key)[1] for path in LISTINGS}
    human = sign_in(client, "carried-claimer@example.com")
    _claim(client, human, key)
    # Another agent claimed by another person: its key carries a claimed_from, of its own account.
    other_agent = _agent(client)
    other_human = sign_in(client, "carried-other@example.com")
    _claim(client, other_human, other_agent["api_key"])
    for reader in (other_agent["api_key"], other_human):
        for path, cursor in cursors.items():
            assert call(client, "GET", f"{path}&cursor={cursor}", token=reader)[0] == 400, path
    for reader in (human, key):
        for path, cursor in cursors.items():
            assert call(client, "GET", f"{path}&cursor={cursor}", token=reader)[0] == 200, path
            for other in LISTINGS:
                if other != path:
                    assert call(client, "GET", f"{other}&cursor={cursor}", token=reader)[0] == 400, (path, other)
        # Nor on a project's listing, which no claim binds to an account.
        assert call(client, "GET", f"/spikes?project=carried-notes&limit=1&cursor={cursors[LISTINGS[0]]}",
                    token=reader)[0] == 400
