"""Regression tests for the security review (issue 10, docs/security.md): one section per
finding. The browser and real-server halves live in tests/e2e/test_browser_security.py."""
from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest

from chalicelib import clock
from tests.conftest import call, sign_in
from tests.test_serving import access_root, get, protected, site
from tests.factories import change_pro_features

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
        assert "X-Share-Password" in data["error"], data  # what a reader who has the password sends
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


def test_a_declined_device_stays_declined(backend_client):
    """Opening a device's link without approving it declines the device for good: whoever
    started it cannot have another link mailed to the same person to try again, and a link
    mailed before the decline cannot approve it afterwards (finding 63)."""
    from tests.conftest import sent_mails
    client, email = backend_client, "declined-dv@example.com"
    _, device, _ = call(client, "POST", "/auth/device")
    confirm = {"user_code": device["user_code"], "email": email}
    for _ in range(2):  # two links, e.g. the person asked twice
        assert call(client, "POST", "/auth/device/confirm", confirm)[0] == 200
    first, second = [re.search(r"/auth/verify\?token=([A-Za-z0-9_\-]+)", mail["body"]).group(1) for mail in sent_mails(email)[-2:]]
    assert call(client, "POST", "/auth/verify", {"login_token": first})[0] == 200  # declined
    mails = len(sent_mails(email))
    status, body, _ = call(client, "POST", "/auth/device/confirm", confirm)
    assert (status, body["code"]) == (404, "NOT_FOUND") and len(sent_mails(email)) == mails
    assert b"was requested" not in client.http.get(f"/auth/device?code={device['user_code']}").body
    status, body, _ = call(client, "POST", "/auth/verify", {"login_token": second, "approve": True})
    assert (status, body["code"]) == (401, "TOKEN_USED"), body
    status, polled, _ = call(client, "GET", f"/auth/device/poll?device_code={device['device_code']}")
    assert (status, polled["code"]) == (401, "TOKEN_USED") and "token" not in polled
    # The person can still sign themselves in with the second link.
    status, own, _ = call(client, "POST", "/auth/verify", {"login_token": second})
    assert status == 200 and own["user"]["email"] == email


def test_a_device_approved_with_one_link_leaves_the_others_to_sign_in_their_opener(backend_client):
    """Two links mailed for one device, approved with the first: the second has nothing left to
    approve (its page offers none, approving answers that it was approved already), and opened
    without approving it signs in its opener, as its mail says, instead of a 401 'expired'."""
    from tests.conftest import sent_mails
    client, email = backend_client, "approved-dv@example.com"
    _, device, _ = call(client, "POST", "/auth/device")
    confirm = {"user_code": device["user_code"], "email": email}
    for _ in range(2):
        assert call(client, "POST", "/auth/device/confirm", confirm)[0] == 200
    first, second = [re.search(r"/auth/verify\?token=([A-Za-z0-9_\-]+)", mail["body"]).group(1) for mail in sent_mails(email)[-2:]]
    assert device["user_code"].encode() in client.http.get(f"/auth/verify?token={second}").body
    assert call(client, "POST", "/auth/verify", {"login_token": first, "approve": True})[0] == 200
    page = client.http.get(f"/auth/verify?token={second}")
    assert page.status_code == 200 and device["user_code"].encode() not in page.body
    status, body, _ = call(client, "POST", "/auth/verify", {"login_token": second, "approve": True})
    assert (status, body["code"]) == (401, "TOKEN_USED") and "approved already" in body["error"], body
    status, own, _ = call(client, "POST", "/auth/verify", {"login_token": second})
    assert status == 200 and own["user"]["email"] == email and own["token"], own
    # The device collects its one approval, and nothing more.
    status, polled, _ = call(client, "GET", f"/auth/device/poll?device_code={device['device_code']}")
    assert status == 200 and polled["token"] != own["token"], polled
    status, polled, _ = call(client, "GET", f"/auth/device/poll?device_code={device['device_code']}")
    assert status == 401 and "token" not in polled


