"""What a newcomer following docs/agents.md, the README and GET /openapi.json met on the real
server, and what the server now does instead."""
from __future__ import annotations

import pytest

from tests.conftest import ADMIN_TOKEN, call, sign_in


def _key(client, token=None, **body) -> str:
    status, created, _ = call(client, "POST", "/auth/api-key", body, token=token)
    assert status == 201, created
    return created["api_key"]


def _post(client, project_key: str, comments: str, key=None) -> str:
    status, body, _ = call(client, "POST", "/spikes", {"type": "page", "projectKey": project_key,
                                                       "comments": comments,
                                                       "reviewer": {"id": "r1", "name": "Jo", "email": "jo@x.io"}},
                           headers={"X-API-Key": key} if key else None)
    assert status == 201, body
    return body["id"]


def _listed(client, query: str, key=None) -> list:
    status, page, _ = call(client, "GET", f"/spikes?{query}", token=key)
    assert status == 200, page
    return page["data"]


def test_a_project_listing_is_public_whoever_asks_and_ones_own_posts_are_listed_without_it(backend_client):
    # The contract: ?project= is "public when provided". What an agent posts with its key under
    # a project key of its own is its account's (docs/agents.md): not in that public listing,
    # but in GET /spikes with the key, resolvable by id. A credential added to ?project= must
    # not swap the public listing for another (a person reading the anonymous feedback of the
    # widget on their own page would find nothing).
    client = backend_client
    agent = _key(client, name="agent")
    mine = _post(client, "my-app", "the agent's own", key=agent)
    public = _post(client, "my-app", "a stranger's, anonymous")
    anonymous = _listed(client, "project=my-app")
    assert [s["id"] for s in anonymous] == [public] and "email" not in anonymous[0]["reviewer"]
    other = sign_in(client, "other@example.com")
    for credential in (agent, other, _key(client, token=agent, scopes="usage:read")):
        listed = _listed(client, "project=my-app", credential)
        assert [s["id"] for s in listed] == [public] and "email" not in listed[0]["reviewer"]
    assert [s["id"] for s in _listed(client, f"project=my-app&token={ADMIN_TOKEN}")] == [public]
    own = _listed(client, "", agent)
    assert [(s["id"], s["projectKey"], s["reviewer"]["email"]) for s in own] == [(mine, "my-app", "jo@x.io")]
    status, resolved, _ = call(client, "PATCH", f"/spikes/{mine}", {"resolved": True}, token=agent)
    assert status == 200 and resolved["resolved"] is True
    assert [s["id"] for s in _listed(client, "resolved=true", agent)] == [mine]
    assert _listed(client, "", other) == []


def test_a_project_export_is_public_whoever_asks(client):
    agent = _key(client, name="agent")
    _post(client, "my-app", "own", key=agent)
    _post(client, "my-app", "public")
    response = client.http.get("/spikes/export?project=my-app&format=jsonl",
                               headers={"Authorization": f"Bearer {agent}"})
    assert response.status_code == 200
    lines = response.body.decode().strip().splitlines()
    assert len(lines) == 1 and '"public"' in lines[0]


def test_a_change_a_request_cannot_make_is_refused_not_answered_unchanged(client):
    # PATCH /auth/api-key {"scopes": "full"} answered 200 with the scopes as they were, so a
    # client believed its key had been widened (or narrowed); PATCH /me ignored what it lacks too.
    owner = sign_in(client)
    status, created, _ = call(client, "POST", "/auth/api-key", {"name": "ci", "scopes": "read"}, token=owner)
    path = f"/auth/api-key/{created['key_id']}"
    status, body, _ = call(client, "PATCH", path, {"scopes": "full"}, token=owner)
    assert status == 400 and body["code"] == "VALIDATION_ERROR", body
    assert body["details"] == [{"field": "scopes", "code": "INVALID_FIELD",
                                "message": "scopes cannot be set here; this request takes name, expires_at, "
                                           "monthly_cap_cents"}]
    status, body, _ = call(client, "PATCH", path, {"name": "renamed", "scopes": "full"}, token=owner)
    assert status == 400  # nothing of it applied
    status, listed, _ = call(client, "GET", "/auth/api-keys", token=owner)
    assert [(k["name"], k["scopes"]) for k in listed] == [("ci", "read")]
    status, body, _ = call(client, "PATCH", path, {"name": "renamed"}, token=owner)
    assert status == 200 and body["name"] == "renamed" and body["scopes"] == "read"
    status, body, _ = call(client, "PATCH", "/me", {"email": "x@example.com"}, token=owner)
    assert status == 400 and body["details"][0]["field"] == "email", body
    # POST /spikes stays lenient: the CLI's push sends whole local spikes, unknown keys included.
    status, _, _ = call(client, "POST", "/spikes", {"type": "page", "projectKey": "p", "extra": 1})
    assert status == 201


