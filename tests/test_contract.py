"""The API contract (shared/seeds/002_…), example by example: each request is the contract's own
curl command, each assertion a field, status, header, code or message the contract writes down.
What the contract leaves open is decided in docs/api-notes.md (and docs/clients.md for the real
clients, replayed in tests/test_clients.py); extra fields in an answer are allowed."""
from __future__ import annotations

import json
import re

import pytest

from chalicelib import deps
from tests.conftest import ADMIN_TOKEN, call, login_token_from_mail, sign_in
from tests.fakes.stripe_events import WEBHOOK_SECRET, event, sign, signed, subscription
from tests.test_shares import make_pro, multipart

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")

CONTRACT_SPIKE = {
    "type": "element", "projectKey": "my-project", "page": "/", "url": "https://example.com/",
    "selector": "button.submit", "rating": "love", "comments": "Perfect placement",
    "reviewer": {"id": "r123", "name": "Jane"}, "viewport": {"width": 1920, "height": 1080},
    "timestamp": "2024-01-15T10:30:00Z",
}


def envelope(body: dict) -> dict:
    """The error body without the request id every answer also carries (docs/api-notes.md)."""
    return {key: value for key, value in body.items() if key != "request_id"}


def curl_form_share(client, token, metadata: bytes = b'{"slug":"my-project","title":"My Project"}'):
    """curl -F 'metadata={...}' -F "file=@index.html": a text part, then the file (text/html)."""
    content_type, body = multipart([("metadata", None, metadata),
                                    ("file", "index.html", b"<html><head><title>Mock</title></head><body></body></html>")])
    return call(client, "POST", "/shares", token=token, raw=body, headers={"Content-Type": content_type})


# --- errors ----------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/auth/login", "/auth/recover"])
def test_the_validation_error_example_is_answered_word_for_word(client, path):
    status, body, _ = call(client, "POST", path, {"email": "user-at-example.com"})
    assert status == 400
    assert envelope(body) == {"error": "Validation failed", "code": "VALIDATION_ERROR",
                              "details": [{"field": "email", "message": "Invalid email format", "code": "INVALID_FIELD"}]}


def test_error_codes_and_statuses_of_the_tables(client):
    assert envelope(call(client, "GET", "/me")[1]) == {"error": "Authentication required", "code": "AUTH_REQUIRED"}
    status, body, _ = call(client, "GET", "/me", token="not-a-token")
    assert (status, envelope(body)) == (401, {"error": "Invalid or expired credentials", "code": "AUTH_FAILED"})
    status, body, _ = call(client, "DELETE", "/shares/abc123", token=sign_in(client, "user@example.com"))
    assert (status, body["code"]) == (404, "NOT_FOUND") and isinstance(body["error"], str)


def test_the_rate_limits_of_the_table_are_the_defaults(monkeypatch):
    for name in ("SPIKES_RATE_SPIKES_PER_MINUTE", "SPIKES_RATE_SHARES_PER_MINUTE", "SPIKES_RATE_PASSWORD_PER_MINUTE"):
        monkeypatch.delenv(name, raising=False)
    deps.reset()
    settings = deps.settings()
    assert (settings.rate_spikes_per_minute, settings.rate_shares_per_minute, settings.rate_password_per_minute) == (60, 10, 5)
    deps.reset()


# --- shares ----------------------------------------------------------------------------------

def test_create_list_delete_a_share(client):
    token = sign_in(client, "user@example.com")
    status, created, _ = curl_form_share(client, token)
    assert status in (200, 201) and created["ok"] is True
    assert created["slug"] == "my-project" and created["url"].endswith("/s/my-project")
    share_id = created["share_id"]

    status, listed, _ = call(client, "GET", "/shares", token=token)
    assert status == 200 and isinstance(listed, list) and len(listed) == 1
    item = listed[0]
    assert (item["id"], item["slug"], item["url"], item["spike_count"]) == (share_id, "my-project", created["url"], 0)
    assert ISO_UTC.match(item["created_at"])

    spike = call(client, "POST", "/spikes", {**CONTRACT_SPIKE, "projectKey": share_id})[1]
    status, deleted, _ = call(client, "DELETE", f"/shares/{share_id}", token=token)
    assert status == 200 and deleted["ok"] is True
    assert [(s["id"], s["rating"], s["comments"]) for s in deleted["exported_spikes"]] == \
        [(spike["id"], "love", "Perfect placement")]
    assert call(client, "GET", "/shares", token=token)[1] == []


