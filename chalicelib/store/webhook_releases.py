"""Pending webhook releases: shares whose held events a resume, a new or removed URL or a
downgrade ended, worked off by the delivery job (services/held_deliveries.py).

One item per release (store/pending_queue.py): ``release#<share_id>@<epoch>`` in the
deliveries ``due_index`` partition ``releases``, by the release's time. However many are
pending at once (a mass downgrade), each is a small item of its own.

Releases used to be members of one ledger item, ``webhooks#release``, a string set that tens of
thousands of pending releases would grow past DynamoDB's 400 KB item limit, failing the request
(or downgrade transaction) that recorded one. The job moves what an earlier version left there
into items, their times kept, a bounded number per run, until it is empty.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from chalicelib.store.pending_queue import PendingQueue, Unit
from chalicelib.store.transactions import Transaction

KEY_PREFIX = "release#"
LEGACY_ITEM = "webhooks#release"  # the ledger's set an earlier version recorded releases in
LEGACY_MOVED_PER_RUN = 100
# A release is dated by the clock of the process that recorded it (a request, a downgrade), which
# may run a little ahead of the delivery job's: one dated up to this far ahead is due now, not a
# run later (ending held events early does no harm).
CLOCK_SKEW_SECONDS = 60
QUEUE = PendingQueue(partition="releases", prefix=KEY_PREFIX, legacy_item=LEGACY_ITEM)


@dataclass(frozen=True)
class Release:
    key: str
    share_id: str
    since: int  # epoch seconds the release was recorded
    unit: Unit = field(compare=False)  # as the query read it (its time and attempts then)

    @property
    def name(self) -> str:  # in QUEUE
        return self.key[len(KEY_PREFIX):]


def _since(name: str) -> int:
    since = name.rpartition("@")[2]
    return int(since) if since.isdigit() else 0


def _parse(unit: Unit) -> Release:
    """A release from its unit, named ``<share_id>@<epoch>`` (its item's key without the prefix)."""
    return Release(KEY_PREFIX + unit.name, unit.name.rpartition("@")[0], _since(unit.name), unit)


def record(tx: Optional[Transaction], share_id: str, now: float) -> None:
    """Record a release (in ``tx`` when given). Recording the same share twice in a second is
    one release."""
    QUEUE.record(f"{share_id}@{int(now)}", int(now), tx)


def pending(limit: int, due_by: Optional[float] = None) -> List[Release]:
    """Up to ``limit`` releases not finished, oldest first (``due_by``: only those not moved
    back past it after failing, and those never failed dated up to ``CLOCK_SKEW_SECONDS``
    after it; eventually consistent)."""
    return [_parse(unit) for unit in QUEUE.due(limit, due_by, early=CLOCK_SKEW_SECONDS)]


def consume(release: Release) -> bool:
    """Forget a finished release; False when another run consumed it first."""
    return QUEUE.consume(release.name)


def move_legacy(now: float) -> int:
    """Move up to ``LEGACY_MOVED_PER_RUN`` releases an earlier version recorded in the ledger's
    set into items, their times kept. Returns how many moved."""
    return QUEUE.move_legacy(_since, LEGACY_MOVED_PER_RUN, now)