def test_a_spent_or_unknown_link_shows_no_approval_page(client):
    page = client.http.get("/auth/verify?token=nope")
    assert page.status_code == 400 and b"not valid" in page.body


# --- 4. links are never built from a client's headers ---------------------------------------------

POISON = {"Host": "attacker.example", "X-Forwarded-Host": "attacker.example", "X-Forwarded-Proto": "https"}


def test_a_poisoned_host_header_does_not_reach_the_magic_link(client):
    from tests.conftest import sent_mails
    status, _, _ = call(client, "POST", "/auth/login", {"email": "poisoned@example.com"}, headers=POISON)
    assert status == 200
    mail = sent_mails("poisoned@example.com")[-1]["body"]
    assert "attacker.example" not in mail and "http://127.0.0.1:8000/auth/verify?token=" in mail
    status, device, _ = call(client, "POST", "/auth/device", headers=POISON)
    assert "attacker.example" not in str(device)


def test_the_configured_base_url_is_used(client, env):
    from tests.conftest import sent_mails
    env(PUBLIC_BASE_URL="https://feedback.example.org/")
    call(client, "POST", "/auth/login", {"email": "configured@example.com"}, headers=POISON)
    assert "https://feedback.example.org/auth/verify?token=" in sent_mails("configured@example.com")[-1]["body"]


def _request(context: dict, path: str = "/auth/login"):
    from chalice.app import Request
    event = {"multiValueQueryStringParameters": None, "headers": {"host": "attacker.example"},
             "pathParameters": {}, "requestContext": {"httpMethod": "POST", "resourcePath": path, **context},
             "stageVariables": {}, "body": None, "isBase64Encoded": False, "path": path}
    return Request(event)


def test_outside_local_stages_only_the_platforms_domain_or_the_setting_is_used(aws, env):
    from chalicelib.api import inputs
    from chalicelib.errors import ServerMisconfigured
    env(STAGE="prod", SECRET_KEY="s" * 40)
    with pytest.raises(ServerMisconfigured):
        inputs.base_url(_request({"path": "/api/auth/login"}))
    request = _request({"path": "/api/auth/login", "domainName": "abc123.execute-api.us-east-1.amazonaws.com"})
    assert inputs.base_url(request) == "https://abc123.execute-api.us-east-1.amazonaws.com/api"
    custom = _request({"path": "/auth/login", "domainName": "spikes.example.com"})
    assert inputs.base_url(custom) == "https://spikes.example.com"
    env(STAGE="prod", SECRET_KEY="s" * 40, PUBLIC_BASE_URL="https://configured.example.com")
    assert inputs.base_url(_request({"path": "/api/auth/login"})) == "https://configured.example.com"


# --- 5. a completed share's files cannot change ---------------------------------------------------

def test_presigned_urls_cannot_change_a_completed_share(client, user_token):
    import requests
    from tests.test_shares import INDEX, s3_keys, start_presigned
    status, body, _ = start_presigned(client, user_token, [{"path": "index.html", "size": len(INDEX)}])
    assert status == 201
    target = body["uploads"][0]
    assert requests.put(target["url"], data=INDEX, headers=target["headers"], timeout=10).status_code == 200
    status, _, _ = call(client, "POST", f"/shares/{body['share_id']}/complete", token=user_token)
    assert status == 200
    served = get(client, f"/s/{body['slug']}/")[1]
    # The URL is still within its lifetime: replacing the file, far larger, changes nothing served.
    evil = b"<h1>replaced</h1>" + b"x" * (2 * 1024 * 1024)
    requests.put(target["url"], data=evil, headers=target["headers"], timeout=10)
    assert call(client, "POST", f"/shares/{body['share_id']}/complete", token=user_token)[0] == 200
    assert get(client, f"/s/{body['slug']}/")[1] == served
    assert s3_keys(f"uploads/{body['share_id']}/") == []  # inert, and dropped by the completion


