"""A subscription that ends while a request is under way: the write holds the owner to the tier
its stored state gives then, not the one the request read at its start (docs/security.md, the
findings after 98, which did so for Pro features)."""
from __future__ import annotations

import pytest

from chalicelib import clock, deps
from chalicelib.services import metering, quota_reset, quotas
from chalicelib.store import pro_features, share_settings, share_tombstones
from chalicelib.store.files import ShareFiles
from chalicelib.store.models import Share, User
from tests.conftest import call, sign_in
from tests.test_agent_review_4 import upload_files
from tests.test_serving import get
from tests.test_shares import INDEX, all_items, make_pro, s3_keys, share_site, start_presigned, upload, user_of


@pytest.fixture
def backend_token(backend_client) -> str:
    """The races' conditions (NOT, IN, OR; a lock on a password) run on moto and on DynamoDB Local."""
    return sign_in(backend_client, "owner@example.com")


def _cancel(email: str) -> None:
    """The Stripe cancellation lands: the account is free and its shares' Pro features are
    stripped (once, as the event does)."""
    user = user_of(email)
    user.update(actions=[User.tier.set("free")])
    quota_reset.change_pro_features(deps.settings(), user.user_id, clock.now())


def _cancel_before_the_write(monkeypatch, email: str) -> None:
    """The cancellation lands after the request read the account (its share limit) and before the
    share's transaction: between them, the files go up and the agent tier's price is read."""
    share_charge = metering.share_charge

    def charge_while_cancelled(*args, **kwargs):
        _cancel(email)
        return share_charge(*args, **kwargs)
    monkeypatch.setattr(metering, "share_charge", charge_while_cancelled)


# --- The share limit holds against a downgrade -------------------------------------------------

def _shares() -> list:
    return sorted(share.name for share in all_items(Share) if share.pk.startswith("share#"))


@pytest.mark.parametrize("presigned", [False, True])
def test_a_share_past_the_free_limit_started_while_the_subscription_ends_is_refused(
        backend_client, backend_token, env, monkeypatch, presigned):
    env(FREE_SHARE_LIMIT="1")
    make_pro("owner@example.com")
    share_site(backend_client, backend_token, "kept")
    _cancel_before_the_write(monkeypatch, "owner@example.com")
    if presigned:
        status, body, _ = start_presigned(backend_client, backend_token, [
            {"path": "index.html", "size": len(INDEX), "content_type": "text/html"}], name="late")
    else:
        status, body, _ = upload(backend_client, backend_token, metadata={"name": "late"})
    assert (status, body["code"], body["limit"]) == (429, "SHARE_LIMIT", 1), body
    assert _shares() == ["kept"] and user_of("owner@example.com").active_shares == 1
    assert len(s3_keys()) == 1  # the refused direct upload's files are removed


def test_a_share_within_the_free_limit_is_made_whatever_the_tier_becomes(client, user_token, env, monkeypatch):
    env(FREE_SHARE_LIMIT="2")
    make_pro("owner@example.com")
    share_site(client, user_token, "kept")
    _cancel_before_the_write(monkeypatch, "owner@example.com")
    assert upload(client, user_token, metadata={"name": "second"})[0] == 201
    assert _shares() == ["kept", "second"]


def test_a_paid_tier_still_lifts_the_limit_and_a_lapsed_grace_does_not(client, user_token, env):
    env(FREE_SHARE_LIMIT="1")
    make_pro("owner@example.com")
    share_site(client, user_token, "one")
    share_site(client, user_token, "two")
    # Past due and its grace over, the stored tier not flipped yet by the job: free, as effective_tier reads it.
    user_of("owner@example.com").update(actions=[User.grace_until.set(clock.epoch() - 60)])
    status, body, _ = upload(client, user_token, metadata={"name": "three"})
    assert (status, body["code"], body["limit"]) == (429, "SHARE_LIMIT", 1)


@pytest.mark.parametrize("limits,expected", [
    ({}, True), ({"free_share_limit": 1}, False), ({"free_share_limit": None}, True),
    ({"free_share_limit": None, "pro_share_limit": None, "agent_share_limit": None}, None),
])
def test_the_share_limit_condition(backend_client, backend_token, limits, expected):
    """None only when no tier has a limit; a free owner with one share is under 5, not under 1."""
    share_site(backend_client, backend_token, "one")
    settings = deps.settings().model_copy(update={"pro_share_limit": 10, **limits})
    condition = quotas.under_share_limit(settings, clock.epoch())
    if expected is None:
        assert condition is None
        return
    user = user_of("owner@example.com")
    assert bool(list(User.query(user.user_id, filter_condition=condition, consistent_read=True))) is expected


# --- A share is locked only while it has a password ---------------------------------------------

def _protected_share(client, user_token) -> dict:
    make_pro("owner@example.com")
    return share_site(client, user_token, "Guarded", password="s3cret")


def _opens_without_a_password(client, share: dict) -> bool:
    status, _, _ = get(client, f"/s/{share['slug']}/")
    return status == 200


