"""Claiming a key-only account (an agent's self-signup): a signed-in user who holds one of
its keys takes it over, with its keys, shares and spikes. Holding the key proves the right."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Tuple

from chalicelib import clock
from chalicelib.errors import AuthFailed, Conflict, ScopeDenied
from chalicelib.logs import get_logger
from chalicelib.services import key_places
from chalicelib.services.apikeys import authenticate
from chalicelib.services.scopes import FULL, expand
from chalicelib.settings import Settings
from chalicelib.store import accounts as account_store
from chalicelib.store import apikeys as key_store
from chalicelib.store import reserved_slugs, share_moves, spike_moves
from chalicelib.store import shares as share_store
from chalicelib.store.models import ApiKey, User

log = get_logger("spikes.claims")

INDEX_LOOKS = 4
LOOK_PAUSE_SECONDS = 0.25  # times the look's number: at most 1.5 s in all, once the count says some are left


@dataclass(frozen=True)
class Claimed:
    account_id: str
    keys: int
    shares: int
    spikes: int


def claim(user: User, raw: str, settings: Settings) -> Claimed:
    """Link a key-only account (an agent's self-signup) to a signed-in user: its keys, shares,
    spikes and the slugs of its deleted shares become the user's. Holding a ``full`` key
    proves the right to claim it: the claim hands over everything, so a key granted less
    (``read``, one resource) cannot.

    Resumable and idempotent: the account is marked ``merged_into`` first (a key of a marked
    account authenticates as the new owner from then on, and nothing is written for it any
    more: a key, share or own spike refused so is made as the new owner), shares and spikes
    move with writes conditioned on the old owner, and the presented key moves last, so
    calling again after a failure finishes the move. Called again once it moved, it looks
    again for what the indexes did not show yet (docs/security.md 71)."""
    key, owner = _key_and_stored_owner(raw, settings)
    if not expand(key.scopes) >= FULL:
        raise ScopeDenied("full", "Only a key with every scope (full) can claim its account; this key has: "
                                  f"{key.scopes}")
    if owner.user_id == user.user_id:  # claimed already (a retry, or a look again): what is left moves
        claimed = account_store.get(key.claimed_from, consistent=True) if key.claimed_from else None
        if claimed is None or claimed.merged_into != user.user_id:
            return Claimed(key.claimed_from or user.user_id, 0, 0, 0)
        return _move_all(claimed, user, key, presented_moved=True)
    if owner.email is not None or (owner.merged_into and owner.merged_into != user.user_id):
        raise Conflict("This key belongs to an account that is not key-only; it cannot be claimed")
    if not account_store.mark_merged(owner, user.user_id):
        raise Conflict("This account was claimed by someone else meanwhile")
    return _move_all(owner, user, key, presented_moved=False)


def _move_all(owner: User, user: User, key: ApiKey, presented_moved: bool) -> Claimed:
    """Everything of the marked ``owner`` to ``user``, read after the marking: nothing is written
    for a marked account (keys: store/key_slots.take; shares: store/shares.insert; own spikes:
    store/spikes.insert; a share's spikes: its owner, checked by each post), so what
    these reads do not find is only what their indexes did not show yet (looked for again while
    the account's counts say shares or own spikes are left)."""
    moved_shares = _move_shares(owner.user_id, user.user_id)
    moved_spikes = _move_spikes(owner.user_id, user.user_id)
    # Its deleted shares' slugs, kept for it, are kept for the new owner (docs/shares.md "Slugs").
    for slug in list(reserved_slugs.reserved_for(owner.user_id)):
        reserved_slugs.move_reservation(slug, owner.user_id, user.user_id)
    # Their places move with them, however many the user holds already: the claim never fails
    # for it; the user creates no key until below the cap again (services/key_places.py).
    now = clock.epoch()
    key_places.ensure_counted(owner.user_id, now)
    key_places.ensure_counted(user.user_id, now)
    # Every key it will ever hold, those the owner index does not show yet included.
    keys = [k for k in key_store.all_of(owner.user_id, known=[key]) if k.key_id != key.key_id]
    keys += [] if presented_moved else [key]
    for item in keys:  # the presented key last: until it moves, a retry can finish the claim
        key_store.move_to_owner(item, owner.user_id, user.user_id)
    log.info("account.claimed", account_id=owner.user_id, user_id=user.user_id, keys=len(keys),
             shares=moved_shares, spikes=moved_spikes, again=presented_moved)
    return Claimed(owner.user_id, len(keys), moved_shares, moved_spikes)


def _move_shares(old_owner: str, new_owner: str) -> int:
    """Its shares, while the account's count of them says some are left. How many moved."""
    def move() -> int:
        return sum(share_moves.move_to_owner(share, old_owner, new_owner) for share in share_store.owned_by(old_owner))

    def left() -> bool:
        account = account_store.get(old_owner, consistent=True)
        return account is not None and bool(account.active_shares)
    return _while_left(move, left)


def _move_spikes(old_owner: str, new_owner: str) -> int:
    """Its spikes, while the account's count of its own spikes says some are left. How many moved."""
    return _while_left(lambda: spike_moves.move_to_owner(old_owner, new_owner),
                       lambda: account_store.own_spikes_left(old_owner))


def _while_left(move: Callable[[], int], left: Callable[[], bool]) -> int:
    """``move()`` what the owner index lists, and again (after a pause) while ``left()``, a count
    read consistently, says some are left, at most ``INDEX_LOOKS`` times: the index lags, and
    what was stored just before the marking may not be on it yet. How many moved."""
    moved = 0
    for look in range(INDEX_LOOKS):
        time.sleep(LOOK_PAUSE_SECONDS * look)
        moved += move()
        if not left():
            break
    return moved


def _key_and_stored_owner(raw: str, settings: Settings) -> Tuple[ApiKey, User]:
    """Like ``authenticate`` but the key's stored owner, not the account it was merged into."""
    key, _ = authenticate(raw, settings)
    owner = account_store.get(key.user_id, consistent=True)
    if owner is None:
        raise AuthFailed()
    return key, owner

