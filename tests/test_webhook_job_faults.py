"""The delivery job under partial failure: a step that raises for one delivery (the store busy
for its share, say) or a releases pass that raises before its first release ends neither the
run nor the other deliveries; the delivery is tried again once its claim runs out
(docs/webhooks.md, docs/security.md)."""
from __future__ import annotations

import json
import time

from chalicelib.errors import DependencyUnavailable
from chalicelib.services import webhook_delivery
from tests.conftest import sign_in
from tests.test_outbound_webhooks import _deliver, _post_spike, receiver  # noqa: F401 - fixtures
from tests.test_shares import make_pro, share_site


def _two_hooked_shares(client, env, receiver) -> list:  # noqa: F811
    env(WEBHOOK_ALLOW_LOOPBACK="true", WEBHOOK_TIMEOUT_SECONDS="3")
    token = sign_in(client, "owner@example.com")
    make_pro("owner@example.com")
    return [share_site(client, token, name, webhook_url=receiver.url) for name in ("First", "Second")]


def _busy(*args, **kwargs):
    raise DependencyUnavailable("The store is busy; retry shortly")


def test_a_delivery_whose_step_raises_does_not_stop_the_others(client, env, receiver, monkeypatch):  # noqa: F811
    first, second = _two_hooked_shares(client, env, receiver)
    _post_spike(client, first, "first")
    _post_spike(client, second, "second")
    read_share = webhook_delivery.share_store.get_by_id
    monkeypatch.setattr(webhook_delivery.share_store, "get_by_id", lambda share_id, consistent=False: (
        _busy() if share_id == first["share_id"] else read_share(share_id, consistent)))
    report = _deliver()
    assert (report.attempted, report.delivered, report.errors) == (2, 1, 1)
    assert [json.loads(r["body"])["share"]["id"] for r in receiver.requests] == [second["share_id"]]
    monkeypatch.setattr(webhook_delivery.share_store, "get_by_id", read_share)
    assert _deliver().attempted == 0  # still claimed: no second attempt at once
    assert _deliver(time.time() + webhook_delivery.CLAIM_SECONDS + 1).delivered == 1
    assert json.loads(receiver.requests[-1]["body"])["share"]["id"] == first["share_id"]


def test_a_releases_pass_that_raises_does_not_stop_the_deliveries(client, env, receiver, monkeypatch):  # noqa: F811
    first, _ = _two_hooked_shares(client, env, receiver)
    _post_spike(client, first)
    monkeypatch.setattr(webhook_delivery.held_deliveries, "finish_releases", _busy)
    report = _deliver()
    assert report.delivered == 1 and report.releases_stopped == "error: DependencyUnavailable"


def test_a_run_stops_when_the_store_fails_for_every_delivery(client, env, receiver, monkeypatch):  # noqa: F811
    first, _ = _two_hooked_shares(client, env, receiver)
    for number in range(webhook_delivery.MAX_ERRORS_IN_A_ROW + 2):
        _post_spike(client, first, f"spike {number}")
    monkeypatch.setattr(webhook_delivery.share_store, "get_by_id", _busy)
    report = _deliver()
    assert (report.attempted, report.errors) == (webhook_delivery.MAX_ERRORS_IN_A_ROW,) * 2