def test_a_password_removed_while_the_subscription_ends_leaves_the_share_open(backend_client, backend_token, monkeypatch):
    """The PATCH read the share active; the cancellation locked it before the PATCH wrote: the
    password went, the lock stayed, and nobody could open the share."""
    share = _protected_share(backend_client, backend_token)
    update = share_settings.update

    def update_after_the_cancellation(*args, **kwargs):
        _cancel("owner@example.com")
        assert Share.get(f"share#{share['share_id']}").status == "locked"
        return update(*args, **kwargs)
    monkeypatch.setattr(share_settings, "update", update_after_the_cancellation)
    status, body, _ = call(backend_client, "PATCH", f"/shares/{share['share_id']}", {"password": ""}, token=backend_token)
    assert (status, body["status"]) == (200, "active"), body
    stored = Share.get(f"share#{share['share_id']}")
    assert (stored.status, stored.password_hash) == ("active", None)
    assert _opens_without_a_password(backend_client, share)


def test_a_password_set_while_the_subscription_ends_is_refused_and_the_share_stays_locked(
        client, user_token, monkeypatch):
    share = _protected_share(client, user_token)
    update = share_settings.update

    def update_after_the_cancellation(*args, **kwargs):
        _cancel("owner@example.com")
        return update(*args, **kwargs)
    monkeypatch.setattr(share_settings, "update", update_after_the_cancellation)
    status, body, _ = call(client, "PATCH", f"/shares/{share['share_id']}", {"password": "new"}, token=user_token)
    assert (status, body["code"]) == (403, "UPGRADE_REQUIRED"), body
    stored = Share.get(f"share#{share['share_id']}")
    assert stored.status == "locked" and stored.password_hash


def _strip_as_read(share_id: str, stale: Share) -> int:
    """The cancellation's stripping, with the share as it read it before what happened since."""
    owner = user_of("owner@example.com")
    owner.update(actions=[User.tier.set("free")])
    return pro_features._change_pro_features(owner.user_id, quotas.while_paid(owner.user_id, clock.epoch(), paid=False),
                                             lock=True, shares=[stale])


def test_a_stripping_that_read_the_password_before_its_removal_does_not_lock_the_share(backend_client, backend_token):
    share = _protected_share(backend_client, backend_token)
    stale = Share.get(f"share#{share['share_id']}")
    assert call(backend_client, "PATCH", f"/shares/{share['share_id']}", {"password": ""}, token=backend_token)[0] == 200
    assert _strip_as_read(share["share_id"], stale) == 0
    stored = Share.get(f"share#{share['share_id']}")
    assert (stored.status, stored.password_hash) == ("active", None)
    assert _opens_without_a_password(backend_client, share)


def test_a_stripping_that_read_a_share_before_its_deletion_started_leaves_it_deleting(client, user_token):
    """Locked again, a share whose deletion started would be forgotten by the deletion job (101)."""
    share = _protected_share(client, user_token)
    stale = Share.get(f"share#{share['share_id']}")
    share_tombstones.tombstone(Share.get(f"share#{share['share_id']}"), stale.owner_id)
    assert _strip_as_read(share["share_id"], stale) == 0
    assert Share.get(f"share#{share['share_id']}").status == "deleting"


def test_a_stripping_refused_by_a_change_meanwhile_still_drops_the_webhook(client, user_token):
    """Worked out again from the share as stored: no lock (no password left), the webhook dropped."""
    make_pro("owner@example.com")
    share = share_site(client, user_token, "Hooked", password="s3cret", webhook_url="https://93.184.216.34/hook")
    stale = Share.get(f"share#{share['share_id']}")
    assert call(client, "PATCH", f"/shares/{share['share_id']}", {"password": ""}, token=user_token)[0] == 200
    assert _strip_as_read(share["share_id"], stale) == 1
    stored = Share.get(f"share#{share['share_id']}")
    assert (stored.status, stored.webhook_url, stored.password_hash) == ("active", None, None)


def test_a_password_removed_while_a_protected_upload_completes_after_the_cancellation_leaves_it_open(
        backend_client, backend_token, monkeypatch):
    """The completion read the owner free and the share protected, so it was to lock the share;
    while it copied the files the owner removed the password: the lock landed on a share with no
    password, and nobody could open it until a second PATCH."""
    make_pro("owner@example.com")
    status, started, _ = start_presigned(backend_client, backend_token, [
        {"path": "index.html", "size": len(INDEX), "content_type": "text/html"}], password="s3cret")
    assert status == 201, started
    upload_files(started)
    _cancel("owner@example.com")  # the stripping skips a pending share: its completion locks it
    publish = ShareFiles.publish

    def publish_while_the_password_goes(self, *args, **kwargs):
        published = publish(self, *args, **kwargs)
        status, body, _ = call(backend_client, "PATCH", f"/shares/{started['share_id']}", {"password": ""}, token=backend_token)
        assert status == 200, body
        return published
    monkeypatch.setattr(ShareFiles, "publish", publish_while_the_password_goes)
    status, done, _ = call(backend_client, "POST", f"/shares/{started['share_id']}/complete", token=backend_token)
    assert (status, done["status"]) == (200, "active"), done
    stored = Share.get(f"share#{started['share_id']}")
    assert (stored.status, stored.password_hash) == ("active", None)
    assert _opens_without_a_password(backend_client, started)


def test_a_password_kept_while_a_protected_upload_completes_after_the_cancellation_locks_it(
        client, user_token):
    make_pro("owner@example.com")
    status, started, _ = start_presigned(client, user_token, [
        {"path": "index.html", "size": len(INDEX), "content_type": "text/html"}], password="s3cret")
    upload_files(started)
    _cancel("owner@example.com")
    status, done, _ = call(client, "POST", f"/shares/{started['share_id']}/complete", token=user_token)
    assert (status, done["status"]) == (200, "locked"), done
    assert Share.get(f"share#{started['share_id']}").password_hash
