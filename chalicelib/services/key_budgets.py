"""A key's spending cap covers the keys it made, and theirs (docs/security.md 121).

A key holding ``keys:manage`` makes keys with at most its own cap, but each such key had a budget
of its own: a capped key could mint keys and spend its cap again with each. So a key made by a
key names its makers (``made_by``: its maker, that key's maker, and so on), and a charge made
with it is also counted in the cost of each maker that has a cap, under that cap as stored
when the charge is made (services/metering.py): what a key and every key under it spend
together stays within its cap. The chain is bounded, so a charge's transaction stays small.
"""
from __future__ import annotations

from typing import Collection, List, Optional, Tuple

from chalicelib.errors import ScopeDenied
from chalicelib.store import accounts as account_store
from chalicelib.store import apikeys as key_store
from chalicelib.store.models import ApiKey

MAX_MAKERS = 10  # a charge's transaction gains one item per maker with a cap


def makers_of(key: ApiKey) -> List[str]:
    """The keys that made ``key``, nearest first (a key made before ``made_by`` was kept: its
    maker only)."""
    if key.made_by is not None:
        return list(key.made_by)
    created_by = key.created_by or ""
    return [created_by[len("key:"):]] if created_by.startswith("key:") else []


def lineage(actor: Optional[ApiKey]) -> Optional[List[str]]:
    """``made_by`` of a key that ``actor`` makes (None when a session makes it)."""
    if actor is None:
        return None
    makers = [actor.key_id] + makers_of(actor)
    if len(makers) > MAX_MAKERS:
        raise ScopeDenied("account:write", f"A key made by {MAX_MAKERS} keys in a row cannot make keys; create "
                                           "this one with the account owner's signed-in session")
    return makers


def acts_for(key: ApiKey, account_id: str) -> bool:
    """``key`` spends for ``account_id``, so its caps bind what it is charged there: the account
    is its own, the key-only one it was claimed from, or the one its account was claimed into
    and it has not moved to yet (docs/security.md 170). That last costs a strongly consistent
    read, made only when the key is of neither: amid a claim, or posting to another's share."""
    if account_id in (key.user_id, key.claimed_from):
        return True
    owner = account_store.get(key.user_id, consistent=True)
    return owner is not None and owner.merged_into == account_id


def maker_caps(key: ApiKey, accounts: Collection[Optional[str]]) -> Tuple[Tuple[str, int], ...]:
    """(key id, cap) of each key that made ``key``, is of one of ``accounts`` (either side of a
    claim) and has a cap, as stored now (one strongly consistent read, only for a key made by
    keys)."""
    ids = makers_of(key)
    if not ids:
        return ()
    stored = {maker.key_id: maker for maker in key_store.get_many(sorted(set(ids)))}
    return tuple((key_id, int(stored[key_id].monthly_cap_cents)) for key_id in ids
                 if key_id in stored and stored[key_id].monthly_cap_cents is not None
                 and stored[key_id].user_id in accounts)