def test_presigned_upload_urls_fix_the_size_and_never_address_served_files(client, user_token):
    from urllib.parse import parse_qs, urlsplit as split
    from tests.test_shares import start_presigned
    status, body, _ = start_presigned(client, user_token, [{"path": "index.html", "size": 1234}])
    url = split(body["uploads"][0]["url"])
    assert f"/uploads/{body['share_id']}/index.html" in url.path and "/shares/" not in url.path
    signed = parse_qs(url.query)["X-Amz-SignedHeaders"][0].split(";")
    assert "content-length" in signed


# --- 6. a downgrade locks protected shares instead of publishing them ----------------------------

def test_when_pro_ends_a_protected_share_is_locked_not_public(client, user_token):
    from chalicelib.store.models import User
    from tests.test_shares import user_of
    body = protected(client, user_token)
    _feedback(client, body)
    User(user_of("owner@example.com").user_id).update(actions=[User.tier.set("free")])
    owner_id = user_of("owner@example.com").user_id
    assert change_pro_features(owner_id, lock=True) == 1
    # Nobody can open it, with or without the password; its feedback stays private.
    for path in ("/", "/?pw=open%20sesame", "/css/site.css"):
        status, page, _ = get(client, f"/s/{body['slug']}{path}")
        assert status == 403 and b"SHARE_UNAVAILABLE" in page, path
    assert call(client, "GET", f"/spikes?project={body['slug']}")[0] == 404
    assert call(client, "GET", f"/spikes?project={body['slug']}", headers={"X-Share-Password": "open sesame"})[0] == 404
    # The owner is told why, and still reads the feedback.
    status, listed, _ = call(client, "GET", "/shares", token=user_token)
    assert listed[0]["status"] == "locked" and "Pro" in listed[0]["locked_reason"]
    assert call(client, "GET", f"/spikes?project={body['slug']}", token=user_token)[0] == 200
    # Re-subscribing restores it as it was, password included.
    User(user_of("owner@example.com").user_id).update(actions=[User.tier.set("pro")])
    assert change_pro_features(owner_id, lock=False) == 1
    assert get(client, f"/s/{body['slug']}/", {"Accept": "text/html"})[0] == 401
    assert get(client, f"/s/{body['slug']}/?pw=open%20sesame")[0] == 200


def test_a_locked_share_opens_when_its_owner_removes_the_password(client, user_token):
    from chalicelib.store.models import User
    from tests.test_shares import user_of
    body = protected(client, user_token)
    User(user_of("owner@example.com").user_id).update(actions=[User.tier.set("free")])
    owner_id = user_of("owner@example.com").user_id
    change_pro_features(owner_id, lock=True)
    status, data, _ = call(client, "PATCH", f"/shares/{body['share_id']}", {"password": ""}, token=user_token)
    assert status == 200, data
    assert get(client, f"/s/{body['slug']}/")[0] == 200


# --- 7. deleting a share is resumable -------------------------------------------------------------

def _failing_cleanup(monkeypatch):
    from botocore.exceptions import ClientError
    from chalicelib.store.files import ShareFiles
    real = ShareFiles.delete_all

    def broken(self, share_id):
        raise ClientError({"Error": {"Code": "SlowDown", "Message": "S3 is down"}}, "DeleteObjects")
    monkeypatch.setattr(ShareFiles, "delete_all", broken)
    return lambda: monkeypatch.setattr(ShareFiles, "delete_all", real)


