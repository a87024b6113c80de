"""A page of GET /spikes stops reading when the function's time runs short, and answers what it
found with a cursor that continues from where the reads ended: a filter matching little in a
large partition read Query after Query until Lambda killed the function (API Gateway's 503, and
no cursor to go on with). Paged to the end, the pages hold exactly what one unhurried page does.
On moto and on DynamoDB Local (backend_client), whose LastEvaluatedKey the cursor is made of."""
from __future__ import annotations

from typing import Callable, List, Tuple

import pytest
from chalice.local import LambdaContext

from chalicelib.services import push_listing
from tests.conftest import call, sign_in
from tests.factories import make_share
from tests.test_open_spikes import _stored

STORED = 300


@pytest.fixture
def share_with_spikes(backend_client):
    share = make_share("owner@example.com", "big")
    # the oldest three are loved, and every 7th of the rest is liked
    _stored(share, STORED, lambda i: {"rating": "love" if i < 3 else ("like" if i % 7 == 0 else "meh")})
    return share, sign_in(backend_client, "owner@example.com")


def _time_left(monkeypatch, milliseconds: int) -> None:
    monkeypatch.setattr(LambdaContext, "get_remaining_time_in_millis", lambda self: milliseconds)


def _paged(client, token: str, query: str, most: int = 50) -> Tuple[List[List[str]], List[str]]:
    """Every page of a listing, followed by its cursors (at most ``most`` requests)."""
    pages: List[List[str]] = []
    cursor = None
    for _ in range(most):
        status, body, _ = call(client, "GET", f"/spikes?{query}" + (f"&cursor={cursor}" if cursor else ""), token=token)
        assert status == 200, body
        pages.append([spike["id"] for spike in body["data"]])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages, [spike_id for page in pages for spike_id in page]
    raise AssertionError(f"still paging after {most} requests")


@pytest.mark.parametrize("rating, expected", [
    ("love", lambda i: i < 3),
    ("like", lambda i: i >= 3 and i % 7 == 0),
])
def test_a_page_short_of_time_ends_where_its_reads_ended_and_the_cursor_continues_there(
        backend_client, share_with_spikes, monkeypatch, rating: str, expected: Callable[[int], bool]):
    share, token = share_with_spikes
    query = f"project={share.share_id}&rating={rating}&limit=10"
    wanted = [f"s{i:05d}" for i in reversed(range(STORED)) if expected(i)]
    unhurried, listed = _paged(backend_client, token, query)
    assert listed == wanted and len(unhurried) == -(-len(wanted) // 10)

    _time_left(monkeypatch, 2000)  # under the listing's 3 s: each page makes its first read only
    hurried, listed = _paged(backend_client, token, query)
    assert listed == wanted  # nothing repeated, nothing skipped, newest first
    assert len(hurried) > len(unhurried) and all(len(page) <= 10 for page in hurried)
    if rating == "love":
        assert hurried[0] == []  # the newest reads matched nothing: an empty page, with a cursor


def test_with_time_left_a_page_reads_on_as_before(backend_client, share_with_spikes, monkeypatch):
    share, token = share_with_spikes
    _time_left(monkeypatch, 20_000)
    pages, listed = _paged(backend_client, token, f"project={share.share_id}&rating=love&limit=10")
    assert pages == [["s00002", "s00001", "s00000"]]


def _pushed(client, token: str, query: str, most: int = 20) -> List[List[str]]:
    """The CLI push's bare arrays, each continued from the X-Next-Cursor of the one before."""
    arrays: List[List[str]] = []
    cursor = None
    for _ in range(most):
        status, body, headers = call(client, "GET", f"/spikes?{query}&token={token}" + (
            f"&cursor={cursor}" if cursor else ""), headers={"User-Agent": "ureq/2.12.1"})
        assert status == 200 and isinstance(body, list), body
        arrays.append([spike["id"] for spike in body])
        cursor = headers.get("X-Next-Cursor")
        if cursor is None:
            return arrays
    raise AssertionError(f"still reading after {most} requests")


@pytest.mark.parametrize("rating, expected", [(None, lambda i: True), ("love", lambda i: i < 3)])
def test_the_clis_push_listing_short_of_time_ends_where_its_reads_ended(
        backend_client, share_with_spikes, monkeypatch, rating, expected: Callable[[int], bool]):
    """The bare array (docs/security.md, 281) read page after page until the function was
    killed (API Gateway's 5xx, the push failed and posted nothing). It now ends as a page does,
    where its reads ended: the push re-posts what it does not see (answered with the id it has,
    nothing stored twice), and X-Next-Cursor says where the array ended."""
    share, token = share_with_spikes
    monkeypatch.setattr(push_listing, "READ_SIZE", 100)  # the array is read in pages of 100
    query = f"project={share.share_id}" + (f"&rating={rating}" if rating else "")
    wanted = [f"s{i:05d}" for i in reversed(range(STORED)) if expected(i)]
    assert _pushed(backend_client, token, query) == [wanted]  # in time: one array, as before

    _time_left(monkeypatch, 2000)  # under the listing's 3 s: one read only
    arrays = _pushed(backend_client, token, query)
    assert [spike_id for array in arrays for spike_id in array] == wanted  # nothing repeated or skipped
    assert len(arrays) > 1 and all(len(array) <= 100 for array in arrays)
