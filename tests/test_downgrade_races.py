"""A subscription that ends while a request is under way: the write holds the owner to the tier
its stored state gives then, not the one the request read at its start (docs/security.md, the
findings after 98, which did so for Pro features)."""
from __future__ import annotations

import pytest

from chalicelib import clock, deps
from chalicelib.services import metering, quota_reset, quotas
from chalicelib.store.models import Share, User
from tests.conftest import call
from tests.test_shares import INDEX, all_items, make_pro, s3_keys, share_site, start_presigned, upload, user_of


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
        client, user_token, env, monkeypatch, presigned):
    env(FREE_SHARE_LIMIT="1")
    make_pro("owner@example.com")
    share_site(client, user_token, "kept")
    _cancel_before_the_write(monkeypatch, "owner@example.com")
    if presigned:
        status, body, _ = start_presigned(client, user_token, [
            {"path": "index.html", "size": len(INDEX), "content_type": "text/html"}], name="late")
    else:
        status, body, _ = upload(client, user_token, metadata={"name": "late"})
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
def test_the_share_limit_condition(client, user_token, limits, expected):
    """None only when no tier has a limit; a free owner with one share is under 5, not under 1."""
    share_site(client, user_token, "one")
    settings = deps.settings().model_copy(update={"pro_share_limit": 10, **limits})
    condition = quotas.under_share_limit(settings, clock.epoch())
    if expected is None:
        assert condition is None
        return
    user = user_of("owner@example.com")
    assert bool(list(User.query(user.user_id, filter_condition=condition, consistent_read=True))) is expected