def test_a_failed_share_deletion_is_finished_by_the_retry(client, user_token, monkeypatch):
    from tests.test_shares import s3_keys, user_of
    body = site(client, user_token)
    spike_id = _feedback(client, body)
    restore = _failing_cleanup(monkeypatch)
    status, error, headers = call(client, "DELETE", f"/shares/{body['share_id']}", token=user_token)
    assert status == 503 and "Retry-After" in headers
    # Already gone for everyone: not served, not listed, not counted; new feedback stays apart.
    assert get(client, f"/s/{body['slug']}/")[0] == 404
    assert call(client, "GET", "/shares", token=user_token)[1] == []
    assert user_of("owner@example.com").active_shares == 0
    restore()
    status, done, _ = call(client, "DELETE", f"/shares/{body['share_id']}", token=user_token)
    assert status == 200, done
    assert [s["id"] for s in done["exported_spikes"]] == [spike_id]  # the export kept at the start
    assert s3_keys(f"shares/{body['share_id']}/") == [] and s3_keys("deletions/") == []
    assert call(client, "GET", f"/spikes/{spike_id}", token=user_token)[0] == 404
    assert call(client, "DELETE", f"/shares/{body['share_id']}", token=user_token)[0] == 404
    # The slug is free again for its owner (retired, not freed: docs/shares.md "Slugs").
    again = site(client, user_token, name="Site")
    assert again["slug"] == body["slug"]


# What the job reports besides the deletions, with nothing to do (uploads, then claims).
NO_ABANDONED_UPLOADS = {"abandoned_uploads_removed": 0, "abandoned_uploads_failed": 0, "unfinished_uploads_expired": 0,
                        "unfinished_uploads_kept": 0, "unfinished_uploads_failed": 0,
                        "claims_pending": 0, "claims_finished": 0, "claims_failed": 0}


def test_the_scheduled_job_finishes_an_abandoned_deletion(client, user_token, monkeypatch):
    """Run as the scheduled Lambda function (its calls are checked against its own role)."""
    from chalicelib.store.models import Share
    from tests.test_shares import s3_keys, user_of
    from tests.test_usage import SCHEDULE_EVENT
    body = site(client, user_token)
    spike_id = _feedback(client, body)
    restore = _failing_cleanup(monkeypatch)
    assert call(client, "DELETE", f"/shares/{body['share_id']}", token=user_token)[0] == 503
    restore()
    result = client.lambda_.invoke("share_deletions", SCHEDULE_EVENT).payload
    assert result == {"pending": 1, "finished": 1, "failed": 0, **NO_ABANDONED_UPLOADS}
    assert s3_keys(f"shares/{body['share_id']}/") == [] and s3_keys("deletions/") == []
    assert [s.pk for s in Share.scan() if body["share_id"] in (s.pk + (s.share_id or ""))] == []
    assert call(client, "GET", f"/spikes/{spike_id}", token=user_token)[0] == 404
    assert user_of("owner@example.com").active_shares == 0
    assert client.lambda_.invoke("share_deletions", SCHEDULE_EVENT).payload == {"pending": 0, "finished": 0, "failed": 0,
                                                                            **NO_ABANDONED_UPLOADS}


