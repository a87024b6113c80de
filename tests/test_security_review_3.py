"""The third security review (docs/security.md, "The third review"): billing and metering, API
keys, exports and the scheduled jobs, as an attacker and as a paying customer. Each test failed
before its fix. In-process, with the chalice test client and moto, like the earlier reviews."""
from __future__ import annotations

import time

import pytest
import requests

from chalicelib import deps
from chalicelib.errors import AuthFailed
from chalicelib.services import apikeys
from chalicelib.services.accounts import user_id_for
from chalicelib.store.models import Share, User
from tests.conftest import call
from tests.fakes.stripe_events import checkout_session, event, subscription
from tests.test_agent_tier import agent, configured  # noqa: F401 - fixtures
from tests.test_shares import INDEX, share_site, start_presigned
from tests.test_webhooks import NOW, UID, deliver, hooks, make_pro_share, user  # noqa: F401 - fixtures


# --- 24. A paid agent-tier account's presigned protected share is not locked -------------------

def test_a_presigned_protected_share_of_an_agent_tier_account_is_not_locked(client, agent):
    token, _, _ = agent
    status, started, _ = start_presigned(client, token, [
        {"path": "index.html", "size": len(INDEX), "content_type": "text/html"}], password="s3cret")
    assert status == 201, started
    for target in started["uploads"]:
        assert requests.put(target["url"], data=INDEX, headers=target["headers"], timeout=10).status_code == 200
    status, done, _ = call(client, "POST", f"/shares/{started['share_id']}/complete", token=token)
    # The agent tier has the paid features (docs/agents.md): protected, and open with its password.
    assert (status, done["status"]) == (200, "active"), done
    assert call(client, "GET", f"/s/{started['slug']}/?pw=s3cret")[0] == 200


# --- 25. An expiry at the end of time is a 400, not a 500 --------------------------------------

def test_a_key_expiry_past_year_9999_in_utc_is_a_400(client, user_token):
    # Valid ISO 8601, in the future, but in UTC it is in the year 10000: Python cannot hold it.
    far = "9999-12-31T23:00:00-05:00"
    status, body, _ = call(client, "POST", "/auth/api-key", {"name": "far", "expires_at": far}, token=user_token)
    assert (status, body["code"], body["details"][0]["field"]) == (400, "VALIDATION_ERROR", "expires_at"), body
    key = call(client, "POST", "/auth/api-key", {"name": "near"}, token=user_token)[1]
    status, body, _ = call(client, "PATCH", f"/auth/api-key/{key['key_id']}", {"expires_at": far}, token=user_token)
    assert (status, body["code"], body["details"][0]["field"]) == (400, "VALIDATION_ERROR", "expires_at"), body
    # The last representable moment is still a valid expiry.
    status, body, _ = call(client, "PATCH", f"/auth/api-key/{key['key_id']}",
                           {"expires_at": "9999-12-31T23:59:59Z"}, token=user_token)
    assert status == 200 and body["expires_at"] == "9999-12-31T23:59:59.000Z", body


# --- 26. A redelivered upgrade does not reopen a cancelled customer's locked shares -----------

def test_a_redelivered_upgrade_event_does_not_unlock_the_shares_of_a_cancelled_customer(hooks):
    upgrade = event("checkout.session.completed", checkout_session(UID, sub_id="sub_A"), NOW - 100)
    assert deliver(hooks, upgrade)[1]["outcome"] == "applied"
    make_pro_share()
    assert deliver(hooks, event("customer.subscription.deleted", subscription("canceled", UID, sub_id="sub_A"),
                                NOW))[1]["outcome"] == "applied"
    assert Share.get("share#sh_abcdefghijkl").status == "locked"
    # Stripe delivers at least once: the old upgrade arrives again (a lost answer, a resend).
    status, body, _ = deliver(hooks, upgrade)
    assert (status, body["outcome"]) == (200, "duplicate")
    assert user().tier == "free"
    # The customer pays nothing: the protected share stays locked.
    assert Share.get("share#sh_abcdefghijkl").status == "locked"
    # Subscribing again does reopen it.
    deliver(hooks, event("customer.subscription.created", subscription("active", UID, sub_id="sub_B"), NOW + 10))
    assert User.get(UID).tier == "pro" and Share.get("share#sh_abcdefghijkl").status == "active"


