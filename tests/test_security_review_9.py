"""The ninth review (docs/security.md, "The ninth review"): outbound and inbound webhooks,
billing, the dashboard and the OpenAPI description, read again adversarially. Each test failed
before its fix."""
from __future__ import annotations

import socket

import pytest

from chalicelib import clock, deps
from chalicelib.errors import NotFound
from chalicelib.services import outbound_webhooks, quota_reset, shares
from chalicelib.store.files import ShareFiles
from chalicelib.store.models import Share, User
from tests.conftest import call
from tests.test_agent_review_4 import upload_files
from tests.test_serving import get
from tests.test_shares import INDEX, all_items, make_pro, s3_keys, share_site, start_presigned, upload, user_of


# --- A Pro feature set while the subscription ends stays off ---------------------------------

def _cancel(email: str) -> None:
    """The Stripe cancellation lands: the account is free and its shares' Pro features are
    stripped (once, as the event does)."""
    user = user_of(email)
    if user.tier != "free":
        user.update(actions=[User.tier.set("free")])
        quota_reset.change_pro_features(deps.settings(), user.user_id, clock.now())


def _downgrade_while_resolving(monkeypatch, email: str) -> None:
    """The webhook host's name server answers late (its owner runs it); meanwhile the Stripe
    cancellation lands."""
    def slow_getaddrinfo(host, *args, **kwargs):
        _cancel(email)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 443))]
    monkeypatch.setattr(socket, "getaddrinfo", slow_getaddrinfo)


@pytest.mark.parametrize("change", [{"webhook_url": "https://hooks.example.com/spikes"},
                                    {"webhook_url": "https://hooks.example.com/spikes", "password": "kept"}])
def test_a_pro_feature_patched_in_while_the_subscription_ends_is_refused(client, user_token, monkeypatch, change):
    make_pro("owner@example.com")
    share = share_site(client, user_token, "Racing")
    _downgrade_while_resolving(monkeypatch, "owner@example.com")
    status, body, _ = call(client, "PATCH", f"/shares/{share['share_id']}", change, token=user_token)
    assert (status, body["code"]) == (403, "UPGRADE_REQUIRED"), body
    stored = Share.get(f"share#{share['share_id']}")
    assert stored.webhook_url is None and stored.webhook_secret_nonce is None and stored.password_hash is None


@pytest.mark.parametrize("metadata", [{"webhook_url": "https://hooks.example.com/spikes"},
                                      {"webhook_url": "https://hooks.example.com/spikes", "password": "kept"}])
def test_a_share_with_pro_features_created_while_the_subscription_ends_is_refused(client, user_token, monkeypatch,
                                                                                   metadata):
    make_pro("owner@example.com")
    _downgrade_while_resolving(monkeypatch, "owner@example.com")
    status, body, _ = upload(client, user_token, metadata={"name": "Racing", **metadata})
    assert (status, body["code"]) == (403, "UPGRADE_REQUIRED"), body
    assert [share for share in all_items(Share) if share.share_id] == []
    assert int(user_of("owner@example.com").active_shares or 0) == 0
    assert s3_keys() == []  # the files uploaded first are removed again


def test_a_presigned_share_with_pro_features_started_while_the_subscription_ends_is_refused(
        client, user_token, monkeypatch):
    make_pro("owner@example.com")
    _downgrade_while_resolving(monkeypatch, "owner@example.com")
    status, body, _ = call(client, "POST", "/shares/uploads", {
        "name": "Racing", "webhook_url": "https://hooks.example.com/spikes",
        "files": [{"path": "index.html", "size": 10, "content_type": "text/html"}]}, token=user_token)
    assert (status, body["code"]) == (403, "UPGRADE_REQUIRED"), body
    assert [share for share in all_items(Share) if share.share_id] == []


def test_a_protected_upload_completed_while_the_subscription_ends_is_locked(client, user_token, monkeypatch):
    """The completion read the account as Pro, copied the files (seconds for many), and opened
    the share: the cancellation's stripping, landing meanwhile, skips a pending share (its
    completion locks it), so a free account kept an open protected share."""
    make_pro("owner@example.com")
    status, started, _ = start_presigned(client, user_token, [
        {"path": "index.html", "size": len(INDEX), "content_type": "text/html"}], password="s3cret")
    assert status == 201, started
    upload_files(started)
    publish = ShareFiles.publish

    def publish_while_cancelled(self, *args, **kwargs):
        published = publish(self, *args, **kwargs)
        _cancel("owner@example.com")
        return published
    monkeypatch.setattr(ShareFiles, "publish", publish_while_cancelled)
    status, done, _ = call(client, "POST", f"/shares/{started['share_id']}/complete", token=user_token)
    assert (status, done["status"]) == (200, "locked"), done
    status, page, _ = get(client, f"/s/{started['slug']}/?pw=s3cret")
    assert status == 403 and b"SHARE_UNAVAILABLE" in page


# --- A resume that a deletion overtakes leaves no share behind ---------------------------------

def test_a_resume_overtaken_by_the_shares_deletion_leaves_nothing_behind(client, user_token, monkeypatch):
    """The resume read the share, its owner deleted it (another tab, the CLI), then the resume
    wrote the pause's end unconditioned: DynamoDB made a share item of the key alone, and the
    resume failed (500). Every read of that id then failed too: the owner's GET, and every
    reviewer's POST /spikes to it, for good."""
    make_pro("owner@example.com")
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, *args, **kwargs: [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 443))])
    share = share_site(client, user_token, "Hooked", webhook_url="https://hooks.example.com/spikes")
    as_read = shares.get_owned(user_of("owner@example.com"), share["share_id"])
    assert call(client, "DELETE", f"/shares/{share['share_id']}", token=user_token)[0] == 200
    with pytest.raises(NotFound):
        outbound_webhooks.resume(as_read)
    assert [item.pk for item in all_items(Share) if item.pk == f"share#{share['share_id']}"] == []
    assert call(client, "GET", f"/shares/{share['share_id']}", token=user_token)[0] == 404
    status, body, _ = call(client, "POST", "/spikes", {"type": "page", "projectKey": share["share_id"],
                                                       "rating": "love", "comments": "still here"})
    assert status == 201, body
