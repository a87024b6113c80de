"""Pending webhook releases: shares whose held events a resume, a new or removed URL or a
downgrade ended, worked off by the delivery job (services/held_deliveries.py).

One item per release, in the deliveries table: ``delivery_id`` = ``release#<share_id>@<epoch>``
carrying only ``due`` = ``releases`` and ``next_attempt_at`` = the release's time (no
``share_id``, so no delivery log lists it). The job queries that ``due_index`` partition, oldest
first and a page at a time (no Scan), and consumes each with a conditional delete. However
many are pending at once (a mass downgrade), each is a small item of its own.

Releases used to be members of one ledger item, ``webhooks#release``, a string set that tens of
thousands of pending releases would grow past DynamoDB's 400 KB item limit, failing the request
(or downgrade transaction) that recorded one. The job moves what an earlier version left there
into items, their times kept, a bounded number per run, until it is empty.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

from chalicelib.store import ledger
from chalicelib.store.models import Delivery
from chalicelib.store.transactions import Transaction, delete_if

RELEASES = "releases"  # the due_index partition
KEY_PREFIX = "release#"
LEGACY_ITEM = "webhooks#release"  # the ledger's set an earlier version recorded releases in
LEGACY_MOVED_PER_RUN = 100


@dataclass(frozen=True)
class Release:
    key: str
    share_id: str
    since: int  # epoch seconds the release was recorded


def _parse(member: str) -> Release:
    """A release from ``<share_id>@<epoch>`` (an item's key without its prefix, or a legacy member)."""
    share_id, _, since = member.rpartition("@")
    return Release(KEY_PREFIX + member, share_id, int(since) if since.isdigit() else 0)


def record(tx: Optional[Transaction], share_id: str, now: float) -> None:
    """Record a release (in ``tx`` when given): one item, written as an update so only its
    partition and time are set. Recording the same share twice in a second is one release."""
    item = Delivery(f"{KEY_PREFIX}{share_id}@{int(now)}")
    actions = [Delivery.due.set(RELEASES), Delivery.next_attempt_at.set(int(now))]
    if tx is None:
        item.update(actions=actions)
    else:
        tx.update("webhook-release", item, actions=actions)


def pending(limit: int) -> List[Release]:
    """Up to ``limit`` releases not finished, oldest first (the index is eventually consistent:
    one recorded a moment ago may show on the next run, one consumed may show once more)."""
    items = Delivery.due_index.query(RELEASES, limit=limit, page_size=limit)
    return [_parse(item.delivery_id[len(KEY_PREFIX):]) for item in items]


def consume(release: Release) -> bool:
    """Forget a finished release; False when another run consumed it first."""
    return delete_if(Delivery(release.key), Delivery.due == RELEASES)


def move_legacy() -> int:
    """Move up to ``LEGACY_MOVED_PER_RUN`` releases an earlier version recorded in the ledger's
    set into items, each kept there until its item is written. Returns how many moved."""
    members = ledger.members(LEGACY_ITEM)[:LEGACY_MOVED_PER_RUN]
    for member in members:
        release = _parse(member)
        record(None, release.share_id, release.since)
        ledger.forget(LEGACY_ITEM, member)
    return len(members)
