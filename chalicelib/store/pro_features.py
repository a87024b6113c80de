"""A share's Pro features as its owner's payments change: when Pro ends, password-protected
shares are locked and webhook URLs dropped; when it starts again, locked shares reopen. Each
share changes in its own transaction with a check of its owner (``owner``), so a payment or a
cancellation landing meanwhile stops the change.

Both the Stripe webhook and the scheduled quota reset take an owner's shares a page at a time
(``pro_features_page``) and checkpoint where the next page starts (services/quota_reset.py), so
an owner with thousands of shares never runs a request or the job out of time.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from chalicelib import clock
from chalicelib.store import transactions, webhook_releases
from chalicelib.store.models import Share
from chalicelib.store.shares import ACTIVE, BUSY, LOCKED, MAX_TRANSACTION_ATTEMPTS
from chalicelib.store.transactions import ConditionFailed, Transaction

# Worked out again when the share changed in between (a PATCH, a deletion): a few times at most.
MAX_CHANGE_ATTEMPTS = 3


def pro_features_page(owner_id: str, lock: bool, owner_check: Callable[[Transaction], None], size: int,
                      after: Optional[Dict[str, Any]]) -> Tuple[int, Optional[Dict[str, Any]]]:
    """At most ``size`` of the owner's shares, oldest first, from the position ``after`` (None:
    the first). ``lock`` (Pro ended): password-protected shares locked (unavailable, never
    public; the password is kept for a re-subscription) and webhook URLs dropped (the delivery
    job ends their held events); otherwise (Pro again) locked shares reopen and the events held
    while the owner did not pay are released. Each share changes
    in a transaction with ``owner_check`` of the owner (``owner``): a payment or cancellation
    meanwhile stops it. Idempotent. Returns how many changed and where the next page starts
    (None when no share is left); a page the owner's check stopped is cut at that share (the
    caller re-reads the owner before the next page)."""
    page = Share.owner_index.query(owner_id, limit=size, page_size=size, last_evaluated_key=after)
    changed = _change_pro_features(owner_id, owner_check, lock=lock, shares=page)
    return changed, page.last_evaluated_key


def _change_pro_features(owner_id: str, owner_check: Callable[[Transaction], None], lock: bool,
                         shares: Iterable[Share]) -> int:
    changed = 0
    for share in shares:
        try:
            changed += _change_share(share, owner_id, owner_check, lock)
        except _OwnerChanged:
            return changed  # the owner's tier changed meanwhile: its own handler takes over
    return changed


class _OwnerChanged(Exception):
    pass


def _change_share(share: Share, owner_id: str, owner_check: Callable[[Transaction], None], lock: bool) -> int:
    """1 when the share changed. Each write is conditioned on what it was worked out from: a
    share locks only while it is active with a password (a PATCH removing it meanwhile would
    leave it locked with nothing to open it, and a deletion started meanwhile would be undone),
    and reopens only while locked; changed meanwhile, it is read again and worked out anew."""
    if not lock and share.webhook_url is not None:
        # Pro again: the events the delivery job held while it was not (services/webhook_delivery.py) go out.
        webhook_releases.record(None, share.share_id, clock.epoch())
    for _ in range(MAX_CHANGE_ATTEMPTS):
        actions: List[Any] = []
        condition = Share.owner_id == owner_id
        if lock and share.password_hash and share.status == ACTIVE:
            actions.append(Share.status.set(LOCKED))
            condition &= Share.password_hash.exists() & (Share.status == ACTIVE)
        if lock and share.webhook_url is not None:
            actions.append(Share.webhook_url.remove())
        if not lock and share.status == LOCKED:
            actions.append(Share.status.set(ACTIVE))
            condition &= Share.status == LOCKED
        if not actions:
            return 0

        def write(tx: Transaction) -> None:
            tx.update("share", share, actions=actions, condition=condition)
            owner_check(tx)
            if lock and share.webhook_url is not None:
                webhook_releases.record(tx, share.share_id, clock.epoch())
        try:
            transactions.run(write, attempts=MAX_TRANSACTION_ATTEMPTS, busy_message=BUSY)
            return 1
        except ConditionFailed as failed:
            if "owner" in failed:
                raise _OwnerChanged() from None
        try:
            share.refresh(consistent_read=True)
        except Share.DoesNotExist:
            return 0  # deleted meanwhile
        if share.owner_id != owner_id:
            return 0  # moved by a claim: the new owner's tier decides
    return 0
