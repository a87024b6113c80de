"""Claiming a key-only account (an agent's self-signup): a signed-in user who holds one of
its keys takes it over, with its keys, shares and spikes. Holding the key proves the right."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Optional, Tuple

from chalicelib import clock
from chalicelib.errors import AuthFailed, Conflict, ScopeDenied
from chalicelib.logs import get_logger
from chalicelib.services import key_places, ratelimit
from chalicelib.services.apikeys import authenticate
from chalicelib.services.scopes import FULL, expand
from chalicelib.settings import Settings
from chalicelib.store import accounts as account_store
from chalicelib.store import claim_marks, key_moves, pending_claims, reserved_slugs, share_moves, spike_moves
from chalicelib.store import shares as share_store
from chalicelib.store.models import ApiKey, User

log = get_logger("spikes.claims")

INDEX_LOOKS = 4
LOOK_PAUSE_SECONDS = 0.25  # times the look's number: at most 1.5 s in all, once the count says some are left


# What a claim spends moving, at most (one page, share or key more once it is over): the API
# function ends at 25 s and API Gateway answers 504 at 29 s. An account's spikes have no bound,
# so what does not fit is moved by the next call, which reads only what is left (docs/security.md 319).
MOVE_SECONDS = 12.0
# Calls a minute per signed-in account, counted before the key is read (docs/security.md 339).
# A call answering 202 for time has moved for MOVE_SECONDS: sent again on each answer, a claim
# makes 5 a minute at most and is never refused; what is left is finished by the job anyway (333).
LIMIT_NAME = "claims"
CALLS_PER_MINUTE = 10


@dataclass(frozen=True)
class Claimed:
    account_id: str
    keys: int
    shares: int
    spikes: int
    complete: bool = True  # False: time ran out with some left, moved by calling again


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
    again for what the indexes did not show yet (docs/security.md 71). A call moves for
    ``MOVE_SECONDS`` at most: ``complete`` False says some are left for the next."""
    ratelimit.enforce(LIMIT_NAME, user.user_id, CALLS_PER_MINUTE, 60, refusal=(
        f"Claims are limited to {CALLS_PER_MINUTE} calls a minute per account: send the same call again after "
        "Retry-After (a claim left incomplete is also finished within about 20 minutes without one)"))
    key, owner = _key_and_stored_owner(raw, settings)
    if not expand(key.scopes) >= FULL:
        raise ScopeDenied("full", "Only a key with every scope (full) can claim its account; this key has: "
                                  f"{key.scopes}")
    if owner.user_id == user.user_id:  # claimed already (a retry, or a look again): what is left moves
        claimed = account_store.get(key.claimed_from, consistent=True) if key.claimed_from else None
        if claimed is None or claimed.merged_into != user.user_id:
            return Claimed(key.claimed_from or user.user_id, 0, 0, 0)
        return _move_all(claimed, user.user_id, key, presented_moved=True)
    if owner.email is not None or (owner.merged_into and owner.merged_into != user.user_id):
        raise Conflict("This key belongs to an account that is not key-only; it cannot be claimed")
    # Owed from before the marking on, until a call completes it: the share_deletions job
    # finishes one that no call completes (a 202 not sent again, a call that died; 333).
    pending_claims.record(owner.user_id, clock.epoch())
    if not account_store.mark_merged(owner, user.user_id):
        raise Conflict("This account was claimed by someone else meanwhile")
    return _move_all(owner, user.user_id, key, presented_moved=False)


def finish(claimed: User, seconds: float) -> Claimed:
    """Go on moving what is left of a claim of ``claimed`` (marked ``merged_into``) for
    ``seconds`` at most, with no key presented (the share_deletions job: services/claim_work.py)."""
    return _move_all(claimed, claimed.merged_into, None, presented_moved=True, seconds=seconds)


