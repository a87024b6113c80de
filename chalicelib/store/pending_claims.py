"""Claims owed to the share_deletions job (services/claim_work.py): ``claim#<claimed account id>``,
one small item each (store/pending_queue.py) in the ``claims`` partition of the deliveries
table's ``due_index``.

A claim records its unit before it marks the account ``merged_into`` (services/claims.py), dated
``CLIENT_FIRST_SECONDS`` later, and forgets it once a call completes it: a claim the client
stops calling for (a 202 not sent again) or whose call died is still recorded, and the job
finishes it once its time came. Recorded before the marking, a unit may name an account never
marked (the claim was refused, or its call died before); the job then just forgets it. Its
date lets any call still running (an API call lasts 29 s at most) mark it first.
"""
from __future__ import annotations

from typing import List

from chalicelib.store.pending_queue import PendingQueue, Unit

CLAIMS = PendingQueue(partition="claims", prefix="claim#", legacy_item="")  # no earlier version kept claims
CLIENT_FIRST_SECONDS = 5 * 60


def record(account_id: str, now: float) -> None:
    """The claim of ``account_id`` is owed until a call completes it (the same account again is
    the same unit, its time kept)."""
    CLAIMS.record(account_id, int(now) + CLIENT_FIRST_SECONDS)


def forget(account_id: str) -> bool:
    """The claim is complete: its unit, pending or parked, is done with (False: gone already)."""
    return CLAIMS.finish(account_id)


def due(limit: int, now: float) -> List[Unit]:
    """Up to ``limit`` units whose time has come, oldest first (eventually consistent)."""
    return CLAIMS.due(limit, now)