def test_deletions_that_keep_failing_do_not_starve_the_others(aws, monkeypatch):
    """The job finishes at most 100 pending deletions a run, the oldest first; 100 older ones
    that fail every time must not keep the rest from ever being reached: each failure moves its
    deletion later (services/pending_work.py), and one failing too often is parked."""
    from chalicelib import deps
    from chalicelib.services import pending_work, share_cleanup
    from chalicelib.store import share_work
    from chalicelib.store import shares as share_store
    from tests.factories import queued
    stuck = [f"sh_a{n:011d}" for n in range(100)]
    finishable = [f"sh_b{n:011d}" for n in range(50)]  # already removed: the job only forgets them
    for at, share_id in enumerate(stuck + finishable):
        share_work.DELETIONS.record(share_id, 1_700_000_000 + at)
    real_get = share_store.get_by_id

    def get_by_id(share_id, consistent=False):
        if share_id in stuck:
            raise RuntimeError("this one fails every time")
        return real_get(share_id, consistent)
    monkeypatch.setattr(share_store, "get_by_id", get_by_id)
    slot = share_cleanup.RUN_INTERVAL_SECONDS
    results = [share_cleanup.finish_pending_deletions(deps.share_files(), now=1_800_000_000 + run * slot)
               for run in range(len(stuck) // pending_work.FAILURES_IN_A_ROW + 2)]
    assert queued(share_work.DELETIONS) == stuck, results
    assert all(result["failed"] + result["finished"] <= 100 for result in results)
    assert len(share_work.DELETIONS.parked(10)) == 0  # each charged once or twice, none parked yet


def test_the_files_of_an_upload_whose_function_died_are_removed_by_the_job(client, user_token, monkeypatch):
    """A direct upload that dies between its files and its share record leaves files no share
    owns; the share_deletions job removes them once no function could still be storing it."""
    from datetime import timedelta

    from botocore.exceptions import ClientError
    from chalicelib import clock
    from chalicelib.store import shares as share_store
    from chalicelib.store.files import ShareFiles
    from tests.test_shares import s3_keys, upload
    from tests.test_usage import SCHEDULE_EVENT
    real_insert, real_delete_all = share_store.insert, ShareFiles.delete_all

    def dies(*_args, **_kwargs):
        raise ClientError({"Error": {"Code": "InternalServerError", "Message": "gone"}}, "TransactWriteItems")
    monkeypatch.setattr(share_store, "insert", dies)
    monkeypatch.setattr(ShareFiles, "delete_all", dies)  # its own clean-up fails too
    assert upload(client, user_token)[0] == 503
    monkeypatch.setattr(share_store, "insert", real_insert)
    monkeypatch.setattr(ShareFiles, "delete_all", real_delete_all)
    [orphan] = {key.split("/")[1] for key in s3_keys("shares/")}

    assert client.lambda_.invoke("share_deletions", SCHEDULE_EVENT).payload["abandoned_uploads_removed"] == 0
    assert s3_keys(f"shares/{orphan}/")  # still young: its function might be running
    later = clock.now() + timedelta(minutes=16)
    clock.use(lambda: later)
    try:
        assert client.lambda_.invoke("share_deletions", SCHEDULE_EVENT).payload["abandoned_uploads_removed"] == 1
    finally:
        clock.use(None)
    assert s3_keys(f"shares/{orphan}/") == []
    # A finished upload leaves no marker behind, and its files stay.
    share = upload(client, user_token)[1]
    clock.use(lambda: later)
    try:
        assert client.lambda_.invoke("share_deletions", SCHEDULE_EVENT).payload["abandoned_uploads_removed"] == 0
    finally:
        clock.use(None)
    assert s3_keys(f"shares/{share['share_id']}/")


# --- 8. bad input is a 4xx, never a 500 -----------------------------------------------------------

def test_deeply_nested_json_is_a_400(client):
    nested = b'{"a":' + b"[" * 30000 + b"]" * 30000 + b"}"
    for path in ("/spikes", "/auth/login"):
        status, data, _ = call(client, "POST", path, raw=nested)
        assert (status, data["code"]) == (400, "INVALID_JSON"), path


def test_non_ascii_signatures_in_cursors_and_unlock_tokens_are_refused(client, user_token):
    status, data, _ = call(client, "GET", "/spikes?project=x&cursor=abc.%C3%A9%C3%A9")
    assert (status, data["details"][0]["code"]) == (400, "INVALID_CURSOR")
    body = protected(client, user_token)
    for token in ("1.%C3%A9", "%C2%B2.abc", "%D9%A3.abc", "1.%ED%A0%80"):
        status, _, _ = get(client, f"/s/{body['slug']}/~u.{token}/css/site.css")
        assert status == 401, token
    status, _, _ = get(client, f"/s/{body['slug']}/css/site.css", {"Cookie": "spikes_unlock=\u00b2.abc"})
    assert status == 401


def test_unpaired_surrogates_are_a_400(client):
    status, data, _ = call(client, "POST", "/spikes", raw=b'{"type":"page","projectKey":"\\ud800"}')
    assert (status, data["code"]) == (400, "INVALID_JSON")
    status, _, _ = call(client, "POST", "/spikes", raw=b'{"type":"page","projectKey":"ok \\ud83d\\ude00"}')
    assert status == 201  # a proper pair (an emoji) is text


def test_huge_numbers_are_a_400(client):
    digits = "9" * 5000
    assert call(client, "GET", f"/spikes?project=x&limit={digits}")[0] == 400
    status, data, _ = call(client, "POST", "/spikes", raw=b'{"type":"page","projectKey":"x","viewport":'
                                                            b'{"width":' + digits.encode() + b',"height":1}}')
    assert status == 400 and data["code"] in ("INVALID_JSON", "VALIDATION_ERROR")


def test_values_too_long_for_a_dynamodb_key_are_a_4xx(client, user_token):
    long = "a" * 3000
    assert call(client, "GET", f"/spikes?project={long}")[0] == 400
    assert call(client, "GET", f"/spikes/{long}", token=user_token)[0] == 404
    assert call(client, "GET", f"/shares/{long}", token=user_token)[0] == 404
    assert get(client, f"/s/{long}/")[0] == 404


def test_an_api_key_id_of_a_shape_never_issued_is_a_404(backend_client):
    """Looked up only when it has the shape of one we issue: DynamoDB (and DynamoDB Local)
    refuse a 3,000-byte key, moto does not (the reliability suite found it on DynamoDB Local)."""
    token = sign_in(backend_client, "keys@example.com")
    for method in ("PATCH", "DELETE"):
        for key_id in ("a" * 3000, "key_" + "a" * 3000, "key_ABC"):
            assert call(backend_client, method, f"/auth/api-key/{key_id}", {"name": "x"}, token=token)[0] == 404


@pytest.mark.parametrize("message", [
    "One or more parameter values were invalid: Size of hashkey has exceeded the maximum size limit of2048 bytes",
    "Hash primary key values must be under 2048 bytes, and range primary key values must be under 1024 bytes",
])
def test_a_key_size_refusal_from_dynamodb_is_a_400_not_a_503(client, monkeypatch, message):
    from botocore.exceptions import ClientError
    from pynamodb.exceptions import GetError
    from chalicelib.store import shares as shares_service
    error = ClientError({"Error": {"Code": "ValidationException", "Message": message}}, "GetItem")

    def refuse(_key):
        raise GetError("Failed to get item", cause=error)
    monkeypatch.setattr(shares_service, "get_by_id", refuse)
    status, data, _ = call(client, "GET", "/spikes?project=sh_abcdefghijkl")
    assert (status, data["code"]) == (400, "VALIDATION_ERROR")
    # The contract: "Validation errors include field-level details".
    assert [(detail["field"], detail["code"]) for detail in data["details"]] == [("request", "INVALID_FIELD")]


# --- 9. a bare project key with feedback cannot be taken over by a share ---------------------------

def test_a_slug_used_as_a_bare_project_key_is_not_claimed(client, user_token):
    status, posted, _ = call(client, "POST", "/spikes", {"type": "page", "projectKey": "acme-site",
                                                         "comments": "from the real acme site"})
    assert status == 201
    squatter = sign_in(client, "squatter@example.com")
    created = site(client, squatter, name="acme-site", slug="acme-site")
    assert created["slug"] != "acme-site" and created["slug"].startswith("acme-site-")
    # The project keeps its key: its feedback stays visible under it, and new feedback lands there too.
    status, _, _ = call(client, "POST", "/spikes", {"type": "page", "projectKey": "acme-site", "comments": "later"})
    listed = call(client, "GET", "/spikes?project=acme-site")[1]["data"]
    assert {s["comments"] for s in listed} == {"from the real acme site", "later"}
    assert call(client, "GET", "/spikes", token=squatter)[1]["data"] == []
    # A slug nobody used is still taken as asked.
    assert site(client, squatter, name="fresh-name")["slug"] == "fresh-name"


# --- 10. large documents are never rendered on S3's origin ------------------------------------------

def test_large_html_is_refused_at_upload_and_never_redirected_for_rendering(client, user_token, env):
    from urllib.parse import parse_qs
    from chalicelib.store.models import Share
    from tests.test_shares import start_presigned
    # Stored before the limit was lowered: direct uploads refuse it above the limit too.
    body = site(client, user_token, files=[("index.html", b"<h1>Hi</h1>" + b" " * 2000),
                                           ("img/big.png", b"\x89PNG" + b"\x00" * 2000)])
    env(MAX_SERVED_FILE_BYTES="1000")
    for path in ("big.html", "art.svg", "feed.xml"):
        status, data, _ = start_presigned(client, user_token, [{"path": "index.html", "size": 10},
                                                               {"path": path, "size": 5000}])
        assert (status, data["code"]) == (413, "SIZE_LIMIT"), path
    # A large image is still handed out by S3; a large HTML file stored before this rule, only
    # as a download (never rendered as a page of S3's origin).
    status, _, headers = get(client, f"/s/{body['slug']}/img/big.png")
    assert status == 302 and "response-content-disposition" not in headers["Location"]
    status, _, headers = get(client, f"/s/{body['slug']}/", {"Accept": "text/html"})
    assert status == 302
    query = parse_qs(urlsplit(headers["Location"]).query)
    assert query["response-content-disposition"] == ["attachment"]
    assert query["response-content-type"] == ["application/octet-stream"]


# --- 11. the share-upload limit counts per account --------------------------------------------------

def test_the_share_upload_limit_is_per_account_not_per_token(client, env):
    from tests.test_shares import INDEX, upload
    env(RATE_SHARES_PER_MINUTE="2", FREE_SHARE_LIMIT="50")
    first, second = sign_in(client, "busy@example.com"), sign_in(client, "busy@example.com")
    assert first != second
    assert upload(client, first, [("index.html", INDEX)], {"name": "a"})[0] == 201
    assert upload(client, second, [("index.html", INDEX)], {"name": "b"})[0] == 201
    status, data, headers = upload(client, second, [("index.html", INDEX)], {"name": "c"})
    assert (status, data["code"]) == (429, "RATE_LIMIT") and "Retry-After" in headers
    # Another account is not affected.
    assert upload(client, sign_in(client, "calm@example.com"), [("index.html", INDEX)], {"name": "d"})[0] == 201


# --- 12. sessions: sign out, sign out everywhere, idle expiry ---------------------------------------

def test_logout_revokes_the_presented_token_only(client):
    first, second = sign_in(client, "leaver@example.com"), sign_in(client, "leaver@example.com")
    status, data, _ = call(client, "POST", "/auth/logout", token=first)
    assert status == 200 and data["ok"] is True
    assert call(client, "GET", "/me", token=first)[0] == 401
    assert call(client, "GET", "/me", token=second)[0] == 200
    assert call(client, "POST", "/auth/logout", token=first)[0] == 401
    assert call(client, "POST", "/auth/logout")[0] == 401


def test_sign_out_everywhere_revokes_every_session_of_the_account(client):
    sessions = [sign_in(client, "everywhere@example.com") for _ in range(3)]
    other = sign_in(client, "bystander@example.com")
    status, data, _ = call(client, "POST", "/auth/logout", {"everywhere": True}, token=sessions[0])
    assert status == 200 and data["everywhere"] is True
    assert [call(client, "GET", "/me", token=token)[0] for token in sessions] == [401, 401, 401]
    assert call(client, "GET", "/me", token=other)[0] == 200
    # Signing in again works, and only the new session is valid.
    fresh = sign_in(client, "everywhere@example.com")
    assert call(client, "GET", "/me", token=fresh)[0] == 200


@pytest.fixture
def lagging_replica(monkeypatch):
    """DynamoDB's eventually consistent reads, at their worst: once ``freeze()`` is called,
    every item read without ``ConsistentRead`` before it is answered as it was then, whatever
    was written since (moto and DynamoDB Local are always consistent; DynamoDB is not)."""
    import copy
    import json
    from pynamodb.connection.base import Connection
    seen, state = {}, {"frozen": False}
    original = Connection._make_api_call

    def reading(self, operation_name, operation_kwargs):
        if operation_name != "GetItem" or operation_kwargs.get("ConsistentRead"):
            return original(self, operation_name, operation_kwargs)
        key = json.dumps({k: v for k, v in operation_kwargs.items() if k != "ReturnConsumedCapacity"}, sort_keys=True)
        if state["frozen"] and key in seen:
            return copy.deepcopy(seen[key])
        response = original(self, operation_name, operation_kwargs)
        if not state["frozen"]:
            seen[key] = copy.deepcopy(response)
        return response

    monkeypatch.setattr(Connection, "_make_api_call", reading)
    return lambda: state.update(frozen=True)


def test_sign_out_applies_to_the_next_request_while_replicas_lag(client, lagging_replica):
    token, other = sign_in(client, "lag@example.com"), sign_in(client, "lag@example.com")
    rotated = sign_in(client, "lag@example.com")
    for session in (token, other, rotated):
        assert call(client, "GET", "/me", token=session)[0] == 200
    lagging_replica()
    assert call(client, "POST", "/auth/logout", token=token)[0] == 200
    assert call(client, "GET", "/me", token=token)[0] == 401
    status, body, _ = call(client, "POST", "/auth/rotate-token", token=rotated)
    assert status == 200, body
    assert call(client, "GET", "/me", token=rotated)[0] == 401
    assert call(client, "POST", "/auth/logout", {"everywhere": True}, token=other)[0] == 200
    assert [call(client, "GET", "/me", token=t)[0] for t in (other, body["token"])] == [401, 401]


def test_an_idle_session_expires_and_use_refreshes_it_without_a_write_per_request(client, env, monkeypatch):
    from chalicelib.crypto import token_hash
    from chalicelib.store import auth as auth_store
    from chalicelib.store.models import AuthItem
    env(SESSION_IDLE_DAYS="90", SESSION_MAX_DAYS="365")  # the lifetime (240): tests/test_sign_in_hardening.py
    token = sign_in(client, "idle@example.com")
    start = auth_store.session(token_hash(token)).expires_at
    assert start - clock.epoch() > 89 * 86400
    writes = []
    real_update = AuthItem.update
    monkeypatch.setattr(AuthItem, "update", lambda self, *a, **k: writes.append(1) or real_update(self, *a, **k))
    for _ in range(5):
        assert call(client, "GET", "/me", token=token)[0] == 200
    assert writes == []  # fresh: no refresh write
    base = clock.now()
    try:
        clock.use(lambda: base + timedelta(days=30))
        for _ in range(3):
            assert call(client, "GET", "/me", token=token)[0] == 200
        assert len(writes) == 1 and auth_store.session(token_hash(token)).expires_at > start
        clock.use(lambda: base + timedelta(days=30 + 91))
        status, data, _ = call(client, "GET", "/me", token=token)
        assert (status, data["code"]) == (401, "AUTH_FAILED")
    finally:
        clock.use(None)


def test_posts_to_a_mixed_case_key_are_kept_under_it_and_to_a_share_being_deleted_for_its_owner(client, user_token,
                                                                                                  monkeypatch):
    body = site(client, user_token, name="acme")
    status, _, _ = call(client, "POST", "/spikes", {"type": "page", "projectKey": "ACME", "comments": "caps"})
    assert status == 201
    assert [s["comments"] for s in call(client, "GET", "/spikes?project=ACME")[1]["data"]] == ["caps"]
    restore = _failing_cleanup(monkeypatch)
    assert call(client, "DELETE", f"/shares/{body['share_id']}", token=user_token)[0] == 503
    restore()
    status, _, _ = call(client, "POST", "/spikes", {"type": "page", "projectKey": body["slug"], "comments": "late"})
    assert status == 201
    assert call(client, "DELETE", f"/shares/{body['share_id']}", token=user_token)[0] == 200
    assert call(client, "GET", f"/spikes?project={body['slug']}")[1]["data"] == []  # not public (126)
    own = call(client, "GET", "/spikes", token=user_token)[1]["data"]
    assert [s["comments"] for s in own] == ["late"]
