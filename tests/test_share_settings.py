"""PATCH /shares/{key}: rename, set/change/remove a password and a webhook URL (Pro to set)."""
from __future__ import annotations

from urllib.parse import quote

import pytest

from chalicelib.store.models import Share, User
from tests.conftest import call, sign_in
from tests.test_shares import make_pro, share_site


def get_page(client, path, headers=None):
    response = client.http.request("GET", path, headers={"Accept": "text/html", **(headers or {})})
    return response.status_code, response.body, response.headers


def test_owner_renames_and_protects_a_share_then_removes_the_password(client, user_token):
    make_pro("owner@example.com")
    share = share_site(client, user_token, "Open site")
    status, body, _ = call(client, "PATCH", f"/shares/{share['share_id']}", {"name": "Renamed", "password": "pw one"},
                           token=user_token)
    assert status == 200, body
    assert (body["name"], body["password_protected"], body["slug"]) == ("Renamed", True, share["slug"])
    assert get_page(client, f"/s/{share['slug']}/")[0] == 401
    status, _, headers = get_page(client, f"/s/{share['slug']}/?pw={quote('pw one')}")
    assert status == 303  # on to the address without the password (docs/security.md, 89)
    cookie = headers["Set-Cookie"].split(";", 1)[0]
    assert get_page(client, f"/s/{share['slug']}/", {"Cookie": cookie})[0] == 200

    # A new password locks out cookies of the old one.
    status, body, _ = call(client, "PATCH", f"/shares/{share['slug']}", {"password": "pw two"}, token=user_token)
    assert status == 200 and body["password_protected"] is True
    assert get_page(client, f"/s/{share['slug']}/", {"Cookie": cookie})[0] == 401
    assert get_page(client, f"/s/{share['slug']}/?pw={quote('pw two')}")[0] == 303

    status, body, _ = call(client, "PATCH", f"/shares/{share['share_id']}", {"password": None}, token=user_token)
    assert status == 200 and body["password_protected"] is False
    assert get_page(client, f"/s/{share['slug']}/")[0] == 200
    status, listed, _ = call(client, "GET", "/shares", token=user_token)
    assert [(s["name"], s["password_protected"]) for s in listed] == [("Renamed", False)]


def test_webhook_url_is_set_checked_and_removed(client, user_token):
    make_pro("owner@example.com")
    share = share_site(client, user_token, "Hooked")
    path = f"/shares/{share['share_id']}"
    status, body, _ = call(client, "PATCH", path, {"webhook_url": "https://10.0.0.5/hook"}, token=user_token)
    assert (status, body["code"], body["details"][0]["field"]) == (400, "VALIDATION_ERROR", "webhook_url")
    status, body, _ = call(client, "PATCH", path, {"webhook_url": "https://93.184.216.34/hook"}, token=user_token)
    assert (status, body["webhook_url"]) == (200, "https://93.184.216.34/hook")
    assert call(client, "GET", path, token=user_token)[1]["webhook_url"] == "https://93.184.216.34/hook"
    status, body, _ = call(client, "PATCH", path, {"webhook_url": ""}, token=user_token)
    assert (status, body["webhook_url"]) == (200, None)
    assert Share.get(f"share#{share['share_id']}").webhook_url is None


@pytest.mark.parametrize("change", [{"password": "secret"}, {"webhook_url": "https://93.184.216.34/hook"}])
def test_setting_pro_features_needs_pro_but_removing_does_not(client, user_token, change):
    share = share_site(client, user_token, "Free site")
    status, body, _ = call(client, "PATCH", f"/shares/{share['share_id']}", change, token=user_token)
    assert (status, body["code"]) == (403, "UPGRADE_REQUIRED")
    assert "upgrade_url" in body
    # Without Stripe the upgrade_url's checkout cannot start: the answer says where Pro comes from.
    assert "does not sell" in body["error"] and "docs/webhooks.md" in body["error"]
    field = next(iter(change))
    status, body, _ = call(client, "PATCH", f"/shares/{share['share_id']}", {field: None}, token=user_token)
    assert status == 200, body


def test_patch_refuses_strangers_unknown_fields_and_empty_names(client, user_token):
    share = share_site(client, user_token, "Mine")
    other = sign_in(client, "other@example.com")
    path = f"/shares/{share['share_id']}"
    status, body, _ = call(client, "PATCH", path, {"name": "theirs now"}, token=other)
    assert (status, body["code"]) == (404, "NOT_FOUND")
    assert call(client, "PATCH", path, {"name": "x"})[1]["code"] == "AUTH_REQUIRED"
    status, body, _ = call(client, "PATCH", path, {"slug": "new-slug"}, token=user_token)
    assert (status, body["code"]) == (400, "VALIDATION_ERROR")
    status, body, _ = call(client, "PATCH", path, {"name": "  "}, token=user_token)
    assert (status, body["details"][0]["field"]) == (400, "name")
    assert Share.get(f"share#{share['share_id']}").name == "Mine"


@pytest.mark.parametrize("change", [{"password": ""}, {"name": "Renamed"}])
def test_a_change_that_a_deletion_overtakes_is_404_and_the_deletion_finishes(client, user_token, monkeypatch, change):
    """The deletion's clean-up failed after its tombstone (503): the share is gone for the owner
    and the job finishes it. A PATCH that read the share just before must not bring it back:
    removing a locked share's password used to set it active again, which the job then forgot,
    leaving a share without files, off the owner's count (docs/security.md 101)."""
    from chalicelib import deps
    from chalicelib.services import share_cleanup
    from chalicelib.services import shares as share_service
    from chalicelib.store import share_tombstones
    from tests.test_shares import user_of
    make_pro("owner@example.com")
    share_id = share_site(client, user_token, "Doomed", password="pw")["share_id"]
    Share.get(f"share#{share_id}").update(actions=[Share.status.set("locked")])
    user_of("owner@example.com").update(actions=[User.tier.set("free")])  # Pro ended: locked
    read = share_service.owned_as_read

    def read_then_deletion_starts(user, key, include_deleting=False):
        share = read(user, key, include_deleting)
        share_tombstones.tombstone(Share.get(f"share#{share_id}"), user.user_id)
        return share
    monkeypatch.setattr(share_service, "owned_as_read", read_then_deletion_starts)

    status, body, _ = call(client, "PATCH", f"/shares/{share_id}", change, token=user_token)
    assert (status, body["code"]) == (404, "NOT_FOUND")
    assert Share.get(f"share#{share_id}").status == "deleting"
    share_cleanup.finish_pending_deletions(deps.share_files(), now=1_800_000_000)
    assert Share.count(f"share#{share_id}") == 0
    assert int(user_of("owner@example.com").active_shares or 0) == 0


def test_a_server_that_sells_pro_sends_a_free_user_to_its_upgrade_url(client, user_token, env):
    env(STRIPE_SECRET_KEY="sk_test_x", STRIPE_PRICE_ID="price_x")
    share = share_site(client, user_token, "Sold site")
    status, body, _ = call(client, "PATCH", f"/shares/{share['share_id']}", {"password": "secret"}, token=user_token)
    assert (status, body["code"], body["error"]) == (403, "UPGRADE_REQUIRED",
                                                     "Password-protected shares require a Pro subscription")
    assert body["upgrade_url"].endswith("/dashboard#/account")
