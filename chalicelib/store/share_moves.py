"""Claiming a key-only account: its shares change owner, each with its place in both owners'
share counts (docs/agents.md, "Claiming a key-only account")."""
from __future__ import annotations

from chalicelib.store import transactions
from chalicelib.store.models import Share, User
from chalicelib.store.transactions import ConditionFailed, Transaction


def move_to_owner(share: Share, old_owner: str, new_owner: str) -> bool:
    """The share and its place in both owners' share counts, in one transaction. False when it
    moved already."""
    def write(tx: Transaction) -> None:
        tx.update("share", share, actions=[Share.owner_id.set(new_owner)], condition=Share.owner_id == old_owner)
        tx.update("new-owner", User(new_owner), actions=[User.active_shares.add(1)], condition=User.user_id.exists())
        tx.update("old-owner", User(old_owner), actions=[User.active_shares.add(-1)], condition=User.active_shares > 0)
    try:
        transactions.run(write)
        return True
    except ConditionFailed as failed:
        if "share" in failed:
            return False
        if "old-owner" in failed:  # the old count drifted to zero: move without counting it down
            share.update(actions=[Share.owner_id.set(new_owner)], condition=Share.owner_id == old_owner)
            User(new_owner).update(actions=[User.active_shares.add(1)])
            return True
        raise