# --- 27. An export's file name is ASCII, whatever the project is called -----------------------

def test_an_export_of_a_project_with_a_non_ascii_name_has_an_ascii_file_name(client, user_token):
    for project in ("日本語", "café", "٣"):
        assert call(client, "POST", "/spikes", {"type": "page", "projectKey": project, "comments": "x"},
                    token=user_token)[0] == 201
        response = client.http.get(f"/spikes/export?project={project}&format=csv",
                                   headers={"Authorization": f"Bearer {user_token}"})
        assert response.status_code == 200
        disposition = response.headers["Content-Disposition"]
        # HTTP servers write headers as Latin-1 (chalice local's http.server refuses anything
        # else and drops the answer); the file name is plain ASCII, so every server sends it.
        disposition.encode("ascii")
        assert disposition.startswith('attachment; filename="spikes-') and disposition.endswith('.csv"')
        assert "x" in response.body.decode("utf-8")


# --- 28. A customer whose renewal failed is sent to the portal, not into a second subscription -

def test_a_customer_whose_renewal_is_still_being_retried_gets_no_second_subscription(client, configured, user_token):
    uid = user_id_for("owner@example.com")
    # Pro, the renewal failed 8 days ago: the 7-day grace is over, so the account is free here,
    # while Stripe keeps retrying the same subscription (by default for up to two weeks).
    User(uid).update(actions=[User.tier.set("pro"), User.subscription_id.set("sub_A"),
                              User.subscription_status.set("past_due"), User.stripe_customer_id.set("cus_A"),
                              User.grace_until.set(int(time.time()) - 24 * 3600)])
    assert call(client, "GET", "/usage", token=user_token)[1]["tier"] == "free"
    for path in ("/billing/checkout", "/billing/checkout?tier=agent"):
        status, body, _ = call(client, "GET", path, token=user_token)
        # A second subscription would be charged too once the card works again.
        assert status == 200 and body["url"] is None, body
        assert "billing portal" in body["message"] and "GET /billing/portal" in body["message"]
    assert configured.calls("/v1/checkout/sessions") == []
    # Once Stripe gives up on it (unpaid or cancelled), a new subscription is the way back.
    User(uid).update(actions=[User.tier.set("free"), User.subscription_status.set("unpaid")])
    status, body, _ = call(client, "GET", "/billing/checkout", token=user_token)
    assert status == 200 and body["url"].startswith("https://checkout.stripe.com/")


# --- 29. Revoking a key revokes the keys it created ---------------------------------------------

def test_revoking_a_key_revokes_the_keys_it_created(client, user_token):
    leaked = call(client, "POST", "/auth/api-key", {"name": "ci", "scopes": "keys:manage spikes:read"},
                  token=user_token)[1]
    # Whoever holds the leaked key mints keys of their own with it, and keys with those.
    child = call(client, "POST", "/auth/api-key", {"name": "spare"}, token=leaked["api_key"])[1]
    grandchild = call(client, "POST", "/auth/api-key", {"name": "spare 2"}, token=child["api_key"])[1]
    other = call(client, "POST", "/auth/api-key", {"name": "deploy"}, token=user_token)[1]
    assert call(client, "GET", "/spikes", token=grandchild["api_key"])[0] == 200

    assert call(client, "DELETE", f"/auth/api-key/{leaked['key_id']}", token=user_token)[0] == 200
    for key in (leaked, child, grandchild):
        status, body, _ = call(client, "GET", "/me", token=key["api_key"])
        assert (status, body["code"]) == (401, "AUTH_FAILED"), key["name"]
    assert call(client, "GET", "/me", token=other["api_key"])[0] == 200  # keys made otherwise stay
    listed = {entry["key_id"]: entry for entry in call(client, "GET", "/auth/api-keys", token=user_token)[1]}
    assert all(listed[key["key_id"]]["revoked_at"] for key in (leaked, child, grandchild))
    assert listed[other["key_id"]]["revoked_at"] is None


