"""Finding 96: a type an Accept header refuses with q=0 is not taken as accepted."""
from __future__ import annotations

import pytest

from chalicelib.services.accept import accepted
from tests.conftest import call
from tests.test_serving import get, protected, site


@pytest.mark.parametrize("header,taken", [
    ("text/html,application/xhtml+xml;q=0.9,*/*;q=0.8", {"text/html", "application/xhtml+xml", "*/*"}),
    ("text/html;q=0, */*;q=0.8", {"*/*"}),
    ("image/png;q=0.0, video/mp4; Q=0.000", set()),
    ("IMAGE/PNG; level=1; q=0.5", {"image/png"}),
    ("image/png;q=zero", {"image/png"}),  # unreadable: the default weight, 1
    ("", set()), (",,", set()),
])
def test_accepted_media_ranges(header, taken):
    assert accepted(header) == taken


def test_a_binary_file_is_not_sent_as_bytes_to_a_client_refusing_every_binary_type(client, user_token):
    slug = site(client, user_token)["slug"]
    assert get(client, f"/s/{slug}/assets/img/logo.png", {"Accept": "image/png"})[0] == 200
    status, _, headers = get(client, f"/s/{slug}/assets/img/logo.png", {"Accept": "*/*;q=0, image/png;q=0"})
    assert status == 302 and "/assets/img/logo.png" in headers["Location"]


def test_a_client_refusing_html_is_no_browser_navigation(client, user_token):
    slug = site(client, user_token)["slug"]
    assert get(client, f"/s/{slug}", {"Accept": "text/html"})[0] == 302  # a browser: to the slash
    status, page, _ = get(client, f"/s/{slug}", {"Accept": "text/html;q=0, */*"})
    assert status == 200 and b"<h1>Hi</h1>" in page


def test_a_client_refusing_html_gets_the_envelope_not_the_password_form(client, user_token):
    slug = protected(client, user_token)["slug"]
    status, data, headers = call(client, "GET", f"/s/{slug}/css/site.css", headers={"Accept": "text/html"})
    assert status == 401 and headers["Content-Type"].startswith("text/html")
    status, data, _ = call(client, "GET", f"/s/{slug}/css/site.css", headers={"Accept": "text/html;q=0"})
    assert (status, data["code"]) == (401, "AUTH_REQUIRED")
