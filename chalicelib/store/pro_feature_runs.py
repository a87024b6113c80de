"""Pending runs of a Stripe event's share changes: what a cancellation or an upgrade left to the
quota reset (services/quota_reset.py: ``change_pro_features``, ``finish_pro_feature_runs``).

A run is named ``<user>@<event_at>-<off|on>`` (the Stripe event's time and direction); its
checkpoint is the ledger's ``job#pro-features#<name>``. That it is pending is one small item of
its own (store/pending_queue.py): ``pro-features#<name>`` in the deliveries ``due_index``
partition ``pro-features``, by the event's time, read oldest event first a page at a time and
consumed when finished, so however many are pending no item grows and no read is unbounded
(docs/security.md 59).

Runs used to be members of one ledger item, ``pro-features#owners``, a string set some 7,000
pending runs would grow past DynamoDB's 400 KB item limit, failing every Stripe webhook that
recorded one. The job moves what an earlier version left there into items, a bounded number
per run, until it is empty.
"""
from __future__ import annotations

from typing import List, Optional

from chalicelib.store.pending_queue import PendingQueue, Unit

KEY_PREFIX = "pro-features#"
LEGACY_ITEM = "pro-features#owners"  # the ledger's set an earlier version listed runs in
LEGACY_MOVED_PER_RUN = 100
# A run is dated by its Stripe event, by Stripe's clock: one up to this far ahead of ours is due
# now, not one invocation (15 minutes) later.
CLOCK_SKEW_SECONDS = 60
QUEUE = PendingQueue(partition="pro-features", prefix=KEY_PREFIX, legacy_item=LEGACY_ITEM)


def run_name(user_id: str, event_at: int, lock: bool) -> str:
    return f"{user_id}@{int(event_at)}-{'off' if lock else 'on'}"


def user_of(name: str) -> str:
    return name.partition("@")[0]


def event_at_of(name: str) -> int:
    at = name.partition("@")[2].rpartition("-")[0]
    return int(at) if at.isdigit() else 0


def record(name: str) -> None:
    """List the run as pending. Idempotent: a retried event writes the same item again."""
    QUEUE.record(name, event_at_of(name))


def due(limit: int, due_by: Optional[float] = None) -> List[Unit]:
    """Up to ``limit`` runs not finished, oldest event first, as the query read them (for the
    job: services/pending_work.py). ``due_by``: only those not moved back past it after failing,
    and those whose event is dated up to ``CLOCK_SKEW_SECONDS`` after it. Eventually consistent:
    one consumed may show once more, and is then found done."""
    return QUEUE.due(limit, due_by, early=CLOCK_SKEW_SECONDS)


def consume(name: str) -> bool:
    """Forget a finished run; False when another invocation consumed it first."""
    return QUEUE.consume(name)


def move_legacy(now: float) -> int:
    """Move up to ``LEGACY_MOVED_PER_RUN`` runs an earlier version listed in the ledger's set
    into items. Returns how many moved."""
    return QUEUE.move_legacy(event_at_of, LEGACY_MOVED_PER_RUN, now)
