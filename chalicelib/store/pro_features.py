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


def pro_features_page(owner_id: str, lock: bool, owner_check: Callable[[Transaction], None], size: int,
                      after: Optional[Dict[str, Any]]) -> Tuple[int, Optional[Dict[str, Any]]]:
    """At most ``size`` of the owner's shares, oldest first, from the position ``after`` (None:
    the first). ``lock`` (Pro ended): password-protected shares locked (unavailable, never
    public; the password is kept for a re-subscription) and webhook URLs dropped (the delivery
    job ends their held events); otherwise (Pro again) locked shares reopen. Each share changes
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
        actions: List[Any] = []
        if lock and share.password_hash and share.status == ACTIVE:
            actions.append(Share.status.set(LOCKED))
        if lock and share.webhook_url is not None:
            actions.append(Share.webhook_url.remove())
        if not lock and share.status == LOCKED:
            actions.append(Share.status.set(ACTIVE))
        if not actions:
            continue
        condition = (Share.owner_id == owner_id) if lock else (Share.status == LOCKED)

        def write(tx: Transaction) -> None:
            tx.update("share", share, actions=actions, condition=condition)
            owner_check(tx)
            if lock and share.webhook_url is not None:
                webhook_releases.record(tx, share.share_id, clock.epoch())
        try:
            transactions.run(write, attempts=MAX_TRANSACTION_ATTEMPTS, busy_message=BUSY)
        except ConditionFailed as failed:
            if "owner" in failed:
                return changed  # the owner's tier changed meanwhile: its own handler takes over
            continue  # deleted, moved or changed meanwhile
        changed += 1
    return changed

