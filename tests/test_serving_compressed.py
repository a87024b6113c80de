"""Finding 97: a text file stored gzip-compressed (an .svgz, typed as the SVG it holds; a .css.gz)
is served as its text, not its compressed bytes read as windows-1252."""
from __future__ import annotations

import gzip
from urllib.parse import parse_qs, urlsplit

from tests.test_serving import get, site
from tests.test_shares import INDEX

SVG = "<svg xmlns='http://www.w3.org/2000/svg'><title>café</title><circle r='4'/></svg>".encode()


def test_an_svgz_is_served_as_its_svg_text_under_the_sandbox(client, user_token):
    slug = site(client, user_token, files=[("index.html", INDEX), ("img/icon.svgz", gzip.compress(SVG)),
                                           ("css/site.css.gz", gzip.compress(b"h1{color:red}"))])["slug"]
    status, data, headers = get(client, f"/s/{slug}/img/icon.svgz")
    assert (status, data, headers["Content-Type"]) == (200, SVG, "image/svg+xml; charset=utf-8")
    assert headers["Content-Security-Policy"].startswith("sandbox") and "Content-Encoding" not in headers
    assert get(client, f"/s/{slug}/css/site.css.gz")[:2] == (200, b"h1{color:red}")


def test_a_compressed_text_larger_than_served_goes_to_s3_as_a_download(client, user_token, env):
    env(MAX_SERVED_FILE_BYTES="1000")
    bomb = gzip.compress(b"<svg xmlns='http://www.w3.org/2000/svg'>" + b" " * 50_000 + b"</svg>")
    assert len(bomb) < 1000
    slug = site(client, user_token, files=[("index.html", INDEX), ("big.svgz", bomb)])["slug"]
    status, _, headers = get(client, f"/s/{slug}/big.svgz")
    location = urlsplit(headers["Location"])
    assert status == 302 and location.path.endswith("/big.svgz")
    assert "attachment" in parse_qs(location.query)["response-content-disposition"][0]


def test_a_text_file_that_only_starts_like_gzip_is_read_as_text(client, user_token):
    slug = site(client, user_token, files=[("index.html", INDEX), ("odd.txt", b"\x1f\x8bnot gzip")])["slug"]
    status, data, _ = get(client, f"/s/{slug}/odd.txt")
    assert status == 200 and data.endswith(b"not gzip")