def _documented(doc: dict, method: str, path: str) -> set:
    return set(doc["paths"][path][method.lower()]["responses"])


def test_the_statuses_a_walkthrough_met_are_in_the_api_document(client):
    # Each answered here with a status GET /openapi.json did not list for the operation.
    _, doc, _ = call(client, "GET", "/openapi.json")
    owner = sign_in(client)
    status, created, _ = call(client, "POST", "/auth/api-key", {"name": "ci"}, token=owner)
    path = f"/auth/api-key/{created['key_id']}"
    call(client, "DELETE", path, token=owner)
    met = [("PATCH", "/auth/api-key/{key_id}", call(client, "PATCH", path, {"name": "x"}, token=owner)),
           ("GET", "/billing/checkout", call(client, "GET", "/billing/checkout", token=owner)),
           ("POST", "/billing/checkout", call(client, "POST", "/billing/checkout", token=owner))]
    # A password-protected share's feedback, asked without its password: the 404 of no share.
    from tests.test_shares import make_pro, share_site
    make_pro("owner@example.com")
    share_site(client, owner, name="secret", password="hunter22")
    met += [("GET", "/spikes", call(client, "GET", "/spikes?project=secret")),
            ("GET", "/spikes/export", call(client, "GET", "/spikes/export?project=secret"))]
    assert [(m, p, answer[0]) for m, p, answer in met] == [
        ("PATCH", "/auth/api-key/{key_id}", 409), ("GET", "/billing/checkout", 404),
        ("POST", "/billing/checkout", 404), ("GET", "/spikes", 404), ("GET", "/spikes/export", 404)]
    for method, route, (status, _, _) in met:
        assert str(status) in _documented(doc, method, route), (method, route, status)
        assert str(status) in _documented(doc, method, "/v1" + route), (method, route, status)
    # The code table names every status a code is answered with.
    assert "| `BILLING_NOT_CONFIGURED` | 404 |" in doc["info"]["description"]
    assert "| `BILLING_NOT_CONFIGURED` | 503 |" in doc["info"]["description"]


def test_getting_started_shows_the_preflight_the_server_answers(client):
    # The recorded session's CORS headers had fallen behind the server's (X-Next-Cursor).
    from pathlib import Path
    doc = (Path(__file__).resolve().parents[1] / "docs" / "getting-started.md").read_text(encoding="utf-8")
    shown = dict(line.split(": ", 1) for line in doc.splitlines() if line.startswith("Access-Control-"))
    # (The test client cannot send a preflight; every answer carries the same CORS headers.)
    response = client.http.get("/health")
    answered = {name: value for name, value in response.headers.items() if name.startswith("Access-Control-")}
    shown.pop("Access-Control-Allow-Methods")  # the preflight's own
    assert shown == answered


def test_webhooks_md_says_how_to_make_a_local_account_pro(client):
    # "make your account Pro" had no instructions: without Stripe there is no checkout locally.
    import re
    from pathlib import Path
    doc = (Path(__file__).resolve().parents[1] / "docs" / "webhooks.md").read_text(encoding="utf-8")
    code = re.search(r"\.venv/bin/python -c '\n(.*?)'\n```", doc, re.S).group(1)
    from tests.test_shares import share_site
    token = sign_in(client, "you@example.com")
    slug = share_site(client, token, name="site")["slug"]
    assert call(client, "PATCH", f"/v1/shares/{slug}", {"password": "hunter22"}, token=token)[0] == 403
    exec(code, {})  # noqa: S102 - our own documentation, on the test's tables
    status, me, _ = call(client, "GET", "/me", token=token)
    assert status == 200 and me["tier"] == "pro"
    status, body, _ = call(client, "PATCH", f"/v1/shares/{slug}", {"password": "hunter22"}, token=token)
    assert status == 200 and body["password_protected"] is True, body


def test_own_project_feedback_after_a_claim_is_as_docs_agents_md_says(client):
    agent = _key(client, name="agent")
    before = _post(client, "my-app", "before the claim", key=agent)
    owner = sign_in(client)
    status, claimed, _ = call(client, "POST", "/auth/link-key", {"api_key": agent}, token=owner)
    assert status == 200 and claimed["moved"]["spikes"] == 1, claimed
    after = _post(client, "my-app", "after the claim", key=agent)
    assert {s["id"] for s in _listed(client, "", owner)} == {before, after}
    assert _listed(client, "project=my-app", owner) == []  # the public project: neither is there
    assert call(client, "PATCH", f"/spikes/{before}", {"resolved": True}, token=owner)[0] == 200


