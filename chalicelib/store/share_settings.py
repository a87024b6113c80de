"""What the owner changes on a share (``PATCH /shares/{key}``): its name, password and webhook URL.

A share is ``locked`` only while it has a password (its owner no longer pays: store/pro_features.py
locks it). Removing the password opens a locked share, and what that write does to the status
depends on the status: it is conditioned on the status it was worked out from. A downgrade that
locks the share after the change read it (or a re-subscription that opens it) refuses the write,
and the change is worked out again from the share as stored, never leaving a share locked with no
password to open it.
"""
from __future__ import annotations

from typing import Any, Callable, List, Optional

from chalicelib.errors import DependencyUnavailable, NotFound
from chalicelib.store import transactions
from chalicelib.store.models import Share
from chalicelib.store.shares import ACTIVE, BUSY, DELETING, LOCKED
from chalicelib.store.transactions import ConditionFailed, Transaction, update_if

# A refusal means the share changed in between: a downgrade and a re-subscription, at most.
MAX_ATTEMPTS = 3


def update(share: Share, owner_id: str, name: Optional[str] = None, password_hash: Optional[str] = None,
           webhook_url: Optional[str] = None, webhook_secret_nonce: Optional[str] = None,
           also: Optional[Callable[[Transaction], None]] = None) -> Share:
    """Rename, and set ("" removes) the password hash and the webhook URL. A new or removed
    password bumps ``password_version`` so unlock proofs of the old one stop working. With
    ``also``'s writes (a check that the owner still pays) in one transaction: ConditionFailed
    names them when they fail. NotFound when the share is gone, not the owner's or deleting."""
    for _ in range(MAX_ATTEMPTS):
        actions = _actions(share, name, password_hash, webhook_url, webhook_secret_nonce)
        if not actions:
            return share
        # Neither a deleted share (a partial item) nor one whose deletion started (a locked one set
        # active again would be forgotten by the deletion job, files gone) comes back.
        condition = (Share.owner_id == owner_id) & (Share.status.does_not_exist() | (Share.status != DELETING))
        if password_hash is not None:
            condition &= Share.status.does_not_exist() if share.status is None else Share.status == share.status
        if _written(share, actions, condition, also):
            return share
        try:
            share.refresh(consistent_read=True)
        except Share.DoesNotExist:
            raise NotFound("Share not found") from None
        if share.owner_id != owner_id or share.status == DELETING:
            raise NotFound("Share not found")
    raise DependencyUnavailable(BUSY)


def _actions(share: Share, name: Optional[str], password_hash: Optional[str], webhook_url: Optional[str],
             webhook_secret_nonce: Optional[str]) -> List[Any]:
    actions: List[Any] = []
    if name is not None:
        actions.append(Share.name.set(name))
    if password_hash is not None:
        actions.append(Share.password_hash.set(password_hash) if password_hash else Share.password_hash.remove())
        actions.append(Share.password_version.add(1))
        if share.status == LOCKED:
            # Removing the password (or a Pro owner setting a new one) opens a locked share.
            actions.append(Share.status.set(ACTIVE))
    if webhook_url is not None:
        # A new or removed receiver starts afresh: its own secret, no rotation grace, not paused.
        actions += [Share.webhook_url.set(webhook_url) if webhook_url else Share.webhook_url.remove(),
                    Share.webhook_secret_nonce.set(webhook_secret_nonce) if webhook_url and webhook_secret_nonce
                    else Share.webhook_secret_nonce.remove(),
                    Share.webhook_previous_nonce.remove(), Share.webhook_previous_until.remove(),
                    Share.webhook_paused_at.remove(), Share.webhook_pause_reason.remove()]
    return actions


def _written(share: Share, actions: List[Any], condition: Any, also: Optional[Callable[[Transaction], None]]) -> bool:
    """The update made (False: the share's condition refused it)."""
    if also is None:
        return update_if(share, actions, condition)

    def write(tx: Transaction) -> None:
        tx.update("share", share, actions, condition=condition)
        also(tx)
    try:
        transactions.run(write)
    except ConditionFailed as failed:
        if "share" in failed:
            return False
        raise
    try:  # a transaction, unlike an UpdateItem, does not answer with the item as stored
        share.refresh(consistent_read=True)
    except Share.DoesNotExist:
        raise NotFound("Share not found") from None
    return True
