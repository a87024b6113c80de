"""How many live API keys an account holds: at most ``SPIKES_MAX_API_KEYS``, exactly, however
many creations race (docs/security.md, 61).

Each live key holds a place on its account (``store/key_slots.py``), taken in the transaction
that writes the key, only while one is free, and given back in the transaction that revokes
it (or moves it, when its account is claimed). A key that expires keeps its place until a
creation finds the account full: that creation then reads the keys holding places and frees
those that can never be used again (revoked, expired more than ``EXPIRED_GRACE_SECONDS`` ago,
moved, gone) before it gives up with ``429 KEY_LIMIT``. An expired key cannot be changed
(``PATCH`` answers 409), so one whose place was freed never comes back to life; the grace
covers clocks that differ between Lambdas.

Accounts from before the places were kept are counted once, by the first request that
changes one of their keys (``store/key_slots.start_counting``), a bounded part of their keys a
request: while the counting goes on, a change answers 503 with Retry-After and a claim 202
(docs/security.md 334).
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Callable, TypeVar

from chalicelib import clock
from chalicelib.errors import DependencyUnavailable
from chalicelib.limit_errors import KeyLimit
from chalicelib.store import apikeys as key_store
from chalicelib.store import key_slots

EXPIRED_GRACE_SECONDS = 300
_ATTEMPTS = 3
T = TypeVar("T")


def _expired_before(now: float) -> str:
    return clock.iso_millis(datetime.fromtimestamp(now - EXPIRED_GRACE_SECONDS, timezone.utc))


def ensure_counted(user_id: str, now: float) -> bool:
    """Whether the account is counted, after counting a part of it if it was not (False: not
    yet, call again)."""
    return key_slots.holders(user_id) is not None or key_slots.start_counting(user_id, _expired_before(now))


def _count(user_id: str, now: float) -> None:
    """Go on counting the account; DependencyUnavailable (503, Retry-After) while it is not done."""
    if not key_slots.start_counting(user_id, _expired_before(now)):
        raise DependencyUnavailable("This account's API keys are being counted (it predates the key cap); "
                                    "retry in a moment", retry_after=1)


def counted(user_id: str, now: float, write: Callable[[], T]) -> T:
    """``write()``, after counting the account first if it predates the places (its writes
    refuse to change an account that is not counted)."""
    try:
        return write()
    except key_slots.NotCounted:
        _count(user_id, now)
        return write()


def refuse_when_full(user_id: str, cap: int, now: float, limit_making_room: Callable[[], object]) -> None:
    """Before a creation takes its hourly allowance: ``KeyLimit`` when every place is held by a
    key that can still be used, so a refusal uses none of it. Making room reads the keys
    holding places, so how often it runs is bounded apart (``limit_making_room``); a place taken
    meanwhile is still refused by the key's transaction (``within_cap``). An account from before
    the places is counted first, so a 503 while that goes on uses none of it either (334)."""
    held = key_slots.holders(user_id)
    if held is None:
        _count(user_id, now)
        held = key_slots.holders(user_id)
    if held is None or len(held) < cap:
        return
    limit_making_room()
    if not _make_room(user_id, cap, now):
        raise KeyLimit(cap)


def within_cap(user_id: str, cap: int, now: float, write: Callable[[], T]) -> T:
    """``write()`` (a key's insert, taking a place), making room when the account is full:
    ``KeyLimit`` when every place is held by a key that can still be used."""
    for _ in range(_ATTEMPTS):
        try:
            return write()
        except key_store.AtCap:
            if not _make_room(user_id, cap, now):
                break
    raise KeyLimit(cap)


def _make_room(user_id: str, cap: int, now: float) -> bool:
    """After a creation found no free place: True when trying again may succeed (the account
    was not counted yet, a place was freed meanwhile, or this call freed some)."""
    held = key_slots.holders(user_id)
    if held is None:
        _count(user_id, now)
        return True
    if len(held) < cap:
        return True
    expired_before = _expired_before(now)
    keys = {key.key_id: key for key in key_store.get_many(held)}
    unusable = [key_id for key_id in held if keys.get(key_id) is None or keys[key_id].revoked_at is not None
                or keys[key_id].user_id != user_id
                or (keys[key_id].expires_at is not None and keys[key_id].expires_at <= expired_before)]
    if unusable:
        key_slots.release(user_id, unusable)
    return bool(unusable)
