"""Claiming a key-only account: its keys change owner, each with its place under both owners'
caps (``key_slots``), every key it holds found first, those the owner index does not show yet
included (docs/agents.md, "Claiming a key-only account")."""
from __future__ import annotations

from itertools import islice
from typing import Callable, Iterable, Iterator, List

from chalicelib.store import apikeys, key_slots
from chalicelib.store.models import ApiKey
from chalicelib.store.transactions import Transaction


def pages_of(owner_id: str, known: Iterable[ApiKey] = ()) -> Iterator[List[ApiKey]]:
    """Every key of ``owner_id`` as stored now (strongly consistent), a page at a time: ``known``
    ones and those the owner index lists, then those the index does not show yet, found through
    the others' ``made_keys`` (a key made by a key is recorded on it in the transaction that
    writes it). A page at a time because an account's revoked keys have no bound (30 made an
    hour, kept for good): a claim stops between pages when its time is out (docs/security.md 320)."""
    listed, seen = iter(apikeys.owned_by(owner_id)), set()
    makers: List[ApiKey] = []  # the keys found that made keys: only theirs are looked for after
    batch = [key.key_id for key in known]
    while True:
        batch = sorted({key_id for key_id in batch + [key.key_id for key in islice(listed, apikeys.KEYS_PAGE)]} - seen)
        if not batch:
            break
        seen.update(batch)
        page = [key for key in apikeys.get_many(batch) if key.user_id == owner_id]
        makers += [key for key in page if key.made_keys]
        yield page
        batch = []
    while makers:
        page = []
        for child_id in sorted(set(makers.pop().made_keys or ()) - seen):
            seen.add(child_id)
            child = apikeys.get(child_id)
            if child is not None and child.user_id == owner_id:
                page.append(child)
                makers += [child] if child.made_keys else []
        if page:
            yield page


def move_to_owner(key: ApiKey, old_owner: str, new_owner: str) -> bool:
    """The key becomes ``new_owner``'s, if it still is ``old_owner``'s (a claim), and its place
    moves with it, whatever the new owner holds already (``NotCounted`` when either account
    is not counted yet). False when it was not ``old_owner``'s any more."""
    def write_for_key_as_read() -> Callable[[Transaction], None]:
        live = key.revoked_at is None  # a revoked key holds no place to take along
        state = ApiKey.revoked_at.does_not_exist() if live else ApiKey.revoked_at.exists()

        def write(tx: Transaction) -> None:
            tx.update("key", key, actions=[ApiKey.user_id.set(new_owner), ApiKey.claimed_from.set(old_owner)],
                      condition=(ApiKey.user_id == old_owner) & state)
            key_slots.give_back(tx, old_owner, key.key_id)
            if live:
                key_slots.take(tx, new_owner, key.key_id, None)
        return write
    if not key_slots.write_with_place(key, write_for_key_as_read, lambda stored: stored.user_id != old_owner):
        return False
    key.user_id, key.claimed_from = new_owner, old_owner
    return True
