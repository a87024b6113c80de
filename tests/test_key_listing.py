"""GET /auth/api-keys is bounded (docs/security.md, 61): one Query page of the owner index per
request, a bare array as the CLI parses it, the next page's cursor in X-Next-Cursor. Revoked
keys stay listed, and churn piled them up until the listing passed Lambda's 6 MB. On moto and
DynamoDB Local."""
from __future__ import annotations

import pytest

from chalicelib.services.accounts import user_id_for
from chalicelib.store.models import ApiKey
from tests.conftest import call, sign_in

ENTRY = {"key_id", "key_prefix", "name", "scopes", "monthly_cap_cents", "revoked_at", "expires_at", "created_at",
         "last_used_at"}


def _keys(email: str, count: int) -> list:
    """``count`` keys of ``email``'s account, stored as churn leaves them (most revoked), oldest
    first."""
    ids = []
    for i in range(count):
        key_id = "key_" + "".join("abcdefghijklmnop"[int(c)] for c in f"{i:016d}")
        ApiKey(key_id, key_hash="h", key_prefix="p", user_id=user_id_for(email), name=f"k{i}",
               created_at=f"2026-06-01T00:00:{i // 10:02d}.{i % 10:03d}Z",
               revoked_at=None if i % 7 == 0 else "2026-06-02T00:00:00.000Z").save()
        ids.append(key_id)
    return ids


def _walk(client, session: str, limit: int, headers=None) -> list:
    pages, cursor = [], None
    for _ in range(50):
        path = f"/auth/api-keys?limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        status, body, answer = call(client, "GET", path, token=session, headers=headers)
        assert status == 200, body
        assert isinstance(body, list) and len(body) <= limit
        pages.append(body)
        cursor = answer.get("X-Next-Cursor") or answer.get("x-next-cursor")
        if not cursor:
            return pages
    raise AssertionError("the cursor never ended")


def test_the_listing_pages_and_a_cursor_walk_returns_each_key_once(backend_client):
    client = backend_client
    session = sign_in(client, "lister@example.com")
    ids = _keys("lister@example.com", 23)
    pages = _walk(client, session, 5)
    assert [len(page) for page in pages] == [5, 5, 5, 5, 3]
    listed = [entry["key_id"] for page in pages for entry in page]
    assert listed == list(reversed(ids))  # newest first, each once
    assert all(set(entry) == ENTRY for page in pages for entry in page)
    assert [len(page) for page in _walk(client, session, 23)] == [23]  # an exact fit ends without a cursor


def test_without_a_limit_a_page_of_100_and_the_cli_gets_1000(backend_client):
    """The default answer stays a bare array of the same entries; a client that reads one page
    only (the CLI's `spikes auth list-keys`, user agent ureq) gets the largest page."""
    client = backend_client
    session = sign_in(client, "many-keys@example.com")
    ids = _keys("many-keys@example.com", 105)
    status, body, headers = call(client, "GET", "/auth/api-keys", token=session)
    assert status == 200 and [entry["key_id"] for entry in body] == list(reversed(ids))[:100]
    assert headers.get("X-Next-Cursor") or headers.get("x-next-cursor")
    status, body, headers = call(client, "GET", "/auth/api-keys", token=session, headers={"User-Agent": "ureq/2.9.7"})
    assert status == 200 and len(body) == 105
    assert not (headers.get("X-Next-Cursor") or headers.get("x-next-cursor"))


@pytest.mark.parametrize("query", ["limit=0", "limit=-3", "limit=ten", "cursor=not-a-cursor",
                                   "cursor=eyJzIjoia2V5cyJ9.AAAA"])
def test_a_bad_limit_or_cursor_is_a_400_in_the_envelope(client, query):
    session = sign_in(client, "bad-page@example.com")
    status, body, _ = call(client, "GET", f"/auth/api-keys?{query}", token=session)
    assert status == 400 and body["code"] == "VALIDATION_ERROR", body
    assert body["error"] and body["details"][0]["field"] in ("limit", "cursor")


def test_a_cursor_is_bound_to_its_account(client):
    mine = sign_in(client, "cursor-owner@example.com")
    _keys("cursor-owner@example.com", 3)
    _, _, headers = call(client, "GET", "/auth/api-keys?limit=1", token=mine)
    cursor = headers.get("X-Next-Cursor") or headers.get("x-next-cursor")
    assert cursor
    theirs = sign_in(client, "cursor-thief@example.com")
    status, body, _ = call(client, "GET", f"/auth/api-keys?cursor={cursor}", token=theirs)
    assert (status, body["code"]) == (400, "VALIDATION_ERROR"), body
