"""Test data written through the store's own helpers (for tests that are not about creating it),
so it keeps the store's invariants: a share has its slug claim and counts in its owner's
active_shares."""
from __future__ import annotations

from typing import Optional

from chalicelib import clock
from chalicelib.services.accounts import user_id_for
from chalicelib.services.share_creation import new_share_id
from chalicelib.store import accounts
from chalicelib.store import shares as share_store
from chalicelib.store.models import Share, User


def make_user(email: str, tier: str = "free") -> User:
    user = User(user_id_for(email), email=email, tier=tier, created_at="2026-01-01T00:00:00Z", active_shares=0)
    user.save()
    return user


def make_share(owner_email: str, slug: str, tier: Optional[str] = None, **fields) -> Share:
    """A share owned by ``owner_email`` (the user is created if missing)."""
    owner_id = user_id_for(owner_email)
    if tier is not None or not _exists(owner_id):
        make_user(owner_email, tier or "free")
    owner = User.get(owner_id)
    fields = {"owner_tier": owner.tier, "owner_grace_until": owner.grace_until, **fields}  # as uploads do
    fields = {"status": share_store.ACTIVE, **fields}
    share = share_store.new(new_share_id(), slug=slug, owner_id=owner_id, name=slug,
                            created_at=clock.iso(clock.now()), **fields)
    # The store's own insert: the slug claim and the owner's active_shares move with the share.
    return share_store.insert(share, owner_id, under_limit=None)


def _exists(user_id: str) -> bool:
    return accounts.get(user_id) is not None


def change_pro_features(owner_id: str, lock: bool, now: Optional[float] = None) -> int:
    """All of a test owner's shares at once (one page: tests have few), locked when ``lock``
    (checked unpaid) or reopened (checked paid), as a Stripe event's pages do. How many changed."""
    from chalicelib.services import quotas
    from chalicelib.store import pro_features
    now = clock.epoch() if now is None else now
    return pro_features.pro_features_page(owner_id, lock, quotas.while_paid(owner_id, now, paid=not lock),
                                          1000, None)[0]


def queued(queue) -> list:
    """The names of the units pending in ``queue`` (store/pending_queue.py), not parked."""
    from chalicelib.store.models import Delivery
    return sorted(item.delivery_id[len(queue.prefix):] for item in Delivery.due_index.query(queue.partition))


def legacy_work(item: str, *members: str) -> None:
    """Members of a ledger work set as an earlier version added them (a raw string-set ADD)."""
    from chalicelib.store.models import LedgerItem
    LedgerItem(item).update(actions=[LedgerItem.members.add(set(members))])


def as_before_migrations(monkeypatch, *markers: str) -> None:
    """The migrations marked ``markers`` not done, as on a table kept from an earlier version:
    their markers deleted from the ledger, and this test's functions remembering no migration
    done (store/spike_ids.py, ``marker_done``) but what they read again; forgotten after it."""
    from chalicelib.store import spike_ids
    from chalicelib.store.models import LedgerItem
    for marker in markers:
        LedgerItem(marker).delete()  # absent already is as good
    monkeypatch.setattr(spike_ids, "_done_markers", set())
