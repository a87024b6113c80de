"""Events held while a share's webhook is paused end, whatever ends the pause: a downgrade
cancels them, resumes and new URLs release them (bounded in the request, finished by the
delivery job), and none waits past the horizon (docs/webhooks.md, docs/security.md 51-53)."""
from __future__ import annotations

import json
import time

from chalicelib.services import held_deliveries
from chalicelib.store import deliveries, webhook_releases
from chalicelib.store.models import Delivery, Share, User
from infra import policy
from tests import aws_calls
from tests.conftest import call, sign_in
from tests.factories import change_pro_features
from tests.test_outbound_webhooks import _deliver, _post_spike, receiver  # noqa: F401 - fixtures
from tests.test_security_review_5 import _pause
from tests.test_shares import make_pro, share_site, user_of


def _statuses(share_id: str) -> list:
    return sorted(d.status for d in Delivery.share_index.query(share_id))


def _paused_share_with_held_events(client, env, receiver, count: int) -> dict:  # noqa: F811
    env(WEBHOOK_ALLOW_LOOPBACK="true", WEBHOOK_TIMEOUT_SECONDS="3")
    token = sign_in(client, "owner@example.com")
    make_pro("owner@example.com")
    share = share_site(client, token, "Held", webhook_url=receiver.url)
    share["token"] = token
    _pause(share["share_id"])
    for number in range(count):
        _post_spike(client, share, f"held {number}")
    assert _deliver().paused == count
    return share


def _downgrade(email: str) -> int:
    owner_id = user_of(email).user_id
    User(owner_id).update(actions=[User.tier.set("free")])
    with aws_calls.acting_as(policy.QUOTA_RESET_FUNCTION):
        return change_pro_features(owner_id, lock=True)


def test_a_downgrade_cancels_the_events_held_for_its_shares(backend_client, env, receiver):  # noqa: F811
    """On moto and DynamoDB Local: held events of a share whose URL a downgrade removed are
    cancelled by the delivery job, a bounded number per run, and none is ever sent."""
    share = _paused_share_with_held_events(backend_client, env, receiver, 3)
    assert _downgrade("owner@example.com") == 1
    assert Share.get(f"share#{share['share_id']}").webhook_url is None
    now = time.time()
    with aws_calls.acting_as(policy.WEBHOOK_DELIVERIES_FUNCTION):
        assert held_deliveries.finish_releases(now, budget=2)[0] == 2  # bounded: the next run goes on
    assert _statuses(share["share_id"]) == ["cancelled", "cancelled", "paused"]
    assert _deliver(now + 1).held_ended == 1
    assert _statuses(share["share_id"]) == ["cancelled"] * 3
    for delivery in Delivery.share_index.query(share["share_id"]):
        assert delivery.last_error == held_deliveries.WEBHOOK_REMOVED and delivery.expires_at
    assert receiver.requests == []
    # The release is kept until the index has surely shown every event held before it.
    assert webhook_releases.pending(100)
    _deliver(now + held_deliveries.RELEASE_SETTLE_SECONDS + 1)
    assert webhook_releases.pending(100) == []
    assert list(deliveries.held_page(share["share_id"], 10)[0]) == []


# --- the horizon: no event is sent stale, none is kept for good -------------------------------

DAYS = 24 * 60 * 60


