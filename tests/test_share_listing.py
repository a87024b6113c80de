"""GET /shares is bounded (docs/security.md 305): a Pro account has no share limit, and the
listing read every share of the owner, and each one's counters, into one answer: thousands of
shares outlasted the function (25 s) or outweighed the answer (6 MB), and API Gateway answered
a 5xx every time. The CLI still gets one bare array (it never pages); the array ends short of
time and weight with X-Next-Cursor, and ``?limit=`` / ``?cursor=`` page for those who do.
On moto and on DynamoDB Local (backend_client)."""
from __future__ import annotations

import json
from typing import List, Optional, Tuple

import pytest
from chalice.local import LambdaContext

from chalicelib import lambda_answer
from chalicelib.api import shares as shares_api
from chalicelib.services import share_listing
from chalicelib.services.accounts import user_id_for
from chalicelib.store import spike_counters
from chalicelib.store import shares as share_store
from chalicelib.store.models import LedgerItem
from tests.conftest import call, sign_in
from tests.factories import make_share, make_user

OWNER = "many@example.com"
SHARES = 30
DELETING = {3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 20}  # a run longer than a read, and one alone


def _stored_share(owner_id: str, i: int, status: str) -> str:
    share = share_store.new(f"sh_{i:012d}", slug=f"site-{i}", owner_id=owner_id, name=f"Site {i}",
                            created_at=f"2026-11-01T00:00:{i:02d}.000000Z", status=status, owner_tier="pro",
                            files={"index.html": {"size": 10, "type": "text/html"}}, file_count=1, total_bytes=10)
    share_store.insert(share, owner_id, under_limit=None)
    LedgerItem(spike_counters.share_total_key(share.share_id), count=i).save()  # i spikes, as counted
    return share.share_id


@pytest.fixture
def many_shares(backend_client) -> Tuple[str, List[str]]:
    """A Pro owner's shares, oldest first ``sh_000000000000``; those in DELETING are being deleted.
    Returns the owner's token and the ids GET /shares lists, newest first."""
    make_user(OWNER, "pro")
    owner_id = user_id_for(OWNER)
    listed = [_stored_share(owner_id, i, share_store.DELETING if i in DELETING else share_store.ACTIVE)
              for i in range(SHARES)]
    return sign_in(backend_client, OWNER), [share_id for i, share_id in enumerate(listed) if i not in DELETING][::-1]


def _arrays(client, token: str, query: str = "", most: int = 60) -> List[List[dict]]:
    """Every bare array of the listing, each continued from the X-Next-Cursor of the one before."""
    arrays: List[List[dict]] = []
    cursor: Optional[str] = None
    for _ in range(most):
        params = "&".join(part for part in (query, f"cursor={cursor}" if cursor else "") if part)
        status, body, headers = call(client, "GET", "/shares" + (f"?{params}" if params else ""), token=token)
        assert status == 200, body
        assert isinstance(body, list)
        arrays.append(body)
        cursor = headers.get("X-Next-Cursor")
        if cursor is None:
            return arrays
    raise AssertionError(f"still listing after {most} requests")


def _ids(arrays: List[List[dict]]) -> List[str]:
    return [item["id"] for array in arrays for item in array]


def test_without_parameters_the_whole_list_in_one_array_as_before(backend_client, many_shares):
    token, wanted = many_shares
    [array] = _arrays(backend_client, token)  # no X-Next-Cursor: nothing follows
    assert [item["id"] for item in array] == wanted  # newest first, no share being deleted
    assert {item["id"]: item["spike_count"] for item in array} == {f"sh_{i:012d}": i for i in range(SHARES)
                                                                   if i not in DELETING}
    first = array[0]
    assert {"id", "slug", "url", "spike_count", "created_at", "name"} <= set(first)  # what the CLI reads
    assert (first["slug"], first["file_count"], first["total_bytes"], first["status"]) == ("site-29", 1, 10, "active")
    assert first["url"].endswith("/s/site-29") and first["password_protected"] is False


