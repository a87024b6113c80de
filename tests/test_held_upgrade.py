"""Held webhook events are stranded neither by an upgrade nor by a request that dies. Events
an earlier version held (before held events were indexed by share) are indexed by ``make
deploy`` and the local server's start, and the delivery job ends those whose webhook is no
longer paused (docs/deploy.md "Upgrading")."""
from __future__ import annotations

import json
import time

from chalicelib.services import held_deliveries
from chalicelib.store import deliveries
from chalicelib.store.models import Delivery, LedgerItem, Share
from tests.conftest import call, sign_in
from tests.test_outbound_webhooks import _deliver, _post_spike, hooked, receiver  # noqa: F401 - fixtures
from tests.test_security_review_5 import _pause
from tests.test_shares import make_pro, share_site


def _as_an_earlier_version_held_them(share_id: str) -> None:
    """What the earlier version's hold left: paused, out of every partition, no TTL."""
    for delivery in Delivery.share_index.query(share_id):
        delivery.update(actions=[Delivery.due.remove(), Delivery.next_attempt_at.remove(),
                                 Delivery.expires_at.remove()])


def _held(share_id: str) -> list:
    return [d for d in Delivery.share_index.query(share_id) if d.status == deliveries.PAUSED]


def test_events_held_by_an_earlier_version_are_released_or_cancelled_after_the_upgrade(
        backend_client, env, receiver):  # noqa: F811
    """On moto and DynamoDB Local: one share stays paused, the other lost its URL to a
    downgrade under the earlier version (which left its held events held). After the upgrade
    the first's are released by its resume and the second's cancelled; none is sent twice."""
    env(WEBHOOK_ALLOW_LOOPBACK="true", WEBHOOK_TIMEOUT_SECONDS="3")
    token = sign_in(backend_client, "owner@example.com")
    make_pro("owner@example.com")
    kept, dropped = (share_site(backend_client, token, name, webhook_url=receiver.url) for name in ("Kept", "Dropped"))
    for share in (kept, dropped):
        _pause(share["share_id"])
        _post_spike(backend_client, share, f"for {share['slug']}")
    assert _deliver().paused == 2
    for share in (kept, dropped):
        _as_an_earlier_version_held_them(share["share_id"])
    Share.get(f"share#{dropped['share_id']}").update(actions=[Share.webhook_url.remove()])

    # Before the upgrade nothing can reach them: a resume releases none.
    assert call(backend_client, "POST", f"/shares/{kept['share_id']}/webhook/resume", token=token)[1]["queued"] == 0
    _pause(kept["share_id"])
    now = time.time()
    assert _deliver(now).held_ended == 0 and len(_held(kept["share_id"]) + _held(dropped["share_id"])) == 2

    # The tables as an earlier version left them: never upgraded (a fresh start marks it done).
    LedgerItem(deliveries.HELD_UPGRADE_MARKER).delete()
    assert deliveries.upgrade_held(now, held_deliveries.max_event_age()) == 2
    assert deliveries.upgrade_held(now, held_deliveries.max_event_age()) == 0  # once
    for share in (kept, dropped):
        [held] = _held(share["share_id"])
        assert held.expires_at >= deliveries.recorded_at(held) + held_deliveries.max_event_age()
    assert _deliver(now).held_ended == 1  # the downgraded share's: cancelled; the paused one waits
    assert [d.status for d in Delivery.share_index.query(dropped["share_id"])] == [deliveries.CANCELLED]
    assert len(_held(kept["share_id"])) == 1 and receiver.requests == []

    status, resumed, _ = call(backend_client, "POST", f"/shares/{kept['share_id']}/webhook/resume", token=token)
    assert (status, resumed["queued"]) == (200, 1)
    assert _deliver(now + 1).delivered == 1
    assert [json.loads(r["body"])["spike"]["comments"] for r in receiver.requests] == [f"for {kept['slug']}"]


def test_a_url_change_that_dies_after_the_change_still_gets_its_held_events_sent(client, hooked, receiver,  # noqa: F811
                                                                                  user_token, monkeypatch):
    """The release is recorded before the share changes: a request that stops between the new
    URL and ending the held events (a Lambda timeout) leaves them to the delivery job."""
    from chalicelib.services import shares as share_service
    _pause(hooked["share_id"])
    _post_spike(client, hooked, "held")
    assert _deliver().paused == 1
    change = share_service.share_settings.update

    def changes_then_dies(*args, **kwargs):
        change(*args, **kwargs)
        raise RuntimeError("the function ran out of time")
    with monkeypatch.context() as dying:
        dying.setattr(share_service.share_settings, "update", changes_then_dies)
        status, _, _ = call(client, "PATCH", f"/shares/{hooked['share_id']}", {"webhook_url": receiver.url + "2"},
                            token=user_token)
    assert status == 500
    assert Share.get(f"share#{hooked['share_id']}").webhook_url == receiver.url + "2"  # changed before it died
    report = _deliver()
    assert (report.held_ended, report.delivered) == (1, 1)
    [request] = receiver.requests
    assert request["path"] == "/hook2" and json.loads(request["body"])["spike"]["comments"] == "held"