def test_pro_features_answer_403_upgrade_required_to_a_free_user(client):
    token = sign_in(client, "user@example.com")
    for metadata in (b'{"slug":"pw","password":"hunter2"}', b'{"slug":"hook","webhook_url":"https://example.com/hook"}'):
        status, body, _ = curl_form_share(client, token, metadata)
        assert (status, body["code"]) == (403, "UPGRADE_REQUIRED")
    assert call(client, "GET", "/shares", token=token)[1] == []


def test_a_share_is_served_with_the_widget_injected(client):
    share_id = curl_form_share(client, sign_in(client, "user@example.com"))[1]["share_id"]
    response = client.http.get("/s/my-project")
    if response.status_code == 302:  # to /s/my-project/, where relative links resolve (docs/shares.md)
        assert response.headers["Location"].endswith("/s/my-project/")
        response = client.http.get("/s/my-project/")
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/html")
    page = response.body.decode()
    assert "<title>Mock</title>" in page and re.search(rf'<script src="[^"]*/widget\.js"[^>]*data-project="{share_id}"', page)


# --- accounts --------------------------------------------------------------------------------

def test_login_verify_rotate_recover_me(client):
    status, body, _ = call(client, "POST", "/auth/login", {"email": "user@example.com"})
    assert status == 200 and (body["ok"], body["message"]) == (True, "Check your email")

    status, verified, _ = call(client, "POST", "/auth/verify", {"login_token": login_token_from_mail("user@example.com")})
    assert status == 200 and verified["ok"] is True and isinstance(verified["token"], str)
    assert set(verified["user"]) == {"id", "email", "tier"}
    assert (verified["user"]["email"], verified["user"]["tier"]) == ("user@example.com", "free")

    status, me, _ = call(client, "GET", "/me", token=verified["token"])
    assert status == 200 and (me["email"], me["tier"]) == ("user@example.com", "free")

    status, rotated, _ = call(client, "POST", "/auth/rotate-token", token=verified["token"])
    assert status == 200 and rotated["ok"] is True and rotated["token"] != verified["token"]
    assert rotated["user"] == verified["user"]
    assert call(client, "GET", "/me", token=verified["token"])[1]["code"] == "AUTH_FAILED"
    assert call(client, "GET", "/me", token=rotated["token"])[0] == 200

    known = call(client, "POST", "/auth/recover", {"email": "user@example.com"})
    unknown = call(client, "POST", "/auth/recover", {"email": "nobody@example.com"})
    assert known[:2] == unknown[:2] == (200, {"ok": True, "message": "Recovery email sent"})


def test_usage(client):
    status, usage, _ = call(client, "GET", "/usage", token=sign_in(client, "user@example.com"))
    assert status == 200
    assert {key: usage[key] for key in ("spikes", "spike_limit", "shares", "share_limit", "tier")} == \
        {"spikes": 0, "spike_limit": 100, "shares": 0, "share_limit": 5, "tier": "free"}
    assert ISO_UTC.match(usage["reset_at"])


# --- spikes ----------------------------------------------------------------------------------

def test_create_a_spike_and_list_it_publicly_and_as_admin(client):
    status, created, _ = call(client, "POST", "/spikes", CONTRACT_SPIKE)
    assert status in (200, 201) and created["ok"] is True and isinstance(created["id"], str)
    expected = {"id": created["id"], **CONTRACT_SPIKE}
    for query in ("?project=my-project", f"?token={ADMIN_TOKEN}"):
        status, page, _ = call(client, "GET", "/spikes" + query)
        assert status == 200 and page["next_cursor"] is None
        assert [{key: item[key] for key in expected} for item in page["data"]] == [expected]


def test_pages_default_to_100_and_end_with_a_null_cursor(client, env):
    env(RATE_SPIKES_PER_MINUTE="1000")
    for n in range(101):
        assert call(client, "POST", "/spikes", {**CONTRACT_SPIKE, "comments": f"n{n}"})[0] == 201
    first = call(client, "GET", "/spikes?project=my-project")[1]
    assert len(first["data"]) == 100 and isinstance(first["next_cursor"], str)
    second = call(client, "GET", f"/spikes?project=my-project&limit=50&cursor={first['next_cursor']}")[1]
    assert len(second["data"]) == 1 and second["next_cursor"] is None
    assert {i["comments"] for i in first["data"] + second["data"]} == {f"n{n}" for n in range(101)}
    status, body, _ = call(client, "GET", "/spikes?project=my-project&limit=1001")
    assert status == 200 and len(body["data"]) == 101  # max 1000: a larger limit is capped, not refused


