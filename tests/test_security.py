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


# --- 2. the feedback of a protected share is private --------------------------------------------

def _feedback(client, share_body) -> str:
    status, created, _ = call(client, "POST", "/spikes", {
        "type": "element", "projectKey": share_body["share_id"], "comments": "secret launch date",
        "elementText": "Launch: 1 May", "reviewer": {"id": "r1", "name": "Rev", "email": "rev@example.com"}})
    assert status == 201, created
    return created["id"]


@pytest.mark.parametrize("path", ["/spikes", "/spikes/export", "/spikes/export?format=jsonl"])
def test_strangers_get_a_404_for_a_protected_shares_feedback(client, user_token, path):
    body = protected(client, user_token)
    _feedback(client, body)
    missing = call(client, "GET", f"{path}{'&' if '?' in path else '?'}project=no-such-share-xyz")
    for key in (body["slug"], body["share_id"]):
        status, data, headers = call(client, "GET", f"{path}{'&' if '?' in path else '?'}project={key}")
        assert status == 404 and data["code"] == "NOT_FOUND", (path, status, data)
        assert "secret" not in str(data) and "rev@example.com" not in str(data)
    # Someone else's session or a wrong password is no better.
    other = sign_in(client, "stranger@example.com")
    sep = "&" if "?" in path else "?"
    assert call(client, "GET", f"{path}{sep}project={body['slug']}", token=other)[0] == 404
    assert call(client, "GET", f"{path}{sep}project={body['slug']}", headers={"X-Share-Password": "nope"})[0] == 404
    assert missing[0] in (200, 404)


def test_owner_admin_and_password_holders_read_a_protected_shares_feedback(client, user_token):
    body = protected(client, user_token)
    spike_id = _feedback(client, body)
    for kwargs in ({"token": user_token}, {"headers": {"X-Share-Password": "open sesame"}}):
        status, data, _ = call(client, "GET", f"/spikes?project={body['slug']}", **kwargs)
        assert status == 200 and [s["id"] for s in data["data"]] == [spike_id], kwargs
    status, data, _ = call(client, "GET", f"/spikes?project={body['slug']}&token=admin-test-token")
    assert status == 200 and len(data["data"]) == 1
    status, data, _ = call(client, "GET", f"/spikes?project={body['slug']}&password=open%20sesame")
    assert status == 200 and len(data["data"]) == 1
    status, _, headers = call(client, "GET", f"/spikes/export?project={body['slug']}", token=user_token)
    assert status == 200


def test_a_public_shares_feedback_stays_public(client, user_token):
    body = site(client, user_token)
    _feedback(client, body)
    status, data, _ = call(client, "GET", f"/spikes?project={body['slug']}")
    assert status == 200 and len(data["data"]) == 1


# --- 3. whoever starts a sign-in gets nothing unless the account holder approves it ----------------

def _mail_text(to: str) -> str:
    from tests.conftest import sent_mails
    return sent_mails(to)[-1]["body"]


def test_a_plain_verify_of_someone_elses_login_hands_the_requester_nothing(client):
    from tests.conftest import login_token_from_mail
    # The attacker asks for a link to the victim's address and keeps the poll token.
    status, started, _ = call(client, "POST", "/auth/login", {"email": "victim@example.com"})
    assert status == 200 and re.fullmatch(r"[A-Z]{4}-[A-Z]{4}", started["code"])
    mail = _mail_text("victim@example.com")
    # The mail says what would be approved: the code, when and from where.
    assert started["code"] in mail and "127.0.0.1" in mail and "UTC" in mail
    token = login_token_from_mail("victim@example.com")
    # Opening the link changes nothing; the page shows the same code, time and address.
    page = client.http.get(f"/auth/verify?token={token}")
    assert page.status_code == 200 and started["code"].encode() in page.body and b"127.0.0.1" in page.body
    assert call(client, "GET", f"/auth/poll?poll_token={started['poll_token']}")[0] == 202
    # The victim signs in with the link without approving the requester: the poll gets nothing.
    status, own, _ = call(client, "POST", "/auth/verify", {"login_token": token})
    assert status == 200 and own["user"]["email"] == "victim@example.com"
    status, polled, _ = call(client, "GET", f"/auth/poll?poll_token={started['poll_token']}")
    assert status == 401 and polled["code"] == "TOKEN_USED" and "token" not in polled


def test_a_device_is_signed_in_only_when_its_code_is_approved(client):
    from tests.conftest import login_token_from_mail
    _, device, _ = call(client, "POST", "/auth/device")
    page = client.http.get(f"/auth/device?code={device['user_code']}")
    assert b"127.0.0.1" in page.body and b"UTC" in page.body
    call(client, "POST", "/auth/device/confirm", {"user_code": device["user_code"], "email": "dv@example.com"})
    mail = _mail_text("dv@example.com")
    assert device["user_code"] in mail and "127.0.0.1" in mail
    token = login_token_from_mail("dv@example.com")
    assert device["user_code"].encode() in client.http.get(f"/auth/verify?token={token}").body
    assert call(client, "POST", "/auth/verify", {"login_token": token})[0] == 200
    status, polled, _ = call(client, "GET", f"/auth/device/poll?device_code={device['device_code']}")
    assert status == 401 and "token" not in polled


def test_a_spent_or_unknown_link_shows_no_approval_page(client):
    page = client.http.get("/auth/verify?token=nope")
    assert page.status_code == 400 and b"not valid" in page.body
