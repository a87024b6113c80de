"""Feedback items earlier reviews left open (docs/security.md, 126 on): each test failed before
its fix."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from tests.conftest import ADMIN_TOKEN, call, sign_in
from tests.factories import make_share
from tests.test_serving import site
from tests.test_shares import make_pro


# --- Feedback posted to a share whose deletion started is kept for its owner only -------------

def test_feedback_posted_to_a_protected_share_being_deleted_is_kept_for_its_owner_only(client, user_token):
    """The widget on a protected page still open posts after the owner deleted the share: the
    feedback was stored under the bare key, listed to anyone by the share's id or slug, with
    the password of the `?pw=` link the reviewer opened in its `url` and `page`."""
    from chalicelib.store import share_tombstones
    from chalicelib.store import shares as share_store
    make_pro("owner@example.com")
    body = site(client, user_token, name="Locked", password="open sesame")
    slug, share = body["slug"], share_store.get_by_id(body["share_id"])
    address = f"http://127.0.0.1:8000/s/{slug}/?pw=open%20sesame"
    share_tombstones.tombstone(share, share.owner_id)  # the deletion started, not finished
    posted = []
    for key in (body["share_id"], slug, "finished"):
        if key == "finished":
            share_tombstones.remove(share)  # finished: its slug is retired, kept for its owner
            key = slug
        status, created, _ = call(client, "POST", "/spikes", {
            "type": "page", "projectKey": key, "url": address, "page": f"/s/{slug}/?pw=open%20sesame",
            "comments": "still open in a tab"})
        assert status == 201, created
        posted.append(created["id"])
        status, listed, _ = call(client, "GET", f"/spikes?project={key}")
        assert status == 200 and listed["data"] == [], listed  # not public
        status, stored, _ = call(client, "GET", f"/spikes/{created['id']}", token=user_token)
        assert status == 200, stored  # nothing lost: the owner's
        assert stored["url"] == f"http://127.0.0.1:8000/s/{slug}/" and stored["page"] == f"/s/{slug}/", stored
    status, own, _ = call(client, "GET", "/spikes", token=user_token)
    assert status == 200 and sorted(item["id"] for item in own["data"]) == sorted(posted)
    # By id once the deletion finished nothing names the owner: kept, for the admin alone.
    status, created, _ = call(client, "POST", "/spikes", {"type": "page", "projectKey": body["share_id"],
                                                          "url": address, "comments": "a day later"})
    assert status == 201, created
    status, listed, _ = call(client, "GET", f"/spikes?project={body['share_id']}")
    assert status == 200 and listed["data"] == [], listed
    status, everything, _ = call(client, "GET", f"/spikes?token={ADMIN_TOKEN}")
    kept = [item for item in everything["data"] if item["id"] == created["id"]]
    assert status == 200 and kept[0]["url"] == f"http://127.0.0.1:8000/s/{slug}/", everything


def test_a_password_in_feedback_under_a_bare_key_is_not_stored(client):
    """A `?pw=` link's address was kept as sent when the key named no share (any more)."""
    status, created, _ = call(client, "POST", "/spikes", {
        "type": "page", "projectKey": "plain-site", "url": "https://example.com/a?x=1&pw=secret#top"})
    assert status == 201, created
    status, listed, _ = call(client, "GET", "/spikes?project=plain-site")
    assert status == 200 and listed["data"][0]["url"] == "https://example.com/a?x=1#top", listed


# --- Resolving a resolved spike keeps its first resolution time --------------------------------

@pytest.mark.parametrize("webhook", [False, True])
def test_resolving_a_resolved_spike_keeps_when_it_was_resolved(client, webhook):
    """`PATCH {"resolved": true}` (the MCP server's `resolve_spike`) on a resolved spike set its
    `resolvedAt` to the moment of the repeat: a no-op moved when the feedback was dealt with."""
    from chalicelib import clock
    alice = sign_in(client, "alice@example.com")
    fields = {"webhook_url": "https://hooks.example.com/spikes", "webhook_secret_nonce": "n0"} if webhook else {}
    share = make_share("alice@example.com", "alice-site", **fields)
    status, created, _ = call(client, "POST", "/spikes", {"type": "page", "projectKey": share.share_id})
    assert status == 201, created
    first, later = datetime(2026, 3, 1, 12, tzinfo=timezone.utc), datetime(2026, 3, 2, 12, tzinfo=timezone.utc)
    try:
        clock.use(lambda: first)
        status, body, _ = call(client, "PATCH", f"/spikes/{created['id']}", {"resolved": True}, token=alice)
        assert status == 200 and body["resolved_at"] == "2026-03-01T12:00:00.000Z", body
        clock.use(lambda: later)
        status, body, _ = call(client, "PATCH", f"/spikes/{created['id']}", {"resolved": True}, token=alice)
        assert status == 200 and body["resolved_at"] == body["resolvedAt"] == "2026-03-01T12:00:00.000Z", body
        assert call(client, "GET", f"/spikes/{created['id']}", token=alice)[1]["resolvedAt"] == body["resolved_at"]
        # Reopened, it is resolved anew.
        assert call(client, "PATCH", f"/spikes/{created['id']}", {"resolved": False}, token=alice)[0] == 200
        status, body, _ = call(client, "PATCH", f"/spikes/{created['id']}", {"resolved": True}, token=alice)
        assert status == 200 and body["resolved_at"] == "2026-03-02T12:00:00.000Z", body
    finally:
        clock.use(None)


