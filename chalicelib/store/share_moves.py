"""Claiming a key-only account: its shares change owner, each with its place in both owners'
share counts (docs/agents.md, "Claiming a key-only account")."""
from __future__ import annotations

from chalicelib.store import transactions
from chalicelib.store.models import Share, User
from chalicelib.store.shares import DELETING
from chalicelib.store.transactions import ConditionFailed, Transaction


def move_to_owner(share: Share, old_owner: str, new_owner: str) -> bool:
    """The share and its place in both owners' share counts, in one transaction; a share whose
    deletion started, off its owner's count already, without counting it. False when it moved
    already (or is gone)."""
    counted = Share.status.does_not_exist() | (Share.status != DELETING)

    def write(count_down: bool):
        def build(tx: Transaction) -> None:
            tx.update("share", share, actions=[Share.owner_id.set(new_owner)],
                      condition=(Share.owner_id == old_owner) & counted)
            tx.update("new-owner", User(new_owner), actions=[User.active_shares.add(1)],
                      condition=User.user_id.exists())
            if count_down:
                tx.update("old-owner", User(old_owner), actions=[User.active_shares.add(-1)],
                          condition=User.active_shares > 0)
        return build
    def uncounted(tx: Transaction) -> None:
        tx.update("share", share, actions=[Share.owner_id.set(new_owner)],
                  condition=(Share.owner_id == old_owner) & (Share.status == DELETING))
    # Each idempotent: a move whose commit answer was lost, sent again, met its own condition
    # and was answered "moved already", one share too few in the claim's answer (finding 70).
    try:
        try:
            transactions.run(write(count_down=True), idempotent=True)
        except ConditionFailed as failed:
            if "old-owner" not in failed or "share" in failed:
                raise
            # The old count drifted to zero: move and count it up all the same, in one
            # transaction, with the share's own conditions (a concurrent call of the claim
            # moving it, or its deletion starting, is seen, not written over).
            transactions.run(write(count_down=False), idempotent=True)
        return True
    except ConditionFailed as failed:
        if "share" not in failed:
            raise
    try:  # moved already, gone, or being deleted (the one to move uncounted)
        transactions.run(uncounted, idempotent=True)
        return True
    except ConditionFailed:
        return False