def test_a_key_asking_for_a_wider_key_is_told_which_scopes_it_lacks(client):
    # required_scope said keys:manage, a scope the key had: an agent reading it learnt nothing.
    owner = sign_in(client)
    manager = _key(client, token=owner, name="mgr", scopes="keys:manage spikes:read")
    status, body, _ = call(client, "POST", "/auth/api-key", {"name": "child", "scopes": "read"}, token=manager)
    assert status == 403 and body["code"] == "SCOPE_DENIED", body
    assert body["required_scope"] == "shares:read usage:read"
    assert body["error"] == ("A key cannot create a key with scopes it does not have itself: shares:read usage:read "
                             "(it has: keys:manage spikes:read)")
    status, body, _ = call(client, "POST", "/auth/api-key", {"name": "child", "scopes": "spikes:read"}, token=manager)
    assert status == 201, body


def test_a_cursor_of_another_listing_is_refused_saying_so(client):
    # "Cursor is malformed or was tampered with", for the next_cursor of another project.
    for n in range(2):
        _post(client, "one", f"{n}")
    status, page, _ = call(client, "GET", "/spikes?project=one&limit=1")
    status, body, _ = call(client, "GET", f"/spikes?project=two&limit=1&cursor={page['next_cursor']}")
    assert status == 400 and body["details"][0]["code"] == "INVALID_CURSOR"
    assert "belongs to another listing" in body["details"][0]["message"]


def test_the_upgrade_url_of_a_refusal_is_a_page_a_browser_opens(client):
    # A free owner asking for a password got upgrade_url <base>/billing/checkout; opened (as a
    # link is), that route answers a browser, which sends no bearer token, 401 AUTH_REQUIRED.
    from tests.test_shares import upload
    owner = sign_in(client)
    status, body, _ = upload(client, owner, metadata={"name": "locked", "password": "pw"})
    assert (status, body["code"]) == (403, "UPGRADE_REQUIRED"), body
    path = body["upgrade_url"].split("://", 1)[1].split("/", 1)[1].split("#", 1)[0]
    response = client.http.get(f"/{path}", headers={"Accept": "text/html"})
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/html")
    assert body["upgrade_url"].endswith("/dashboard#/account")  # the view with the Upgrade button


def test_a_receiver_on_this_machine_is_refused_saying_which_switch_admits_it(client, env):
    # docs/webhooks.md "Trying it locally": without the switch the server said only "Webhook URLs
    # must use https", and a newcomer with `python3 -m http.server` had nowhere to go from there.
    from tests.test_shares import make_pro, share_site
    env(WEBHOOK_ALLOW_LOOPBACK="false")
    token = sign_in(client, "you@example.com")
    make_pro("you@example.com")
    slug = share_site(client, token, name="site")["slug"]
    for url in ("http://127.0.0.1:9000/hook", "https://localhost:9000/hook"):
        status, body, _ = call(client, "PATCH", f"/v1/shares/{slug}", {"webhook_url": url}, token=token)
        assert (status, body["code"]) == (400, "VALIDATION_ERROR"), body
        assert "SPIKES_WEBHOOK_ALLOW_LOOPBACK=true" in body["details"][0]["message"], body
    status, body, _ = call(client, "PATCH", f"/v1/shares/{slug}", {"webhook_url": "http://example.com/hook"}, token=token)
    assert status == 400 and body["details"][0]["message"] == "Webhook URLs must use https"  # not this machine


def test_a_deployed_stage_does_not_point_at_the_local_servers_switch():
    # On a Lambda, loopback is the Lambda itself and SPIKES_WEBHOOK_ALLOW_LOOPBACK is refused at
    # start-up: the hint would send an operator after a setting that cannot help.
    from chalicelib.errors import ValidationFailed
    from chalicelib.services.webhook_urls import validate_webhook_url
    for url in ("http://127.0.0.1:9000/hook", "https://localhost:9000/hook"):
        with pytest.raises(ValidationFailed) as refused:
            validate_webhook_url(url, allow_loopback=False, local_stage=False)
        assert "SPIKES_WEBHOOK_ALLOW_LOOPBACK" not in refused.value.details[0]["message"]


def test_a_device_sign_in_mail_says_how_long_it_can_approve_the_device(client):
    # The mail said "valid for 15 minutes" (the link's lifetime) while the device code it approves
    # expires after 10 (SPIKES_DEVICE_CODE_TTL_SECONDS): approved at minute 12, nothing was left.
    from tests.conftest import sent_mails
    status, device, _ = call(client, "POST", "/auth/device", {})
    assert status == 200 and device["expires_in"] == 600
    status, _, _ = call(client, "POST", "/auth/device/confirm",
                        {"user_code": device["user_code"], "email": "cli@example.com"})
    assert status == 200
    [mail] = sent_mails("cli@example.com")
    assert "approve it (valid for 10 minutes, once)" in mail["body"], mail["body"]
