"""What an account knows of the claims moving a key-only account's items into it (docs/security.md
311): ``claims_moving``, the ids of the claimed accounts whose claim began and did not complete,
and ``claims_begun``, how many claims into it ever began. Both are written in the claim's marking
(``accounts.mark_merged``, one transaction, so a claim begins once), and the id leaves the set
when the claim completes (a call's or the share_deletions job's).

An export of one's own feedback reads one ``owner_index`` partition, which a claim fills (the
person's) or empties (the claimed account's) as it moves: it reads these at its start and again
at its end (``state``), and a change says it may have missed spikes (services/own_exports.py)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from chalicelib.store.models import User
from chalicelib.store.transactions import Transaction, update_if

NAME = "claimer"  # the person's write in the marking's transaction


@dataclass(frozen=True)
class ClaimState:
    merged: bool  # the account itself was claimed: its items are the claimer's now, or moving
    moving: bool  # a claim into it has not completed: some of its items are still elsewhere
    begun: int  # how many claims into it ever began


def begin(tx: Transaction, person_id: str, claimed_id: str) -> None:
    """In the marking's transaction: a claim of ``claimed_id`` into ``person_id`` begins."""
    tx.update(NAME, User(person_id), actions=[User.claims_moving.add({claimed_id}), User.claims_begun.add(1)],
              condition=User.user_id.exists())


def begin_again(person_id: str, claimed_id: str) -> bool:
    """The same for a claim marked by a version before these were kept (the upgrade step), unless
    it is known moving already. False when it was."""
    return update_if(User(person_id), [User.claims_moving.add({claimed_id}), User.claims_begun.add(1)],
                     User.user_id.exists() & ~User.claims_moving.contains(claimed_id))


def completed(person_id: str, claimed_id: str) -> None:
    """The claim of ``claimed_id`` moved everything: it is no longer moving (idempotent)."""
    update_if(User(person_id), [User.claims_moving.delete({claimed_id})], User.user_id.exists())


def state(account_id: str) -> Optional[ClaimState]:
    """The account's claims as stored now (strongly consistent); None when there is no account."""
    try:
        account = User.get(account_id, consistent_read=True,
                           attributes_to_get=["merged_into", "claims_moving", "claims_begun"])
    except User.DoesNotExist:
        return None
    return ClaimState(account.merged_into is not None, bool(account.claims_moving), int(account.claims_begun or 0))