def _move_all(owner: User, new_owner: str, key: Optional[ApiKey], presented_moved: bool,
              seconds: Optional[float] = None) -> Claimed:
    """Everything of the marked ``owner`` to ``user``, read after the marking: nothing is written
    for a marked account (keys: store/key_slots.take; shares: store/shares.insert; own spikes:
    store/spikes.insert; a share's spikes: its owner, checked by each post), so what
    these reads do not find is only what their indexes did not show yet (looked for again while
    the account's counts say shares or own spikes are left). Each step only once the one
    before finished in time, the presented key last."""
    deadline = time.monotonic() + (MOVE_SECONDS if seconds is None else seconds)

    def in_time() -> bool:
        return time.monotonic() < deadline
    moved_shares, done = _move_shares(owner.user_id, new_owner, in_time)
    moved_spikes, done = _move_spikes(owner.user_id, new_owner, in_time) if done else (0, False)
    # Its deleted shares' slugs, kept for it, are kept for the new owner (docs/shares.md "Slugs").
    for slug in reserved_slugs.reserved_for(owner.user_id) if done else ():
        reserved_slugs.move_reservation(slug, owner.user_id, new_owner)
        done = in_time()
        if not done:
            break
    moved_keys, done = _move_keys(owner.user_id, new_owner, key, presented_moved, in_time) if done else (0, False)
    if done:  # no longer moving: an own-feedback export reads all of it (docs/security.md 311)
        claim_marks.completed(new_owner, owner.user_id)
        pending_claims.forget(owner.user_id)
    log.info("account.claimed", account_id=owner.user_id, user_id=new_owner, keys=moved_keys,
             shares=moved_shares, spikes=moved_spikes, again=presented_moved, complete=done)
    return Claimed(owner.user_id, moved_keys, moved_shares, moved_spikes, complete=done)


def _move_keys(old_owner: str, new_owner: str, key: Optional[ApiKey], presented_moved: bool,
               in_time: Callable[[], bool]) -> Tuple[int, bool]:
    """Its keys, the presented one (if any) last: until it moves, a retry can finish the claim.
    How many moved, and False when time ran out first (the presented key not moved)."""
    # Their places move with them, however many the user holds already: the claim never fails
    # for it; the user creates no key until below the cap again (services/key_places.py).
    now = clock.epoch()
    if not (key_places.ensure_counted(old_owner, now) and key_places.ensure_counted(new_owner, now)):
        return 0, False  # an account from before the places, counted a part a call (334)
    # Every key it will ever hold, those the owner index does not show yet included.
    moved = 0
    for page in key_moves.pages_of(old_owner, known=[key] if key is not None else []):
        for item in page:
            if key is None or item.key_id != key.key_id:
                # Counted only if this call moved it: another call, or the job, may have first.
                moved += key_moves.move_to_owner(item, old_owner, new_owner)
                if not in_time():
                    return moved, False
    if not presented_moved and key is not None:
        moved += key_moves.move_to_owner(key, old_owner, new_owner)
    return moved, True


def _move_shares(old_owner: str, new_owner: str, in_time: Callable[[], bool]) -> Tuple[int, bool]:
    """Its shares, while the account's count of them says some are left. How many moved, and
    whether none is left to look for."""
    def move() -> Tuple[int, bool]:
        moved = 0
        for share in share_store.owned_by(old_owner):
            moved += share_moves.move_to_owner(share, old_owner, new_owner)
            if not in_time():
                return moved, False
        return moved, True

    def left() -> bool:
        account = account_store.get(old_owner, consistent=True)
        return account is not None and bool(account.active_shares)
    return _while_left(move, left, in_time)


def _move_spikes(old_owner: str, new_owner: str, in_time: Callable[[], bool]) -> Tuple[int, bool]:
    """Its spikes, while the account's count of its own spikes says some are left. How many
    moved, and whether none is left to look for."""
    return _while_left(lambda: spike_moves.move_in_time(old_owner, new_owner, in_time),
                       lambda: account_store.own_spikes_left(old_owner), in_time)


def _while_left(move: Callable[[], Tuple[int, bool]], left: Callable[[], bool],
                in_time: Callable[[], bool]) -> Tuple[int, bool]:
    """``move()`` what the owner index lists, and again (after a pause) while ``left()``, a count
    read consistently, says some are left, at most ``INDEX_LOOKS`` times: the index lags, and
    what was stored just before the marking may not be on it yet. How many moved, and False
    when time ran out before the listing ended."""
    moved = 0
    for look in range(INDEX_LOOKS):
        if look and not in_time():
            return moved, False
        time.sleep(LOOK_PAUSE_SECONDS * look)
        count, listed_all = move()
        moved += count
        if not listed_all:
            return moved, False
        if not left():
            break
    return moved, True


def _key_and_stored_owner(raw: str, settings: Settings) -> Tuple[ApiKey, User]:
    """Like ``authenticate`` but the key's stored owner, not the account it was merged into."""
    key, _ = authenticate(raw, settings)
    owner = account_store.get(key.user_id, consistent=True)
    if owner is None:
        raise AuthFailed()
    return key, owner

