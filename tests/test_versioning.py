"""Versioned paths (/v1/...) and the X-RateLimit-* headers of every rate-limited route."""
from __future__ import annotations

from chalicelib.api import versioning
from tests.conftest import ADMIN_TOKEN, call


def test_every_api_route_is_also_served_under_v1():
    from app import app
    # Pages for people are not API paths: share pages and the dashboard.
    api_paths = [p for p in app.routes if not versioning.is_versioned(p) and not p.startswith("/s/")
                 and p != "/s/{slug}" and not p.startswith("/{p1}") and not p.startswith("/dashboard")]
    assert "/spikes" in api_paths and "/shares/{key}" in api_paths
    for path in api_paths:
        assert versioning.versioned(path) in app.routes, path
        assert set(app.routes[versioning.versioned(path)]) == set(app.routes[path]), path


def test_v1_paths_answer_like_the_unversioned_ones(client, user_token):
    status, data, headers = call(client, "POST", "/v1/spikes", {"type": "page", "projectKey": "demo"})
    assert status == 201 and data["ok"] is True
    for path in ("/spikes?project=demo", "/v1/spikes?project=demo"):
        status, data, _ = call(client, "GET", path)
        assert status == 200 and [item["id"] for item in data["data"]] != []
    status, me, _ = call(client, "GET", "/v1/me", token=user_token)
    assert status == 200 and me["email"] == "owner@example.com"
    status, data, _ = call(client, "GET", "/v1")
    assert status == 200 and data["name"] == "spikes"


def test_v1_unknown_routes_and_methods_answer_in_the_envelope(client):
    status, data, _ = call(client, "GET", "/v1/nothing-here")
    assert status == 404 and data["code"] == "NOT_FOUND"
    status, data, headers = call(client, "PUT", "/v1/spikes")
    assert status == 405 and "GET" in headers["Allow"]


def _ratelimit_headers(headers) -> dict:
    return {k: headers[k] for k in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")}


def test_rate_limited_routes_report_their_budget(client, env):
    env(RATE_LOGIN_PER_ADDRESS="3", RATE_LOGIN_PER_IP="50")
    remaining = []
    for _ in range(3):
        status, _, headers = call(client, "POST", "/v1/auth/login", {"email": "budget@example.com"})
        assert status == 200
        limits = _ratelimit_headers(headers)
        # The caller's network's budget: the address's, shared by whoever asks, is not reported
        # until it refuses (docs/security.md, 122).
        assert limits["X-RateLimit-Limit"] == "50"
        remaining.append(int(limits["X-RateLimit-Remaining"]))
    assert remaining == sorted(remaining, reverse=True) and remaining[-1] == 47
    status, data, headers = call(client, "POST", "/v1/auth/login", {"email": "budget@example.com"})
    assert status == 429 and data["code"] == "RATE_LIMIT"
    assert (headers["X-RateLimit-Limit"], headers["X-RateLimit-Remaining"]) == ("3", "0")
    assert int(headers["Retry-After"]) >= 1


def test_posting_spikes_and_polling_carry_the_headers(client):
    _, _, headers = call(client, "POST", "/spikes", {"type": "page", "projectKey": "demo"})
    assert int(headers["X-RateLimit-Limit"]) == 60 and int(headers["X-RateLimit-Remaining"]) <= 59
    _, _, headers = call(client, "GET", "/auth/poll?email=a@example.com&poll_token=x")
    assert "X-RateLimit-Remaining" in headers


def test_routes_without_a_limit_carry_no_headers(client):
    _, _, headers = call(client, "GET", f"/spikes?token={ADMIN_TOKEN}")
    assert "X-RateLimit-Limit" not in headers


def test_every_rate_limited_route_of_the_notes_reports_its_budget(client, user_token):
    """docs/api-notes.md lists the rate-limited routes: each reports X-RateLimit-* on success."""
    from tests.test_shares import make_pro
    from tests.test_contract import curl_form_share
    make_pro("owner@example.com")
    share = curl_form_share(client, user_token, b'{"slug":"locked-site","password":"hunter2"}')
    device = call(client, "POST", "/auth/device")
    requests = {
        "POST /spikes": call(client, "POST", "/spikes", {"type": "page", "projectKey": "demo"}),
        "POST /shares": share,
        "POST /shares/uploads": call(client, "POST", "/shares/uploads", {"name": "big", "files": [
            {"path": "index.html", "size": 10}]}, token=user_token),
        "POST /auth/login": call(client, "POST", "/auth/login", {"email": "budget@example.com"}),
        "POST /auth/recover": call(client, "POST", "/auth/recover", {"email": "budget@example.com"}),
        "GET /auth/poll": call(client, "GET", "/auth/poll?email=budget@example.com"),
        "POST /auth/device": device,
        "GET /auth/device?code=": call(client, "GET", f"/auth/device?code={device[1]['user_code']}"),
        "POST /auth/device/confirm": call(client, "POST", "/auth/device/confirm",
                                          {"user_code": device[1]["user_code"], "email": "budget@example.com"}),
        "POST /auth/api-key": call(client, "POST", "/auth/api-key", {"name": "ci"}, token=user_token),
        "POST /auth/api-key (signup)": call(client, "POST", "/auth/api-key", {}),
        "GET /s/ (password)": call(client, "GET", "/s/locked-site/?pw=hunter2", headers={"Accept": "*/*"}),
        "GET /spikes?project= (password)": call(client, "GET", "/spikes?project=locked-site",
                                                headers={"X-Share-Password": "hunter2"}),
        "GET /auth/device/poll": call(client, "GET", f"/auth/device/poll?device_code={device[1]['device_code']}"),
    }
    for name, (status, _, headers) in requests.items():
        assert status < 400, (name, status)
        assert int(headers["X-RateLimit-Limit"]) >= 1 and int(headers["X-RateLimit-Reset"]) > 0, name
        assert 0 <= int(headers["X-RateLimit-Remaining"]) < int(headers["X-RateLimit-Limit"]), name
