"""Events held while a share's webhook was paused, and how they end (docs/webhooks.md).

A held event waits in its share's own partition of ``due_index`` (``held#<share_id>``). When
the share's webhook is resumed or pointed at a new receiver its held events are released (due
again), and when the URL is removed (by the owner, or by a downgrade) they are cancelled, as
is any past the horizon (``webhook_max_event_age_seconds``: never sent stale). Such
a change records a release (store/webhook_releases.py) before anything else; a request ends
at most a batch of the events itself and the delivery job finishes the rest, a bounded number
per run, so however many were held no request or job step is unbounded, and a run that stops
halfway leaves the release recorded for the next one. The share is read consistently for each
release: what was resumed and then paused again keeps its events held.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Tuple

from chalicelib.services import pending_work
from chalicelib.settings import get_settings
from chalicelib.store import deliveries, webhook_releases
from chalicelib.store import shares as share_store
from chalicelib.store.models import Delivery

# The index is eventually consistent: a release is forgotten only once it is this old, so an
# event held a moment before it, and not yet in the index when it was made, is still ended. Its
# age is read on the job's clock, not the recorder's: a minute is far more than the index lags
# and than two processes' clocks differ.
RELEASE_SETTLE_SECONDS = 60
BATCH = 25
# Releases a run looks at: each costs a consistent GetItem and a Query even with nothing held.
RELEASES_PER_RUN = 200
WEBHOOK_REMOVED = "the share's webhook was removed"


def max_event_age() -> int:
    """The horizon (``webhook_max_event_age_seconds``, 7 days unless set): an event not delivered
    within this long of being recorded is never sent (it would be stale), whether pending or
    held; its TTL counts from it (``deliveries.expiry_for``)."""
    return get_settings().webhook_max_event_age_seconds


def expired_reason() -> str:
    """The ``last_error`` of an event cancelled at the horizon."""
    seconds = max_event_age()
    span = next(f"{seconds // size} {unit}{'s' if seconds != size else ''}"
                for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute"), (1, "second"))
                if seconds % size == 0)
    return f"expired: not delivered within {span} of the event"


def expired(delivery: Delivery, now: float) -> bool:
    """Past the horizon (``max_event_age()`` after the event): never sent."""
    return now >= deliveries.recorded_at(delivery) + max_event_age()


def end_held(share_id: str, now: float, limit: Optional[int] = None) -> Tuple[int, int, bool]:
    """End up to ``limit`` of a share's held events as the share is now: released when its
    webhook is live (cancelled when past the horizon), cancelled when it has none (or the share
    is gone), kept while it is paused. Returns how many were released, how many cancelled, and
    whether none may be left."""
    share = share_store.get_by_id(share_id, consistent=True)
    if share is not None and share.webhook_url and share.webhook_paused_at:
        return 0, 0, True  # paused (again): they wait for the next resume
    page, more = deliveries.held_page(share_id, limit or BATCH)
    released = cancelled = 0
    for delivery in page:
        if share is None or not share.webhook_url:
            cancelled += deliveries.cancel_held(delivery, int(now), WEBHOOK_REMOVED)
        elif expired(delivery, now):
            cancelled += deliveries.cancel_held(delivery, int(now), expired_reason())
        else:
            released += deliveries.release(delivery, int(now))
    return released, cancelled, not more


def _end_release(share_id: str, now: float, allowance: int, time_left_ms: Optional[Callable[[], int]],
                 reserve_ms: int) -> Tuple[int, int, bool, bool]:
    """End a release's held events within ``allowance`` event reads: how many ended, the reads
    spent, whether none may be left, and whether the run's time ran short."""
    ended = spent = 0
    done = False
    while allowance - spent > 0 and not done:
        if time_left_ms is not None and time_left_ms() < reserve_ms:
            return ended, spent, False, True
        released, cancelled, done = end_held(share_id, now, min(BATCH, allowance - spent))
        ended += released + cancelled
        spent += max(1, released + cancelled)
        if not done and not released + cancelled:
            break  # the index still shows events already ended: the next run reads it again
    return ended, spent, done, False


def finish_releases(now: float, budget: int = 500,
                    time_left_ms: Optional[Callable[[], int]] = None,
                    reserve_ms: int = 5000) -> Tuple[int, Dict[str, Any]]:
    """The delivery job's part: end the held events of the oldest recorded releases, reading at
    most ``budget`` of them per run, shared among the releases so a large one does not hold up
    the others. A release with nothing (left) held costs the budget one read, not a batch: a
    downgrade of thousands of shares records a release for each, mostly with nothing held, and
    those are worked off ``RELEASES_PER_RUN`` a run, not 20. Releases an earlier version
    recorded in the ledger are moved to their own items first. A release whose step raises is
    moved back or parked and the next goes on (services/pending_work.py). Returns how many
    events ended, and the pass's ``failed``, ``parked`` and ``stopped`` (the job's summary
    carries them as ``releases_*``)."""
    webhook_releases.move_legacy(now)
    recorded = webhook_releases.pending(RELEASES_PER_RUN, due_by=now)
    per_release = max(BATCH, budget // max(1, len(recorded)))
    ended = 0
    work = pending_work.Pass(webhook_releases.QUEUE, now)
    for release in recorded:
        if work.stopped:
            break
        ran, outcome = work.attempt(release.unit, lambda: _end_release(
            release.share_id, now, min(per_release, budget), time_left_ms, reserve_ms))
        if not ran:
            continue
        ended_now, spent, done, out_of_time = outcome
        ended, budget = ended + ended_now, budget - spent
        if out_of_time:
            break
        if done and now - release.since >= RELEASE_SETTLE_SECONDS:
            webhook_releases.consume(release)
    return ended, work.summary()