# --- billing ---------------------------------------------------------------------------------

def test_billing_portal_and_checkout(client, env, stripe_api):
    """`curl …/billing/checkout` and `curl …/billing/portal` (GET, as the contract's curl sends
    them) answer {"url"}; checkout's url is null once the user has Pro."""
    env(STRIPE_SECRET_KEY=stripe_api.api_key, STRIPE_PRICE_ID="price_pro", STRIPE_API_BASE=stripe_api.url,
        STRIPE_MAX_NETWORK_RETRIES="0")
    token = sign_in(client, "user@example.com")
    status, checkout, _ = call(client, "GET", "/billing/checkout", token=token)
    assert status == 200 and checkout["url"].startswith("https://checkout.stripe.com/")
    status, portal, _ = call(client, "GET", "/billing/portal", token=token)
    assert status == 200 and isinstance(portal["url"], str) and portal["url"].startswith("https://")
    make_pro("user@example.com")
    status, checkout, _ = call(client, "GET", "/billing/checkout", token=token)
    assert status == 200 and checkout["url"] is None


def test_the_stripe_webhook_verifies_its_signature(client, env):
    env(STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET)
    raw, headers = signed(event("customer.subscription.updated", subscription("active"), 1_700_000_000))
    for forged in ({}, {"Stripe-Signature": sign(raw.decode(), "whsec_someone_else")}):
        status, body, _ = call(client, "POST", "/webhooks/stripe", raw=raw, headers=forged)
        assert (status, body["code"]) == (400, "INVALID_SIGNATURE")
    assert call(client, "POST", "/webhooks/stripe", raw=raw, headers=headers)[0] == 200


# --- rate limits: each row of the table, at its default, answers the contract's 429 ----------

@pytest.fixture
def one_rate_window():
    """The clock held still: a row's requests all fall in one window of its limit. The window is
    estimated from two fixed minutes (services/ratelimit.py), so 60 posts on a loaded machine
    (seconds of them) that straddled a minute's end were weighed below 60 and the 61st passed."""
    from chalicelib import clock
    now = clock.now()
    clock.use(lambda: now)
    yield
    clock.use(None)


def assert_rate_limit_response(status: int, body: dict, headers: dict) -> None:
    assert status == 429
    assert envelope(body) == {"error": "Rate limit exceeded", "code": "RATE_LIMIT", "retry_after": body["retry_after"]}
    assert isinstance(body["retry_after"], int) and headers["Retry-After"] == str(body["retry_after"])


def test_post_spikes_is_limited_to_60_a_minute_per_client_ip(client, one_rate_window):
    for n in range(60):
        assert call(client, "POST", "/spikes", {**CONTRACT_SPIKE, "comments": f"n{n}"})[0] == 201
    assert_rate_limit_response(*call(client, "POST", "/spikes", CONTRACT_SPIKE))


def test_post_shares_is_limited_to_10_a_minute(client, one_rate_window):
    token = sign_in(client, "user@example.com")
    make_pro("user@example.com")  # past the free tier's 5 shares
    for n in range(10):
        assert curl_form_share(client, token, json.dumps({"slug": f"site-{n}"}).encode())[0] == 201
    assert_rate_limit_response(*curl_form_share(client, token))


def test_password_attempts_are_limited_to_5_a_minute_per_slug_and_ip(client, one_rate_window):
    token = sign_in(client, "user@example.com")
    make_pro("user@example.com")
    curl_form_share(client, token, b'{"slug":"my-project","password":"hunter2"}')
    for _ in range(5):
        assert client.http.get("/s/my-project/?pw=wrong", headers={"Accept": "*/*"}).status_code == 401
    assert_rate_limit_response(*call(client, "GET", "/s/my-project/?pw=wrong", headers={"Accept": "*/*"}))
    # Per slug: another share's attempts from the same address are counted apart.
    curl_form_share(client, token, b'{"slug":"other","password":"hunter2"}')
    assert client.http.get("/s/other/?pw=wrong", headers={"Accept": "*/*"}).status_code == 401
