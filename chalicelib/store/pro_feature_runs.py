"""Pending runs of a Stripe event's share changes: what a cancellation or an upgrade left to the
quota reset (services/quota_reset.py: ``change_pro_features``, ``finish_pro_feature_runs``).

A run is named ``<user>@<event_at>-<off|on>`` (the Stripe event's time and direction); its
checkpoint is the ledger's ``job#pro-features#<name>``. That it is pending is one small item of
its own in the deliveries table: ``delivery_id`` = ``pro-features#<name>`` carrying only ``due``
= ``pro-features`` and ``next_attempt_at`` = the event's time (no ``share_id``, so no delivery
log lists it). The job queries that ``due_index`` partition, oldest event first and a bounded
page at a time (no Scan), and consumes each finished run with a conditional delete, so however
many are pending, no item grows and no read is unbounded (docs/security.md 59).

Runs used to be members of one ledger item, ``pro-features#owners``, a string set some 7,000
pending runs would grow past DynamoDB's 400 KB item limit, failing every Stripe webhook that
recorded one. The job moves what an earlier version left there into items, a bounded number
per run, until it is empty.
"""
from __future__ import annotations

from typing import List

from chalicelib.store import ledger
from chalicelib.store.models import Delivery
from chalicelib.store.transactions import delete_if

PENDING = "pro-features"  # the due_index partition
KEY_PREFIX = "pro-features#"
LEGACY_ITEM = "pro-features#owners"  # the ledger's set an earlier version listed runs in
LEGACY_MOVED_PER_RUN = 100


def run_name(user_id: str, event_at: int, lock: bool) -> str:
    return f"{user_id}@{int(event_at)}-{'off' if lock else 'on'}"


def user_of(name: str) -> str:
    return name.partition("@")[0]


def event_at_of(name: str) -> int:
    at = name.partition("@")[2].rpartition("-")[0]
    return int(at) if at.isdigit() else 0


def record(name: str) -> None:
    """List the run as pending: one item, written as an update so only its partition and time
    are set. Idempotent: a retried event writes the same item again."""
    Delivery(KEY_PREFIX + name).update(actions=[Delivery.due.set(PENDING),
                                                Delivery.next_attempt_at.set(event_at_of(name))])


def pending(limit: int) -> List[str]:
    """The names of up to ``limit`` runs not finished, oldest event first (the index is
    eventually consistent: one recorded a moment ago may show on the next invocation, one
    consumed may show once more, and is then found done)."""
    items = Delivery.due_index.query(PENDING, limit=limit, page_size=limit)
    return [item.delivery_id[len(KEY_PREFIX):] for item in items]


def consume(name: str) -> bool:
    """Forget a finished run; False when another invocation consumed it first."""
    return delete_if(Delivery(KEY_PREFIX + name), Delivery.due == PENDING)


def move_legacy() -> int:
    """Move up to ``LEGACY_MOVED_PER_RUN`` runs an earlier version listed in the ledger's set
    into items, each kept there until its item is written. Returns how many moved."""
    members = ledger.members(LEGACY_ITEM)[:LEGACY_MOVED_PER_RUN]
    for member in members:
        record(member)
        ledger.forget(LEGACY_ITEM, member)
    return len(members)