# --- A post's resolved is a JSON boolean, as a PATCH's ---------------------------------------

def test_a_post_whose_resolved_is_not_a_boolean_is_refused_with_details(client):
    """`POST /spikes` read `"yes"`, `"off"`, `1` or `0` as `resolved` (lax parsing) where `PATCH`
    refuses them: an owner's mistaken value was stored as an answer. The CLI's push sends a
    JSON boolean or leaves it out, the widget and the MCP server leave it out."""
    alice = sign_in(client, "alice@example.com")
    for not_a_boolean in ("yes", "true", "off", 1, 0):
        status, body, _ = call(client, "POST", "/spikes", {"type": "page", "projectKey": "alices-site",
                                                           "resolved": not_a_boolean}, token=alice)
        assert status == 400 and body["code"] == "VALIDATION_ERROR", (not_a_boolean, body)
        assert [detail["field"] for detail in body["details"]] == ["resolved"], body
    for sent in ({"resolved": True}, {"resolved": False}, {"resolved": None}, {}):
        status, body, _ = call(client, "POST", "/spikes", {"type": "page", "projectKey": "alices-site", **sent},
                               token=alice)
        assert status == 201, (sent, body)


# --- A Pro user's checkout answers the contract's null url, Stripe configured or not -----------

def test_a_pro_users_checkout_is_a_null_url_on_a_server_without_stripe(client, user_token):
    """The contract: checkout "returns null url if user already has Pro subscription". On a
    server whose Stripe keys were removed, a Pro user was answered `404 BILLING_NOT_CONFIGURED`,
    as if they had to pay."""
    from chalicelib.services.accounts import user_id_for
    from chalicelib.store.models import User
    User(user_id_for("owner@example.com")).update(actions=[User.tier.set("pro")])
    status, body, _ = call(client, "GET", "/billing/checkout", token=user_token)
    assert status == 200 and body["url"] is None and "Pro" in body["message"], body
    assert "billing/portal" not in body["message"], body  # the portal is not configured either
    status, body, _ = call(client, "GET", "/billing/checkout?tier=agent", token=user_token)
    assert status == 404 and body["code"] == "BILLING_NOT_CONFIGURED", body  # what Pro lacks: no billing here


# --- A reviewer's over-long name is cut, not refused -----------------------------------------

@pytest.mark.parametrize("shape", ["widget", "mcp"])
def test_a_reviewers_over_long_name_is_cut_not_refused(client, shape):
    """The upstream widget asks a reviewer's name once (no length limit), keeps it and sends it
    with every post: a name over 200 characters was a 400, so every post of that reviewer was
    lost. It is cut to 200 characters, like what the widget reads off the page."""
    name = "Ada " * 100  # 400 characters
    spike = {"type": "page", "projectKey": "long-names", "comments": "kept", "rating": "love"}
    spike.update({"reviewer": {"id": "r1", "name": name}} if shape == "widget" else {"reviewerName": name})
    status, created, _ = call(client, "POST", "/spikes", spike)
    assert status == 201, created
    status, stored, _ = call(client, "GET", f"/spikes/{created['id']}?token={ADMIN_TOKEN}")
    assert status == 200 and stored["comments"] == "kept"
    assert stored["reviewer"]["name"] == name[:200]


def test_a_null_reviewer_name_is_no_name(client):
    """The name's bound applies to a string only (a null name was a 500: found by the fuzzer)."""
    for spike in ({"reviewerName": None}, {"reviewer": {"id": "r2", "name": None}}):
        status, created, _ = call(client, "POST", "/spikes", {"type": "page", "projectKey": "null-names", **spike})
        assert status == 201, created
