"""Pending webhook releases scale: each is an item of its own in a ``due_index`` partition the
delivery job queries, so recording one never depends on how many are pending, and those an
earlier version recorded in the ledger's one set are worked off too (docs/security.md 56)."""
from __future__ import annotations

import re
import time

from pynamodb.exceptions import UpdateError

from chalicelib import deps
from chalicelib.services import held_deliveries
from chalicelib.store import ledger, pending_queue, webhook_releases
from chalicelib.store.models import Delivery, LedgerItem, Share
from chalicelib.store.pending_queue import Unit
from tests.test_held_deliveries import _downgrade, _paused_share_with_held_events, _statuses
from tests.test_outbound_webhooks import _deliver, receiver  # noqa: F401 - fixtures


def _as_an_earlier_version_recorded(*members: str) -> None:
    LedgerItem(webhook_releases.LEGACY_ITEM).update(actions=[LedgerItem.members.add(set(members))])


def _fill_to_the_limit(key: str, since: int) -> int:
    """Add releases to the ledger's set until DynamoDB refuses even one more (its 400 KB item
    limit): what some 16,000 releases pending at once did to the earlier version's set."""
    added = 0
    for chunk in (2000, 200, 20, 1):
        while added < 40_000:
            members = {f"sh_{n:012d}@{since}" for n in range(added, added + chunk)}
            try:
                LedgerItem(key).update(actions=[LedgerItem.members.add(members)])
            except UpdateError:
                break
            added += chunk
    return added


def test_a_downgrade_records_its_release_however_many_are_pending(backend_client, env, receiver):  # noqa: F811
    """On moto and DynamoDB Local: with the earlier version's set of releases as full as an item
    can be, recording a release (here in a downgrade's transaction) still succeeds: it is an
    item of its own, not one more member of that set."""
    share = _paused_share_with_held_events(backend_client, env, receiver, 1)
    now = int(time.time())
    assert _fill_to_the_limit(webhook_releases.LEGACY_ITEM, now - 1) > 10_000
    assert _downgrade("owner@example.com") == 1  # the earlier version's transaction failed here
    assert Share.get(f"share#{share['share_id']}").webhook_url is None
    # Only the filler's ids are all digits (a real share id may well start with "sh_0").
    assert [r.share_id for r in webhook_releases.pending(50)
            if not re.fullmatch(r"sh_\d{12}", r.share_id)] == [share["share_id"]]


def test_the_job_works_off_releases_oldest_first_a_page_per_run(backend_client, monkeypatch):
    """On moto and DynamoDB Local: the job queries a page of the oldest releases each run and
    deletes each once it is finished and settled; the rest wait for the next runs."""
    monkeypatch.setattr(held_deliveries, "RELEASES_PER_RUN", 20)
    start = int(time.time()) - 600
    for number in range(45):
        webhook_releases.record(None, f"sh_gone{number:05d}", start + number)
    assert len(webhook_releases.pending(100)) == 45
    assert [r.share_id for r in webhook_releases.pending(3)] == ["sh_gone00000", "sh_gone00001", "sh_gone00002"]
    for left in (25, 5, 0):
        _deliver()
        assert [r.share_id for r in webhook_releases.pending(100)] == \
            [f"sh_gone{number:05d}" for number in range(45 - left, 45)]
    release = webhook_releases.Release(f"{webhook_releases.KEY_PREFIX}sh_gone00001@{start + 1}", "sh_gone00001", 1,
                                       Unit(f"sh_gone00001@{start + 1}", start + 1, 0))
    assert webhook_releases.consume(release) is False  # consumed once: another run's delete is refused
    assert list(Delivery.share_index.query("sh_gone00001")) == []  # never in a delivery log