def test_a_key_revoked_while_it_creates_a_key_creates_nothing(client, user_token):
    parent = call(client, "POST", "/auth/api-key", {"name": "ci", "scopes": "keys:manage"}, token=user_token)[1]
    # The key authenticated a moment before its owner revoked it, and creates a key after.
    key, owner = apikeys.authenticate(parent["api_key"], deps.settings())
    call(client, "DELETE", f"/auth/api-key/{parent['key_id']}", token=user_token)
    with pytest.raises(AuthFailed):
        apikeys.create(owner, apikeys.KeyRequest(name="escaped"), actor=key)
    names = [entry["name"] for entry in call(client, "GET", "/auth/api-keys", token=user_token)[1]]
    assert names == ["ci"]


def test_keys_made_a_moment_before_the_revocation_are_revoked_while_the_owner_index_lags(client, user_token,
                                                                                      monkeypatch):
    """The owner index is eventually consistent: a key made just before its parent's
    revocation may not be listed yet. The parent's own item names what it made (written in
    each creation's transaction, read strongly consistent after revoking it), so nothing
    escapes (docs/security.md, finding 35)."""
    from chalicelib.store import apikeys as key_store
    leaked = call(client, "POST", "/auth/api-key", {"name": "ci", "scopes": "keys:manage spikes:read"},
                  token=user_token)[1]
    child = call(client, "POST", "/auth/api-key", {"name": "spare"}, token=leaked["api_key"])[1]
    grandchild = call(client, "POST", "/auth/api-key", {"name": "spare 2"}, token=child["api_key"])[1]
    listed_before = key_store.owned_by
    monkeypatch.setattr(key_store, "owned_by", lambda user_id, newest_first=True: [
        key for key in listed_before(user_id, newest_first) if not (key.created_by or "").startswith("key:")])

    assert call(client, "DELETE", f"/auth/api-key/{leaked['key_id']}", token=user_token)[0] == 200
    for key in (leaked, child, grandchild):
        status, body, _ = call(client, "GET", "/me", token=key["api_key"])
        assert (status, body["code"]) == (401, "AUTH_FAILED"), key["name"]
    # Revoking again (idempotent) finds nothing left to revoke.
    assert call(client, "DELETE", f"/auth/api-key/{leaked['key_id']}", token=user_token)[0] == 200


# --- 30. A share's exported feedback shows reviewers' addresses only with spikes:read ----------

def test_a_shares_export_shows_reviewers_emails_only_to_a_key_with_spikes_read(client, user_token):
    reviewer = {"id": "r-1", "name": "Jane", "email": "jane@example.com"}

    def shared_with_feedback(name: str) -> dict:
        share = share_site(client, user_token, name)
        assert call(client, "POST", "/spikes", {"type": "page", "projectKey": share["share_id"], "comments": "hi",
                                                "reviewer": reviewer})[0] == 201
        return share

    def key_with(scopes: str) -> str:
        return call(client, "POST", "/auth/api-key", {"scopes": scopes}, token=user_token)[1]["api_key"]

    # A deploy job's key publishes and removes mockups; it was never given the feedback's people.
    deployer = key_with("shares:read shares:write")
    share = shared_with_feedback("Survey")
    status, body, _ = call(client, "GET", f"/shares/{share['slug']}", token=deployer)
    assert status == 200 and body["exported_spikes"][0]["reviewer"] == {"id": "r-1", "name": "Jane"}
    status, body, _ = call(client, "DELETE", f"/shares/{share['share_id']}", token=deployer)
    assert status == 200 and body["exported_spikes"][0]["reviewer"] == {"id": "r-1", "name": "Jane"}

    # With spikes:read, and with the owner's session (`spikes unshare`), the addresses are there.
    share = shared_with_feedback("Survey 2")
    assert call(client, "GET", f"/shares/{share['slug']}", token=key_with("read"))[1][
        "exported_spikes"][0]["reviewer"] == reviewer
    assert call(client, "GET", f"/shares/{share['slug']}", token=user_token)[1]["exported_spikes"][0][
        "reviewer"] == reviewer
    assert call(client, "DELETE", f"/shares/{share['share_id']}", token=user_token)[1]["exported_spikes"][0][
        "reviewer"] == reviewer