def test_an_event_past_the_horizon_is_cancelled_not_sent_late(client, env, receiver):  # noqa: F811
    share = _paused_share_with_held_events(client, env, receiver, 1)
    [held] = Delivery.share_index.query(share["share_id"])
    recorded = time.time()
    assert held.expires_at >= recorded + held_deliveries.max_event_age()  # a TTL from the start
    # Past the horizon the log shows it as what it has become, and nothing sends it.
    later = recorded + 8 * DAYS
    view = held_deliveries_view(held, later)
    expired = ("cancelled", held_deliveries.expired_reason(), None)
    assert (view["status"], view["last_error"], view["next_attempt_at"]) == expired
    assert held_deliveries_view(held, recorded)["status"] == "paused"
    # The owner resumes after a long absence: the stale event is cancelled, never delivered.
    from chalicelib.store import share_webhooks
    share_webhooks.unpause(Share.get(f"share#{share['share_id']}"))
    deliveries.release(held, int(recorded))  # what a resume did: due again
    report = _deliver(later)
    assert (report.delivered, receiver.requests) == (0, [])
    [ended] = Delivery.share_index.query(share["share_id"])
    assert (ended.status, ended.last_error) == ("cancelled", held_deliveries.expired_reason())
    assert ended.expires_at >= later + deliveries.KEEP_FINISHED_SECONDS - 1  # kept for the log, then removed


def test_a_release_past_the_horizon_cancels_the_stale_events(client, env, receiver):  # noqa: F811
    share = _paused_share_with_held_events(client, env, receiver, 2)
    from chalicelib.store import share_webhooks
    share_webhooks.unpause(Share.get(f"share#{share['share_id']}"))
    with aws_calls.acting_as(policy.WEBHOOK_DELIVERIES_FUNCTION):
        assert held_deliveries.end_held(share["share_id"], time.time() + 8 * DAYS) == (0, 2, True)
    assert [(d.status, d.last_error) for d in Delivery.share_index.query(share["share_id"])] == \
        [("cancelled", held_deliveries.expired_reason())] * 2
    assert receiver.requests == []


def test_an_event_cancelled_without_a_request_counts_only_the_attempts_made(backend_client, env, receiver):  # noqa: F811
    """On moto and DynamoDB Local: the job claims an event (counting an attempt) before it finds
    it past the horizon or its webhook removed; cancelled then, it shows the attempts really made."""
    env(WEBHOOK_ALLOW_LOOPBACK="true", WEBHOOK_TIMEOUT_SECONDS="3")
    token = sign_in(backend_client, "owner@example.com")
    make_pro("owner@example.com")
    stale, dropped = (share_site(backend_client, token, name, webhook_url=receiver.url) for name in ("Stale", "Dropped"))
    receiver.answers = [500]
    _post_spike(backend_client, stale, "tried once")
    now = time.time()
    assert _deliver(now).retrying == 1
    _post_spike(backend_client, stale, "never tried")
    _post_spike(backend_client, dropped, "webhook removed")
    Share.get(f"share#{dropped['share_id']}").update(actions=[Share.webhook_url.remove()])
    assert _deliver(now + 8 * DAYS).attempted == 3
    ended = {json.loads(d.body)["spike"]["comments"]: (d.status, int(d.attempts), d.last_attempt_at)
             for share in (stale, dropped) for d in Delivery.share_index.query(share["share_id"])}
    # The log's last attempt is the request really made, not the claim that found nothing to send.
    assert ended == {"tried once": ("cancelled", 1, int(now)), "never tried": ("cancelled", 0, None),
                     "webhook removed": ("cancelled", 0, None)}
    assert len(receiver.requests) == 1


def test_the_horizon_is_a_setting(client, env, receiver):  # noqa: F811
    """``SPIKES_WEBHOOK_MAX_EVENT_AGE_SECONDS``: the events' TTL and the job count from it."""
    env(WEBHOOK_MAX_EVENT_AGE_SECONDS="3600")
    share = _paused_share_with_held_events(client, env, receiver, 1)
    [held] = Delivery.share_index.query(share["share_id"])
    recorded = deliveries.recorded_at(held)
    assert held.expires_at == int(recorded) + 3600 + deliveries.KEEP_FINISHED_SECONDS
    from chalicelib.store import share_webhooks
    share_webhooks.unpause(Share.get(f"share#{share['share_id']}"))
    deliveries.release(held, int(recorded))
    assert _deliver(recorded + 2 * 3600).delivered == 0 and receiver.requests == []
    [ended] = Delivery.share_index.query(share["share_id"])
    assert (ended.status, ended.last_error) == ("cancelled", "expired: not delivered within 1 hour of the event")


