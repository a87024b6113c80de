"""Byte ranges of the files the function serves itself (RFC 9110 §14): Safari plays a video only
from a server that answers them. Binary files are ranged; text files (HTML with the widget
injected, any text converted to UTF-8) are always sent whole (chalicelib/services/byte_ranges.py,
share_pages._ranged)."""
from __future__ import annotations

import pytest

from tests.test_serving import ACCEPT_ANY, get, site
from tests.test_shares import INDEX

CLIP = bytes(range(256)) * 40  # every byte value, so a base64 or UTF-8 mangling shows
LENGTH = len(CLIP)


@pytest.fixture
def slug(client, user_token):
    return site(client, user_token, files=[("index.html", INDEX), ("media/clip.mp4", CLIP),
                                           ("css/site.css", b"h1{color:red}"),
                                           ("fonts/a.woff2", b"wOF2" + CLIP[:60])])["slug"]


def test_a_binary_file_advertises_ranges_on_its_whole_answer(client, slug):
    status, data, headers = get(client, f"/s/{slug}/media/clip.mp4")
    assert (status, data, headers["Accept-Ranges"], headers["Content-Type"]) == (200, CLIP, "bytes", "video/mp4")
    assert "Content-Range" not in headers


@pytest.mark.parametrize("wanted,first,last", [
    ("bytes=0-99", 0, 99), ("bytes=10000-", 10000, LENGTH - 1), ("bytes=-100", LENGTH - 100, LENGTH - 1),
    ("bytes=0-1", 0, 1),  # Safari's first probe of a video
    ("bytes=5000-99999999", 5000, LENGTH - 1), ("bytes=-99999999", 0, LENGTH - 1),
    ("bytes=10239-10239", LENGTH - 1, LENGTH - 1), ("BYTES = 7-8", 7, 8),
])
def test_one_range_is_answered_206_byte_exact(client, slug, wanted, first, last):
    whole = get(client, f"/s/{slug}/media/clip.mp4")[2]
    status, data, headers = get(client, f"/s/{slug}/media/clip.mp4", {"Range": wanted})
    assert status == 206 and data == CLIP[first:last + 1]
    assert headers["Content-Range"] == f"bytes {first}-{last}/{LENGTH}"
    assert headers["Accept-Ranges"] == "bytes" and headers["Content-Type"] == "video/mp4"
    assert headers["ETag"] == whole["ETag"] and headers["Cache-Control"] == whole["Cache-Control"]
    assert headers["Content-Security-Policy"].startswith("sandbox")


@pytest.mark.parametrize("wanted", ["bytes=10240-", "bytes=20000-30000", "bytes=-0"])
def test_a_range_outside_the_file_is_416(client, slug, wanted):
    status, data, headers = get(client, f"/s/{slug}/media/clip.mp4", {"Range": wanted})
    assert (status, data) == (416, b"")
    assert headers["Content-Range"] == f"bytes */{LENGTH}" and headers["Cache-Control"] == "no-store"
    assert headers["Content-Security-Policy"].startswith("sandbox")


@pytest.mark.parametrize("wanted", ["bytes=5-2", "bytes=abc", "items=0-1", "bytes=-", "bytes=0-1,5-6",
                                    "bytes=1-2-3", "bytes=" + "9" * 5000 + "-"])
def test_a_malformed_or_multiple_range_gets_the_whole_file(client, slug, wanted):
    status, data, headers = get(client, f"/s/{slug}/media/clip.mp4", {"Range": wanted})
    assert (status, data) == (200, CLIP) and "Content-Range" not in headers


def test_if_range_needs_the_files_current_etag(client, slug):
    etag = get(client, f"/s/{slug}/media/clip.mp4")[2]["ETag"]
    ranged = {"Range": "bytes=0-9"}
    assert get(client, f"/s/{slug}/media/clip.mp4", {**ranged, "If-Range": etag})[:2] == (206, CLIP[:10])
    for stale in ('"0123456789abcdef"', "W/" + etag, "Sat, 05 Dec 2026 10:00:00 GMT"):
        assert get(client, f"/s/{slug}/media/clip.mp4", {**ranged, "If-Range": stale})[:2] == (200, CLIP), stale


def test_a_matching_if_none_match_wins_over_a_range(client, slug):
    etag = get(client, f"/s/{slug}/media/clip.mp4")[2]["ETag"]
    status, data, _ = get(client, f"/s/{slug}/media/clip.mp4", {"Range": "bytes=0-9", "If-None-Match": etag})
    assert (status, data) == (304, b"")


def test_a_binary_type_sent_as_octet_stream_is_ranged_too(client, slug):
    status, data, headers = get(client, f"/s/{slug}/fonts/a.woff2", {"Range": "bytes=0-3"})
    assert (status, data, headers["Content-Type"]) == (206, b"wOF2", "font/woff2")


@pytest.mark.parametrize("path", ["/", "/index.html", "/css/site.css"])
def test_text_files_are_sent_whole_and_offer_no_ranges(client, slug, path):
    """HTML is served with the widget injected and text converted to UTF-8: the bytes sent are
    not the stored ones, and a range could cut a character the function must send as text."""
    whole = get(client, f"/s/{slug}{path}")
    status, data, headers = get(client, f"/s/{slug}{path}", {"Range": "bytes=0-3"})
    assert (status, data) == (200, whole[1]) and len(data) > 4
    assert "Accept-Ranges" not in headers and "Content-Range" not in headers


def test_a_head_ignores_range_as_the_rfc_says(client, slug):
    """RFC 9110 §14.2: GET is the only method with ranges; a HEAD gets the whole file's headers."""
    plain = client.http.request("HEAD", f"/s/{slug}/media/clip.mp4", headers=ACCEPT_ANY)
    ranged = client.http.request("HEAD", f"/s/{slug}/media/clip.mp4", headers={**ACCEPT_ANY, "Range": "bytes=0-9"})
    assert ranged.status_code == plain.status_code == 200 and ranged.body == CLIP
    assert ranged.headers["Accept-Ranges"] == "bytes" and "Content-Range" not in ranged.headers


def test_a_client_that_cannot_take_bytes_goes_to_s3_with_its_range(client, slug):
    response = client.http.request("GET", f"/s/{slug}/media/clip.mp4", headers={"Range": "bytes=0-9"})
    assert response.status_code == 302 and "/media/clip.mp4" in response.headers["Location"]
