"""Regression tests for the security review (issue 10, docs/security.md): one section per
finding. The browser and real-server halves live in tests/e2e/test_browser_security.py."""
from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest

from tests.conftest import call, sign_in
from tests.test_serving import access_root, cookie_from, get, protected, site

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


# --- 1. no URL that unlocks a share is stored or shown ------------------------------------------

def test_a_framed_page_of_a_protected_share_gets_the_clean_url(client, user_token):
    body = protected(client, user_token)
    _, page, _ = get(client, f"/s/{body['slug']}/?pw=open%20sesame")
    root = access_root(page)
    status, _, headers = get(client, f"{root}docs/index.html", {"Sec-Fetch-Dest": "iframe", "Accept": "text/html"})
    assert status == 302 and "~u." not in headers["Location"]


def test_a_framed_password_form_answers_with_the_page_itself(client, user_token):
    body = protected(client, user_token)
    response = client.http.request("POST", f"/s/{body['slug']}/docs/index.html", body=b"password=open+sesame",
                                   headers={"Content-Type": "application/x-www-form-urlencoded",
                                            "Sec-Fetch-Dest": "iframe", "Accept": "text/html"})
    # A redirect would bring the frame back to the form: browsers withhold the cookie from it.
    assert response.status_code == 200 and b"<p>docs</p>" in response.body
    assert response.headers["Set-Cookie"].startswith("spikes_unlock=")


@pytest.mark.parametrize("spelling", ["~u.", "%7Eu.", "%7eu%2E"])
def test_access_paths_are_stripped_from_stored_spike_urls(client, user_token, spelling):
    body = protected(client, user_token)
    _, page, _ = get(client, f"/s/{body['slug']}/?pw=open%20sesame")
    token = access_root(page).rstrip("/").rsplit("~u.", 1)[1]
    leaked = f"http://127.0.0.1:8000/s/{body['slug']}/{spelling}{token}/docs/index.html?x=1#top"
    status, created, _ = call(client, "POST", "/spikes", {"type": "page", "projectKey": body["share_id"],
                                                          "url": leaked, "page": f"/s/x/~u.{token}/a.html"})
    assert status == 201, created
    status, listed, _ = call(client, "GET", f"/spikes/{created['id']}", token=user_token)
    assert status == 200
    assert listed["url"] == f"http://127.0.0.1:8000/s/{body['slug']}/docs/index.html?x=1#top"
    assert token not in listed["url"] and token not in listed["page"]
