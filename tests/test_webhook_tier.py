"""Webhooks are a Pro feature when they are sent too, not only when the URL is set: once an
owner's Pro ends (its grace period over by the clock), the URL stays until the scheduled job
strips it, and meanwhile no event goes out and the test and resume routes answer the contract's
403 UPGRADE_REQUIRED. Events recorded meanwhile are held, sent if Pro comes back before the URL
is stripped and cancelled (with the reason) when it is (docs/webhooks.md, docs/security.md)."""
from __future__ import annotations

import time

from chalicelib.services import held_deliveries, webhook_delivery
from chalicelib.store import accounts
from chalicelib.store.models import Delivery, User
from tests.conftest import call, sign_in
from tests.factories import change_pro_features
from tests.test_held_deliveries import _downgrade
from tests.test_outbound_webhooks import _deliver, _post_spike, receiver  # noqa: F401 - fixtures
from tests.test_shares import make_pro, share_site, user_of


def _hooked(client, env, receiver) -> dict:  # noqa: F811
    env(WEBHOOK_ALLOW_LOOPBACK="true", WEBHOOK_TIMEOUT_SECONDS="3")
    token = sign_in(client, "owner@example.com")
    make_pro("owner@example.com")
    share = share_site(client, token, "Hooked", webhook_url=receiver.url)
    share["token"] = token
    return share


def _grace_ends_at(moment: float) -> None:
    """Past due: Pro until ``moment``, the stored tier not flipped yet by the job."""
    user_of("owner@example.com").update(actions=[User.grace_until.set(int(moment))])


def _deliveries(share_id: str) -> list:
    return sorted((d for d in Delivery.share_index.query(share_id)), key=lambda d: d.created_at)


def test_no_event_is_sent_once_the_grace_period_ends_and_the_strip_cancels_them(backend_client, env, receiver):  # noqa: F811
    """On moto and DynamoDB Local: an event is sent up to the last second of the grace period
    and held from its end; the job's strip then cancels it, with the reason, never sent."""
    share = _hooked(backend_client, env, receiver)
    ends = time.time() + 120
    _grace_ends_at(ends)
    _post_spike(backend_client, share, "in grace")
    assert _deliver(ends - 1).delivered == 1  # still Pro: sent
    _post_spike(backend_client, share, "after grace")
    report = _deliver(ends)
    assert (report.delivered, report.paused) == (0, 1)
    assert len(receiver.requests) == 1
    held = _deliveries(share["share_id"])[-1]
    assert (held.status, held.last_error, int(held.attempts)) == ("paused", webhook_delivery.HELD_NOT_PAID, 0)
    assert _deliver(ends + 600).attempted == 0  # held, not retried every run
    # The scheduled job persists the downgrade and strips the URL: the held event is cancelled.
    assert _downgrade("owner@example.com") == 1
    _deliver(ends + 700)
    cancelled = _deliveries(share["share_id"])[-1]
    assert (cancelled.status, cancelled.last_error) == ("cancelled", held_deliveries.WEBHOOK_REMOVED)
    assert len(receiver.requests) == 1


def test_events_held_after_the_grace_period_are_sent_when_the_owner_pays_again(client, env, receiver):  # noqa: F811
    share = _hooked(client, env, receiver)
    _grace_ends_at(time.time() - 60)
    _post_spike(client, share, "while unpaid")
    assert _deliver().paused == 1 and receiver.requests == []
    # The payment goes through before the job stripped the URL: Pro again, its features back on.
    owner_id = user_of("owner@example.com").user_id
    User(owner_id).update(actions=[User.grace_until.remove()])
    change_pro_features(owner_id, lock=False)
    report = _deliver(time.time() + 1)
    assert (report.held_ended, report.delivered) == (1, 1)
    assert [r["body"] for r in receiver.requests][0].count(b"while unpaid") == 1
    assert _deliveries(share["share_id"])[-1].status == "delivered"


def test_an_owner_who_paid_after_the_job_read_the_account_gets_the_event(client, env, receiver, monkeypatch):  # noqa: F811
    """The hold is conditioned on the owner's stored state: a payment stored after the job read
    the account makes it fail, and the event is sent rather than held with no release to come."""
    share = _hooked(client, env, receiver)
    stale = User(user_of("owner@example.com").user_id, tier="pro", grace_until=int(time.time()) - 60)
    reads, read_stored = [], accounts.get

    def read_owner(user_id, consistent=False):
        reads.append(consistent)
        return stale if len(reads) == 1 else read_stored(user_id, consistent)
    monkeypatch.setattr(webhook_delivery.accounts, "get", read_owner)
    _post_spike(client, share, "paid meanwhile")
    assert _deliver().delivered == 1
    assert reads == [False, True]


def test_a_deleted_shares_event_of_an_unpaid_owner_is_cancelled_with_the_reason(client, env, receiver):  # noqa: F811
    share = _hooked(client, env, receiver)
    _grace_ends_at(time.time() - 60)
    assert call(client, "DELETE", f"/shares/{share['share_id']}", token=share["token"])[0] == 200
    _deliver()
    [event] = [d for d in _deliveries(share["share_id"]) if d.event_type == "share.deleted"]
    assert (event.status, event.last_error) == ("cancelled", webhook_delivery.CANCELLED_NOT_PAID)
    assert receiver.requests == []


def test_the_test_and_resume_routes_need_pro(client, env, receiver):  # noqa: F811
    share = _hooked(client, env, receiver)
    _grace_ends_at(time.time() - 1)
    for path in ("webhook/test", "webhook/resume"):
        status, body, _ = call(client, "POST", f"/v1/shares/{share['slug']}/{path}", token=share["token"])
        assert status == 403 and body["code"] == "UPGRADE_REQUIRED", (path, body)
        assert body["upgrade_url"].endswith("/dashboard#/account")
    assert list(Delivery.share_index.query(share["share_id"])) == [] and receiver.requests == []
    # What happened stays visible: the state and the log need no Pro.
    for path in ("webhook", "webhook/deliveries"):
        assert call(client, "GET", f"/v1/shares/{share['slug']}/{path}", token=share["token"])[0] == 200
    _grace_ends_at(time.time() + 3600)  # paid again (still within a grace period)
    status, body, _ = call(client, "POST", f"/v1/shares/{share['slug']}/webhook/test", token=share["token"])
    assert status == 200 and body["ok"] is True


def test_webhook_tests_are_rate_limited_per_account(client, env, receiver):  # noqa: F811
    """Each test is an outbound request made there and then: without a limit an owner could make
    the server a request generator. Ten a minute per account, whichever of its shares."""
    share = _hooked(client, env, receiver)
    other = share_site(client, share["token"], "Hooked too", webhook_url=receiver.url)
    for n in range(10):
        slug = (share if n % 2 else other)["slug"]
        status, body, headers = call(client, "POST", f"/v1/shares/{slug}/webhook/test", token=share["token"])
        assert status == 200 and body["ok"] is True, (n, body)
    assert headers["X-RateLimit-Limit"] == "10" and headers["X-RateLimit-Remaining"] == "0"
    status, body, headers = call(client, "POST", f"/v1/shares/{share['slug']}/webhook/test", token=share["token"])
    assert status == 429 and body["code"] == "RATE_LIMIT", body
    assert int(headers["Retry-After"]) >= 1
    assert len(receiver.requests) == 10
    # Another account's tests are its own.
    token = sign_in(client, "second@example.com")
    make_pro("second@example.com")
    theirs = share_site(client, token, "Theirs", webhook_url=receiver.url)
    assert call(client, "POST", f"/v1/shares/{theirs['slug']}/webhook/test", token=token)[0] == 200
