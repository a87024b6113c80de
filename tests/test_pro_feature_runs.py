"""Pending runs of Stripe events' share changes scale: each is an item of its own in a
``due_index`` partition the quota reset queries a page at a time, oldest event first, so
recording one never depends on how many are pending, and those an earlier version listed in the
ledger's one set are worked off too (docs/security.md 59). On moto and DynamoDB Local."""
from __future__ import annotations

import time
from typing import Dict, List

import pytest

from chalicelib import clock, deps
from chalicelib.services import quota_reset
from chalicelib.store import ledger, pro_feature_runs
from chalicelib.store.models import Delivery, LedgerItem, Share, User
from infra import policy
from tests import aws_calls
from tests.test_stripe_paging import UID, big, deliver, downgrade, locked, pending_runs  # noqa: F401 - fixture
from tests.factories import legacy_work
from tests.test_webhook_releases import _fill_to_the_limit

NOW = int(time.time())
OWNERS = [f"owner-{n:02d}" for n in range(7)]  # user ids in this order; their events the reverse


@pytest.fixture
def owners(store_backend, env) -> Dict[str, int]:
    """Seven owners a cancellation made free, each with 3 protected shares: a Stripe event
    changes one page of 2 and leaves a run. The owner first by id had the newest event."""
    env(JOB_PAGE_SIZE="2", STRIPE_EVENT_SHARE_PAGES="1")
    events = {}
    for n, owner in enumerate(OWNERS):
        events[owner] = NOW - 100 * (n + 1)
        User(owner, email=f"{owner}@example.com", tier="free", created_at="2026-01-01T00:00:00Z",
             subscription_event_at=events[owner]).save()
        for m in range(3):
            share_id = f"sh_{owner}-{m}"
            Share(f"share#{share_id}", share_id=share_id, owner_id=owner, created_at=f"2026-02-01T00:00:0{m}Z",
                  slug=share_id.replace("_", "-"), status="active", password_hash="$argon2id$fake").save()
    return events


def stripe_event_leaves_a_run(owner: str) -> None:
    with aws_calls.acting_as(policy.API_FUNCTION):  # what the webhook does (services/stripe_events.py)
        quota_reset.change_pro_features(deps.settings(), owner, clock.now())


def job() -> dict:
    """One quota reset invocation with all the time it wants: only the page bounds its work."""
    with aws_calls.acting_as(policy.QUOTA_RESET_FUNCTION):
        return quota_reset.run(deps.settings(), now=clock.now(), time_left_ms=lambda: float("inf"))["pro_feature_runs"]


def locked_owners() -> List[str]:
    return [owner for owner in OWNERS
            if all(Share.get(f"share#sh_{owner}-{m}", consistent_read=True).status == "locked" for m in range(3))]


def finished(result: dict) -> List[str]:
    return [run["job"].split("#")[2].partition("@")[0] for run in result["runs"] if run["status"] == "completed"]


def test_a_stripe_event_records_its_run_however_many_are_pending(big):  # noqa: F811
    """With the earlier version's set of runs as full as an item can be, a cancellation that
    leaves a run still answers 200 (it answered 500, and Stripe retried in vain): its run is an
    item of its own, not one more member of that set."""
    filled = _fill_to_the_limit(pro_feature_runs.LEGACY_ITEM, NOW - 1)
    assert filled > 5_000
    deliver(big, downgrade(NOW))
    assert len(ledger.members(pro_feature_runs.LEGACY_ITEM)) == filled  # (moto lets the set grow on)
    assert [name for name in pending_runs(10) if name.startswith(UID)] == [f"{UID}@{NOW}-off"]
    assert list(Delivery.share_index.query(UID)) == []  # never in a delivery log


def test_a_run_of_an_event_dated_a_little_ahead_of_our_clock_is_finished_by_the_next_invocation(owners):
    """Stripe's clock a few seconds ahead of ours: the run, dated by its event, was not yet due
    when the next invocation read the queue, and waited 15 minutes more. Now it is finished
    then, still oldest event first."""
    late = OWNERS[0]
    User(late).update(actions=[User.subscription_event_at.set(int(time.time()) + 5)])
    for owner in OWNERS[:3]:
        stripe_event_leaves_a_run(owner)
    result = job()
    assert finished(result) == [OWNERS[2], OWNERS[1], late] and result["left"] == 0


def test_many_pending_runs_are_finished_oldest_event_first_a_page_per_invocation(owners, monkeypatch):
    monkeypatch.setattr(quota_reset, "RUNS_PER_INVOCATION", 3)
    for owner in OWNERS:
        stripe_event_leaves_a_run(owner)
    assert len(pending_runs(100)) == 7 and locked_owners() == []
    oldest_first = sorted(OWNERS, key=owners.get)
    first = job()
    assert finished(first) == oldest_first[:3] and first["left"] == 1
    assert sorted(locked_owners()) == sorted(oldest_first[:3])
    assert finished(job()) == oldest_first[3:6]
    assert finished(job()) == oldest_first[6:] and locked_owners() == OWNERS
    assert pending_runs(100) == [] and job() == {"runs": [], "left": 0, "failed": 0, "parked": 0, "stopped": None}


def test_runs_an_earlier_version_listed_are_moved_and_finished(owners, monkeypatch):
    """Runs in flight at the upgrade, listed in the ledger's set with their checkpoints written,
    are moved to items a bounded number per invocation, and finished like any other."""
    monkeypatch.setattr(pro_feature_runs, "LEGACY_MOVED_PER_RUN", 2)
    listed = []
    for owner in OWNERS[:3]:
        stripe_event_leaves_a_run(owner)
        [name] = [name for name in pending_runs(10) if name.startswith(owner)]
        assert LedgerItem.get(quota_reset.owner_job_key(name)).detail["stripping"]["after"] is not None
        pro_feature_runs.consume(name)  # as the version before kept it: a member of the set only
        legacy_work(pro_feature_runs.LEGACY_ITEM, name)
        listed.append(name)
    assert pending_runs(10) == []
    job()
    assert len(ledger.members(pro_feature_runs.LEGACY_ITEM)) == 1  # two moved (and finished)
    assert len(locked_owners()) == 2
    job()
    assert ledger.members(pro_feature_runs.LEGACY_ITEM) == [] and locked_owners() == OWNERS[:3]
    assert pending_runs(10) == [] and job()["left"] == 0


def test_a_run_is_named_by_its_event_and_listed_by_the_events_time(store_backend):
    name = pro_feature_runs.run_name("0b4c-11ee", 1_700_000_000, lock=True)
    assert name == "0b4c-11ee@1700000000-off"
    assert (pro_feature_runs.user_of(name), pro_feature_runs.event_at_of(name)) == ("0b4c-11ee", 1_700_000_000)
    pro_feature_runs.record(name)
    pro_feature_runs.record(name)  # a retried event: the same item
    pro_feature_runs.record(pro_feature_runs.run_name("0a", 1_700_000_001, lock=False))
    assert pending_runs(10) == [name, "0a@1700000001-on"]
    assert pro_feature_runs.consume(name) is True
    assert pro_feature_runs.consume(name) is False  # another invocation's delete is refused
    assert pending_runs(10) == ["0a@1700000001-on"]
