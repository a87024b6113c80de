"""A share's deletion as the shares table holds it, from its tombstone to its removal.

The tombstone (``tombstone``: status ``deleting``, off its owner's count, recorded as a pending
deletion in share_work, one transaction) makes the share gone for everyone but the deletion that
finishes it (services/share_deletion.py, or the share_deletions job: services/share_cleanup.py).
``remove`` ends it: the record goes and its slug claim is retired, kept for the owner
(``reserved_for``), so the share's old links never reach someone else's share; the owner's next
share may take the slug back at once (``retire_for_reuse``). A presigned upload never completed
is tombstoned only while it is still pending and holds no feedback (``tombstone_unfinished``).
"""
from __future__ import annotations

from typing import Callable, Optional

from pynamodb.exceptions import PutError

from chalicelib import clock
from chalicelib.errors import NotFound
from chalicelib.store import share_work, shares, spike_counters, transactions
from chalicelib.store.models import Share, User
from chalicelib.store.shares import BUSY, DELETING, MAX_TRANSACTION_ATTEMPTS, PENDING, slug_pk
from chalicelib.store.transactions import ConditionFailed, Transaction


class NoLongerPending(Exception):
    """A presigned upload's share that was to be expired was completed meanwhile."""


class HoldsFeedback(Exception):
    """A presigned upload's share that was to be expired received feedback."""


def tombstone(share: Share, owner_id: str, also: Optional[Callable[[Transaction], None]] = None,
              while_pending: Optional[Callable[[Transaction], None]] = None) -> None:
    """Start a deletion: mark the share ``deleting``, off the owner's count, recorded as pending,
    with ``also``'s writes (the share.deleted event) and, only while it is still pending, with
    ``while_pending``'s (what an upload never completed gives back). Idempotent; NotFound once gone."""
    try:
        if while_pending is not None:  # a completion meanwhile keeps what it counts
            return _tombstone(share, owner_id, transactions.together(also, while_pending), unfinished_only=True)
    except NoLongerPending:
        pass
    _tombstone(share, owner_id, also, unfinished_only=False)


def tombstone_unfinished(share: Share, also: Optional[Callable[[Transaction], None]] = None) -> None:
    """The tombstone of a presigned upload never completed, only while it is pending and holds no
    feedback (its total's counters at 0), with ``also``'s writes (what it gives back): else
    NoLongerPending (a completion got there first), HoldsFeedback (a spike did) or NotFound."""
    def holds_no_spikes(tx: Transaction) -> None:
        spike_counters.check_holds_no_spikes(tx, share.share_id)
    try:
        _tombstone(share, share.owner_id, transactions.together(holds_no_spikes, also), unfinished_only=True)
    except ConditionFailed as failed:
        if any(name.startswith(spike_counters.HOLDS_NO_SPIKES) for name in failed.failed):
            raise HoldsFeedback() from None
        raise


def _tombstone(share: Share, owner_id: str, also: Optional[Callable[[Transaction], None]],
               unfinished_only: bool) -> None:
    decrement = True
    status_condition = (Share.status == PENDING) if unfinished_only else \
        (Share.status.does_not_exist() | (Share.status != DELETING))

    def write(tx: Transaction) -> None:
        tx.update("share", share, actions=[Share.status.set(DELETING)],
                  condition=(Share.owner_id == owner_id) & status_condition)
        share_work.record_deletion(tx, share.share_id, clock.epoch())
        if decrement:
            tx.update("owner", User(owner_id), actions=[User.active_shares.add(-1)], condition=User.active_shares > 0)
        if also is not None:
            also(tx)
    while True:
        try:
            transactions.run(write, attempts=MAX_TRANSACTION_ATTEMPTS, busy_message=BUSY)
            share.status = DELETING
            return
        except ConditionFailed as failed:
            if "share" in failed:
                current = shares.get_by_id(share.share_id)  # deleted, or marked by a concurrent call
                if current is not None and current.status == DELETING:
                    share.status = DELETING
                    return
                if current is not None and unfinished_only:
                    raise NoLongerPending() from None
                raise NotFound("Share not found") from None
            if "owner" not in failed or not decrement:
                raise
            decrement = False  # the owner's count drifted to 0: do not count below zero


def retire_for_reuse(slug: str, owner_id: str) -> bool:
    """Retire ``slug`` now, as ``remove`` will, when it names one of ``owner_id``'s shares whose
    deletion started: the owner's next share may take it again at once, not only once the
    share_deletions job has finished a deletion that outlasted its request. True also when that
    job retired it for them since their share was refused it, at any moment of this. False otherwise."""
    for _ in range(2):  # read again once: the job finished that deletion after the claim was read
        try:
            claim = Share.get(slug_pk(slug), consistent_read=True)
        except Share.DoesNotExist:
            return False
        if claim.share_id is None:
            return claim.reserved_for == owner_id
        deleting = shares.get_by_id(claim.share_id, consistent=True)
        if deleting is not None and (deleting.status != DELETING or deleting.owner_id != owner_id):
            return False
        try:
            if deleting is not None:
                Share(slug_pk(slug), reserved_for=owner_id, retired_at=clock.iso(clock.now())).save(
                    condition=Share.share_id == deleting.share_id)
                return True
        except PutError as exc:
            if not transactions.conditional_failed(exc):
                raise  # else taken or retired meanwhile: read again
    return False


def remove(share: Share) -> None:
    """Finish a deletion: the record goes and the slug claim is retired (kept for the owner as
    stored: a claim may have moved the share since the deletion read it), together; run again
    after the owner claimed the slug anew, it leaves that claim alone."""
    retire, owner_id = share.slug is not None, share.owner_id

    def write(tx: Transaction) -> None:
        if retire:
            tx.save("slug", Share(slug_pk(share.slug), reserved_for=owner_id, retired_at=clock.iso(clock.now())),
                    condition=Share.pk.does_not_exist() | (Share.share_id == share.share_id))
        tx.delete("share", Share(share.pk, share_id=share.share_id),
                  condition=Share.pk.does_not_exist() | (Share.owner_id == owner_id))
    for attempt in range(3):  # each reason at most once: the slug taken, the owner moved (to a person)
        try:
            transactions.run(write, attempts=MAX_TRANSACTION_ATTEMPTS, busy_message=BUSY)
            return
        except ConditionFailed as failed:
            if attempt == 2 or ("share" not in failed and "slug" not in failed):
                raise
            if "share" in failed:  # claimed meanwhile (docs/security.md 71): its slug is the new owner's
                current = shares.get_by_id(share.share_id, consistent=True)
                owner_id = current.owner_id if current is not None else owner_id
            if "slug" in failed:
                retire = False  # the slug names another share of the owner's now (or its reservation)