def held_deliveries_view(delivery: Delivery, now: float) -> dict:
    from chalicelib.services import outbound_webhooks
    return outbound_webhooks.delivery_view(delivery, now)


# --- releases: bounded in the request, finished by the delivery job ---------------------------

class _NotYetIndexed:
    """A query answer from an index that does not show the event yet."""
    last_evaluated_key = None

    def __iter__(self):
        return iter(())


def test_an_event_the_resume_did_not_see_is_released_by_the_job(backend_client, env, receiver,  # noqa: F811
                                                                 monkeypatch):
    """On moto and DynamoDB Local: the resume read the index before it showed an event held a
    moment earlier (it is eventually consistent); the delivery job still sends the event."""
    share = _paused_share_with_held_events(backend_client, env, receiver, 1)
    with monkeypatch.context() as lagging:  # the request reads indexes that have not caught up
        for index in (Delivery.due_index, Delivery.share_index):
            lagging.setattr(index, "query", lambda *args, **kwargs: _NotYetIndexed())
        status, resumed, _ = call(backend_client, "POST", f"/shares/{share['share_id']}/webhook/resume",
                                  token=share["token"])
    assert (status, resumed["queued"], resumed["paused"]) == (200, 0, False)
    report = _deliver()
    assert (report.held_ended, report.delivered, len(receiver.requests)) == (1, 1, 1)
    assert _statuses(share["share_id"]) == ["delivered"]


def test_a_resume_queues_a_batch_and_the_job_the_rest(client, env, receiver, monkeypatch):  # noqa: F811
    monkeypatch.setattr(held_deliveries, "BATCH", 2)
    share = _paused_share_with_held_events(client, env, receiver, 3)
    status, resumed, _ = call(client, "POST", f"/shares/{share['share_id']}/webhook/resume", token=share["token"])
    assert (status, resumed["queued"]) == (200, 2)  # bounded: one batch in the request
    report = _deliver()
    assert (report.held_ended, report.delivered) == (1, 3)
    assert sorted(json.loads(r["body"])["spike"]["comments"] for r in receiver.requests) == \
        ["held 0", "held 1", "held 2"]


def test_a_share_paused_again_before_the_job_keeps_its_events_held(client, env, receiver, monkeypatch):  # noqa: F811
    monkeypatch.setattr(held_deliveries, "BATCH", 1)
    share = _paused_share_with_held_events(client, env, receiver, 2)
    assert call(client, "POST", f"/shares/{share['share_id']}/webhook/resume", token=share["token"])[1]["queued"] == 1
    _pause(share["share_id"])  # the receiver failed again before the job came
    now = time.time()
    assert _deliver(now).held_ended == 0
    assert _statuses(share["share_id"]) == ["paused", "paused"]  # both wait for the next resume
    assert _deliver(now + held_deliveries.RELEASE_SETTLE_SECONDS).held_ended == 0
    assert webhook_releases.pending(100) == []


def test_a_run_shares_its_budget_and_does_not_reread_a_stale_index(client, env, receiver, monkeypatch):  # noqa: F811
    share = _paused_share_with_held_events(client, env, receiver, 1)
    [held] = Delivery.share_index.query(share["share_id"])
    from chalicelib.store import share_webhooks
    share_webhooks.unpause(Share.get(f"share#{share['share_id']}"))
    deliveries.release(held, int(time.time()))  # ended, but the index still shows it held
    webhook_releases.record(None, share["share_id"], time.time())
    webhook_releases.record(None, "sh_other", time.time())
    reads = []
    monkeypatch.setattr(deliveries, "held_page", lambda share_id, limit: reads.append((share_id, limit)) or
                        ([held], True))
    assert held_deliveries.finish_releases(time.time(), budget=60)[0] == 0
    # One read each, none larger than the run's share for one release: the stale page is read
    # again on the next run, not 60 times in this one.
    assert sorted(reads) == sorted([(share["share_id"], 25), ("sh_other", 25)])
