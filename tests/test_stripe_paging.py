"""A Stripe event's share changes, bounded per webhook: a cancellation or an upgrade of an owner
with more shares than a webhook may change changes a few pages itself and leaves the rest to the
scheduled quota reset (a run checkpointed in the ledger). On moto and DynamoDB Local."""
from __future__ import annotations

import time
from typing import List, Optional

import pytest

from chalicelib.services.accounts import user_id_for
from chalicelib.store import ledger, pro_feature_runs
from chalicelib.store.models import LedgerItem, Share, User
from tests.conftest import call
from tests.fakes.stripe_events import WEBHOOK_SECRET, event, signed, subscription
from tests.test_usage import SCHEDULE_EVENT

EMAIL = "big-account@example.com"
UID = user_id_for(EMAIL)
SHARES = [f"sh_bigacct{n:05d}" for n in range(7)]  # pages of 2: one page per webhook, four in all
NOW = int(time.time())


@pytest.fixture
def big(backend_client, env):
    """A Pro owner with 7 password-protected shares with webhooks; a webhook changes one page
    of 2, and the test Lambda's 3 s (less than the 10 s reserve) lets the job take one step per
    invocation."""
    env(STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET, JOB_PAGE_SIZE="2", STRIPE_EVENT_SHARE_PAGES="1",
        JOB_TIME_RESERVE_MS="10000")
    User(UID, email=EMAIL, tier="free", created_at="2026-01-01T00:00:00Z", stripe_customer_id="cus_1").save()
    deliver(backend_client, event("customer.subscription.created", subscription("active", UID), NOW - 1000))
    for n, share_id in enumerate(SHARES):
        Share(f"share#{share_id}", share_id=share_id, owner_id=UID, created_at=f"2026-02-01T00:00:{n:02d}Z",
              slug=share_id.replace("_", "-"), status="active", password_hash="$argon2id$fake",
              webhook_url="https://hooks.example/x", owner_tier="pro").save()
    return backend_client


def deliver(client, evt) -> int:
    raw, headers = signed(evt)
    status, body, _ = call(client, "POST", "/webhooks/stripe", raw=raw, headers=headers)
    assert status == 200, body
    return status


def downgrade(created: int) -> dict:
    return event("customer.subscription.deleted", subscription("canceled", UID), created)


def upgrade(created: int, sub_id: str) -> dict:
    return event("customer.subscription.created", subscription("active", UID, sub_id=sub_id), created)


def locked() -> List[str]:
    shares = [Share.get(f"share#{share_id}", consistent_read=True) for share_id in SHARES]
    return [share.share_id for share in shares if share.status == "locked"]


def pending_runs(limit: int, due_by: Optional[float] = None) -> List[str]:
    """The names of the runs the quota reset would read (``pro_feature_runs.due``)."""
    return [unit.name for unit in pro_feature_runs.due(limit, due_by)]


def runs() -> List[str]:
    return pending_runs(100)


def job_step(client) -> dict:
    return client.lambda_.invoke("quota_reset", SCHEDULE_EVENT).payload["pro_feature_runs"]


def job_until_done(client, limit: int = 20) -> int:
    for steps in range(1, limit + 1):
        if job_step(client)["left"] == 0:
            return steps
    raise AssertionError("the runs never finished")


def test_a_large_downgrade_changes_one_page_in_the_webhook_and_the_job_the_rest(big):
    started = time.monotonic()
    deliver(big, downgrade(NOW))
    assert time.monotonic() - started < 10
    assert User.get(UID, consistent_read=True).tier == "free"  # at once, before the shares
    assert locked() == SHARES[:2]  # the bound: one page
    assert [Share.get(f"share#{s}").webhook_url for s in SHARES[2:]] == ["https://hooks.example/x"] * 5
    [run] = runs()
    assert LedgerItem.get(ledger.job_key("pro-features", run)).detail["stripping"]["after"] is not None

    first = job_step(big)  # one step of 2 per invocation, checkpointed
    assert first["left"] == 1 and first["runs"][0]["status"] == "paused" and locked() == SHARES[:4]
    job_until_done(big)
    assert locked() == SHARES and runs() == []
    assert all(Share.get(f"share#{s}").webhook_url is None for s in SHARES)
    assert job_step(big) == {"runs": [], "left": 0, "failed": 0, "parked": 0, "stopped": None}


def test_a_retried_downgrade_adds_no_second_run_and_changes_nothing_twice(big):
    cancelled = downgrade(NOW)
    deliver(big, cancelled)
    job_step(big)
    deliver(big, cancelled)  # Stripe retries (the answer was lost): a duplicate
    assert locked() == SHARES[:4] and len(runs()) == 1
    job_until_done(big)
    deliver(big, cancelled)  # once more, after the job finished: its run is found done
    job_until_done(big)
    assert locked() == SHARES and runs() == []
    assert User.get(UID).tier == "free"


def test_an_upgrade_reopens_one_page_in_the_webhook_and_the_job_the_rest(big):
    deliver(big, downgrade(NOW - 100))
    job_until_done(big)
    assert locked() == SHARES
    deliver(big, upgrade(NOW, "sub_again"))
    assert User.get(UID, consistent_read=True).tier == "pro"
    assert locked() == SHARES[2:]
    job_until_done(big)
    assert locked() == [] and runs() == []


def test_downgrade_then_upgrade_with_pages_left_ends_open(big):
    deliver(big, downgrade(NOW - 100))
    job_step(big)
    assert locked() == SHARES[:4]  # the downgrade's run is half way
    deliver(big, upgrade(NOW - 50, "sub_again"))  # reopens the first page; the run turns round
    assert locked() == SHARES[2:4]
    job_until_done(big)
    assert locked() == [] and runs() == [] and User.get(UID).tier == "pro"


def test_downgrade_upgrade_downgrade_with_pages_left_ends_locked(big):
    deliver(big, downgrade(NOW - 100))
    job_step(big)
    deliver(big, upgrade(NOW - 50, "sub_again"))
    job_step(big)  # the run reopens from the first share again
    deliver(big, event("customer.subscription.deleted", subscription("canceled", UID, sub_id="sub_again"), NOW))
    job_until_done(big)
    assert locked() == SHARES and runs() == [] and User.get(UID).tier == "free"


def test_an_older_upgrade_delivered_late_reopens_nothing(big):
    deliver(big, downgrade(NOW))
    deliver(big, upgrade(NOW - 50, "sub_1"))  # stale: the stored state is newer and free
    job_until_done(big)
    assert locked() == SHARES and User.get(UID).tier == "free"


def test_a_run_whose_owner_changed_meanwhile_starts_again_from_the_first_share(big):
    """The state changed with no webhook finishing its pages (its handler died after the
    tier, before the shares): the run turns round and starts from the first share, since the
    shares before its position were changed the other way."""
    deliver(big, downgrade(NOW - 100))
    job_step(big)
    assert locked() == SHARES[:4]
    User(UID).update(actions=[User.tier.set("pro"), User.subscription_event_at.set(NOW - 50)])
    job_until_done(big)
    assert locked() == [] and runs() == []
