"""Claims owed to the share_deletions job (services/claim_work.py): ``claim#<claimed account id>``,
one small item each (store/pending_queue.py) in the ``claims`` partition of the deliveries
table's ``due_index``.

A claim records its unit before it marks the account ``merged_into`` (services/claims.py), dated
``CLIENT_FIRST_SECONDS`` later, and forgets it once a call completes it: a claim the client
stops calling for (a 202 not sent again) or whose call died is still recorded, and the job
finishes it once its time came. Recorded before the marking, a unit may name an account never
marked (the claim was refused, or its call died before); the job then just forgets it. Its
date lets any call still running (an API call lasts 29 s at most) mark it first.

Claims a version before the units (or before store/claim_marks.py) left incomplete have neither:
``record_unfinished``, an upgrade step (the deploy's and the local server's start, never a
request), finds them among the claimed accounts and records them.
"""
from __future__ import annotations

from typing import List

from chalicelib.store import accounts, claim_marks
from chalicelib.store.models import ApiKey, Share, Spike, User
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


def record_unfinished(now: float) -> int:
    """Record every claim an earlier version left incomplete: the claimed accounts (the users
    table's ``merged_index``, sparse and keys only, read whole: an upgrade step's Scan, never a
    request's) that still hold anything get their unit, due at once (no call of that version runs
    on), and are noted moving on their claimer (``claim_marks``), so an export of the person's
    own feedback says it would miss them. Idempotent: a unit recorded is kept with its time.
    How many it found (none while the index is still being built: the next start or deploy)."""
    if not _index_active():
        return 0
    found = 0
    for entry in User.merged_index.scan():
        account = accounts.get(entry.user_id, consistent=True)
        if account is None or not account.merged_into or not _holds_anything(account):
            continue
        CLAIMS.record(account.user_id, int(now))
        claim_marks.begin_again(account.merged_into, account.user_id)
        found += 1
    return found


def _holds_anything(account: User) -> bool:
    """Whether a claimed account still holds what a claim moves: shares (counted, or on the owner
    index), own spikes (counted, or any spike on the owner index), keys, retired slugs."""
    if account.active_shares or (account.own_spikes or 0) > (account.own_spikes_gone or 0):
        return True
    owner = account.user_id
    return any(next(iter(index.query(owner, limit=1)), None) is not None
               for index in (Spike.owner_index, Share.owner_index, ApiKey.owner_index, Share.reserved_index))


def _index_active() -> bool:
    """Whether ``merged_index`` answers: the local server adds it to tables kept from before it,
    and DynamoDB (Local too) refuses reads of an index it is still building."""
    indexes = User.describe_table().get("GlobalSecondaryIndexes", [])
    return any(index["IndexName"] == "merged_index" and index.get("IndexStatus", "ACTIVE") == "ACTIVE"
               for index in indexes)