def test_pages_cover_every_share_once_newest_first(backend_client, many_shares, env):
    env(RATE_SHARE_LISTINGS_PER_MINUTE="1000")  # 47 pages of one account in a minute (309)
    token, wanted = many_shares
    for limit in (1, 4, 7, 19, 10_000):
        pages = _arrays(backend_client, token, f"limit={limit}")
        assert _ids(pages) == wanted, limit
        assert all(len(page) == limit for page in pages[:-1]) and 0 < len(pages[-1]) <= limit
        assert len(pages) == -(-len(wanted) // limit)
    assert _ids(_arrays(backend_client, token, "limit=99999")) == wanted  # read as the most, as elsewhere


def test_a_listing_short_of_time_ends_where_its_reads_ended_and_continues_there(backend_client, many_shares,
                                                                              monkeypatch):
    """The array read every share and every counter, however long it took: past 25 s Lambda
    killed the function (a 5xx, each retry the same). It now asks for time before each read
    after the first, as a listing of spikes does, and ends there with X-Next-Cursor."""
    token, wanted = many_shares
    monkeypatch.setattr(share_listing, "READ_SIZE", 3)  # the array is read 3 shares at a time
    monkeypatch.setattr(LambdaContext, "get_remaining_time_in_millis", lambda self: 2000)  # < 3 s: one read
    arrays = _arrays(backend_client, token)
    assert _ids(arrays) == wanted  # nothing repeated, nothing skipped, newest first
    assert len(arrays) > 1 and all(len(array) <= 3 for array in arrays)
    assert [] in arrays  # a read that met only deletions: an empty array, with a cursor on past them


def test_a_listing_ends_short_of_the_answers_weight_and_continues_there(backend_client, many_shares, monkeypatch):
    """Read whole, 20,000 shares weighed more than Lambda answers (6 MB): API Gateway's 502."""
    token, _ = many_shares
    [whole] = _arrays(backend_client, token)
    budget = _weight(whole[:5])  # about five shares' worth, as the answer carries it
    monkeypatch.setattr(shares_api, "MAX_LISTING_BYTES", budget)
    arrays = _arrays(backend_client, token)
    assert [item for array in arrays for item in array] == whole and len(arrays) > 3
    assert all(_weight(array) <= budget for array in arrays)
    # each ends only where the next share would not fit
    assert all(_weight(array + [after[0]]) > budget for array, after in zip(arrays, arrays[1:]))
    monkeypatch.setattr(share_listing, "READ_SIZE", 3)  # a stop in a read after the first: the same arrays
    assert _arrays(backend_client, token) == arrays


def _weight(items: List[dict]) -> int:
    return lambda_answer.weight(json.dumps(items, separators=(",", ":")))


def test_a_bad_limit_or_cursor_is_a_400(backend_client, many_shares):
    token, _ = many_shares
    for query, field in (("limit=0", "limit"), ("limit=-1", "limit"), ("limit=abc", "limit"), ("limit=1.5", "limit"),
                         ("cursor=abc", "cursor"), ("cursor=e30.x", "cursor"), ("limit=5&cursor=nope", "cursor")):
        status, body, _ = call(backend_client, "GET", f"/shares?{query}", token=token)
        assert (status, body["code"], body["details"][0]["field"]) == (400, "VALIDATION_ERROR", field), query


def test_a_cursor_of_another_listing_is_a_400(backend_client, many_shares):
    token, _ = many_shares
    _, _, headers = call(backend_client, "GET", "/shares?limit=2", token=token)
    theirs = headers["X-Next-Cursor"]
    make_share("other@example.com", "other-site", tier="pro")
    other = sign_in(backend_client, "other@example.com")
    status, body, _ = call(backend_client, "GET", f"/shares?cursor={theirs}", token=other)
    assert status == 400 and body["details"][0]["code"] == "INVALID_CURSOR"
    assert call(backend_client, "GET", f"/shares?cursor={theirs}", token=token)[0] == 200  # the owner's own
    for _ in range(2):
        assert call(backend_client, "POST", "/auth/api-key", {"name": "k"}, token=token)[0] == 201
    _, _, key_headers = call(backend_client, "GET", "/auth/api-keys?limit=1", token=token)
    status, body, _ = call(backend_client, "GET", f"/shares?cursor={key_headers['X-Next-Cursor']}", token=token)
    assert status == 400 and body["details"][0]["code"] == "INVALID_CURSOR"  # the keys' listing's cursor


def test_the_listing_reads_no_files_manifest(backend_client, many_shares):
    """Up to 500 paths a share: thousands of manifests held at once were hundreds of MB."""
    listed, _ = share_store.owned_page(user_id_for(OWNER), 5, None, "secret")
    assert len(listed) == 5 and all(share.files is None and share.file_count == 1 for share in listed)