def test_releases_an_earlier_version_recorded_are_moved_and_finished(backend_client, env, receiver,  # noqa: F811
                                                                     monkeypatch):
    """On moto and DynamoDB Local: releases left in the ledger's set by the version before are
    moved to items (their times kept), a bounded number per run, and finished like any other."""
    monkeypatch.setattr(webhook_releases, "LEGACY_MOVED_PER_RUN", 2)
    share = _paused_share_with_held_events(backend_client, env, receiver, 2)
    Share.get(f"share#{share['share_id']}").update(actions=[Share.webhook_url.remove()])
    now = int(time.time())
    _as_an_earlier_version_recorded(f"{share['share_id']}@{now}", f"sh_zgone1@{now - 5}", f"sh_zgone2@{now - 5}")
    _deliver(now)  # moves two
    assert len(LedgerItem.get(webhook_releases.LEGACY_ITEM).members) == 1
    _deliver(now)  # and the last
    assert not LedgerItem.get(webhook_releases.LEGACY_ITEM).members
    assert sorted((r.share_id, r.since) for r in webhook_releases.pending(10)) == \
        sorted([(share["share_id"], now), ("sh_zgone1", now - 5), ("sh_zgone2", now - 5)])  # share ids are random
    assert _statuses(share["share_id"]) == ["cancelled", "cancelled"] and receiver.requests == []
    assert _deliver(now + held_deliveries.RELEASE_SETTLE_SECONDS).held_ended == 0
    assert webhook_releases.pending(10) == []


def test_the_emptied_set_is_read_no_more_once_known_empty_and_nothing_written_meanwhile_is_lost(
        store_backend, monkeypatch):
    """On moto and DynamoDB Local: every run read the earlier version's set, emptied for good.
    A process now stops reading it once it found it empty for ``LEGACY_SETTLE_SECONDS``; what
    the version before records there meanwhile (still running during the deploy) is moved, and
    a new process (a rollback, then this version again) reads it again."""
    reads = []
    members = ledger.members
    monkeypatch.setattr(ledger, "members", lambda item: reads.append(item) or members(item))
    now = int(time.time())
    _deliver(now)
    settle = pending_queue.LEGACY_SETTLE_SECONDS
    _as_an_earlier_version_recorded(f"sh_late@{now + settle - 30}")  # the version before, still running
    _deliver(now + settle - 1)
    assert [r.share_id for r in webhook_releases.pending(10)] == ["sh_late"]  # moved (kept a minute), not lost
    _deliver(now + settle + 60)  # found empty again: the hour starts again from here
    _deliver(now + 2 * settle + 59)
    assert len(reads) == 4
    for minute in range(1, 60):
        _deliver(now + 2 * settle + 60 + minute * 60)
    assert len(reads) == 4 and reads == [webhook_releases.LEGACY_ITEM] * 4  # known empty: not read
    deps.reset()  # another process
    _as_an_earlier_version_recorded(f"sh_rolled_back@{now}")
    _deliver(now + 3 * settle)
    assert len(reads) == 5 and not LedgerItem.get(webhook_releases.LEGACY_ITEM).members


def test_a_release_dated_a_little_ahead_of_the_jobs_clock_is_ended_by_its_next_run(
        backend_client, env, receiver):  # noqa: F811
    """On moto and DynamoDB Local: a release is dated by the clock of the request or downgrade
    that recorded it, another process than the delivery job, whose clock may run a little behind.
    The job's next run ends its held events; it waited for a run after its date."""
    share = _paused_share_with_held_events(backend_client, env, receiver, 3)
    Share.get(f"share#{share['share_id']}").update(actions=[Share.webhook_url.remove()])
    now = int(time.time())
    webhook_releases.record(None, share["share_id"], now + 5)  # the recorder's clock, 5 s ahead
    assert _deliver(now).held_ended == 3
    assert _statuses(share["share_id"]) == ["cancelled"] * 3


def test_releases_with_nothing_held_cost_the_run_a_read_each_not_a_batch(backend_client, env, receiver):  # noqa: F811
    """On moto and DynamoDB Local: a downgrade records a release for every share that had a
    webhook, mostly with nothing held. A run works off far more of those than the 20 its
    budget of event reads would allow if each cost a batch, while a release with events still
    gets its batch."""
    share = _paused_share_with_held_events(backend_client, env, receiver, 3)
    start = int(time.time()) - 600
    for number in range(150):
        webhook_releases.record(None, f"sh_idle{number:05d}", start + number)
    Share.get(f"share#{share['share_id']}").update(actions=[Share.webhook_url.remove()])
    webhook_releases.record(None, share["share_id"], start + 200)  # the newest
    assert _deliver().held_ended == 3
    assert _statuses(share["share_id"]) == ["cancelled"] * 3
    assert webhook_releases.pending(200) == []
