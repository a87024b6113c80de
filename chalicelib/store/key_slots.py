"""The places an account's live API keys hold under its cap (``SPIKES_MAX_API_KEYS``).

``User.live_keys`` maps the id of each key holding a place to ``true``. A key takes its place
in the transaction that writes it, conditioned on the map holding fewer ids than the cap
(``size(live_keys) < cap``), so racing creations can never pass it; it gives the place back
in the transaction that revokes it or moves it to another account (``write_with_place`` runs
one, again from the key as read when it changed meanwhile). Removing an id is idempotent:
only a key that really held a place frees one. A map rather than a number, so the places
can be checked against the keys by name: a key that expired, or that a crash or
an earlier version left behind revoked, is released (``release``) when a creation finds the
account full.

Accounts from before the map have none: every write here is conditioned on it existing (a
missing map fails the write, ``NotCounted``), and ``start_counting`` writes it once from the
owner index, only while it is still missing, never over a map another request wrote; a
bounded part of the index a call, where it stopped kept on the account (docs/security.md 334).
"""
from __future__ import annotations

import json
from typing import Callable, Iterable, List, Optional

from pynamodb.expressions.condition import size

from chalicelib.errors import DependencyUnavailable
from chalicelib.store import rows, transactions
from chalicelib.store.models import ApiKey, User
from chalicelib.store.transactions import Transaction, update_if

NAME = "places"  # the account's write in a key's transaction
_REMOVALS_PER_WRITE = 50


class NotCounted(Exception):
    """The account has no ``live_keys`` yet (it predates them): nothing was written."""


def take(tx: Transaction, user_id: str, key_id: str, cap: Optional[int]) -> None:
    """In ``tx``: ``key_id`` takes a place, only while the account holds fewer than ``cap``
    (None: however many it holds, for keys a claim brings along) and was not claimed (a claimed
    account's keys act as its new owner, and a key written to it afterwards would stay behind,
    unseen by that owner: ``merged``)."""
    condition = User.live_keys.exists() & User.merged_into.does_not_exist()
    if cap is not None:
        condition = condition & (size(User.live_keys) < cap)
    tx.update(NAME, User(user_id), actions=[User.live_keys[key_id].set(True)], condition=condition)


def give_back(tx: Transaction, user_id: str, key_id: str) -> None:
    """In ``tx``: ``key_id`` no longer holds a place (nothing changes if it held none)."""
    tx.update(NAME, User(user_id), actions=[User.live_keys[key_id].remove()], condition=User.live_keys.exists())


def holders(user_id: str) -> Optional[List[str]]:
    """The ids holding a place (strongly consistent); None while the account is not counted."""
    try:
        user = User.get(user_id, consistent_read=True, attributes_to_get=["live_keys"])
    except User.DoesNotExist:
        return None
    return None if user.live_keys is None else sorted(user.live_keys.as_dict())


def merged(user_id: str) -> bool:
    """Whether the account was claimed (``merged_into``): it takes no key any more."""
    try:
        return User.get(user_id, consistent_read=True, attributes_to_get=["merged_into"]).merged_into is not None
    except User.DoesNotExist:
        return False


# What counting an account from before ``live_keys`` reads per request at most: its owner index
# holds its revoked keys too (kept for good, 30 made an hour), so a year of rotations is some
# 260,000 items, which one request cannot read (docs/security.md 334). Where a request stopped
# is kept on the account (``live_keys_counted_to``, and the live ids found so far in
# ``live_keys_counting``); the next request goes on from there.
COUNT_PAGE = 1000
COUNT_READ_ITEMS = 10_000
COUNT_QUERIES = 20


def start_counting(user_id: str, expired_before: str) -> bool:
    """Count an account from before ``live_keys``: its keys neither revoked nor expired at
    ``expired_before``, read on the owner index, at most ``COUNT_READ_ITEMS`` a call, from where
    the call before stopped. Each call's progress, and the map at the end, are written only
    while the account still has no map and its progress is as this call read it (a request that
    counted it meanwhile wins; its count stands). Every key change is conditioned on the map, so
    none can land while the counting runs. True once the account is counted (False: call again)."""
    try:
        state = User.get(user_id, consistent_read=True,
                         attributes_to_get=["user_id", "live_keys", "live_keys_counting", "live_keys_counted_to"])
    except User.DoesNotExist:
        return True  # nothing to count: a write for it is refused as before
    if state.live_keys is not None:
        return True
    live = ApiKey.revoked_at.does_not_exist() & (ApiKey.expires_at.does_not_exist()
                                                 | (ApiKey.expires_at > expired_before))
    start = json.loads(state.live_keys_counted_to) if state.live_keys_counted_to else None
    # No bound on the keys found but the read's: each is an item read (docs/security.md 334).
    found, ended = rows.query_index(ApiKey, ApiKey.owner_index, user_id, limit=None, filter_condition=live,
                                    start_key=start, page_size=COUNT_PAGE, projection=["key_id", "user_id", "created_at"],
                                    read_limit=rows.ReadLimit(COUNT_READ_ITEMS, COUNT_QUERIES))
    ids = {**(state.live_keys_counting.as_dict() if state.live_keys_counting else {}),
           **{row.key_id: True for row in found}}
    as_read = User.user_id.exists() & User.live_keys.does_not_exist() & (
        User.live_keys_counted_to == state.live_keys_counted_to if state.live_keys_counted_to
        else User.live_keys_counted_to.does_not_exist())
    if ended is None:  # read to its end: the map, unless another request wrote it or went on meanwhile
        return update_if(User(user_id), [User.live_keys.set(ids), User.live_keys_counting.remove(),
                                         User.live_keys_counted_to.remove()], as_read) or holders(user_id) is not None
    update_if(User(user_id), [User.live_keys_counting.set(ids), User.live_keys_counted_to.set(json.dumps(ended))],
              as_read)  # refused: another request went on from here first, and the next call goes on from there
    return False


def release(user_id: str, key_ids: Iterable[str]) -> None:
    """Free the places of keys that can never be used again (revoked, expired, moved, gone):
    what makes them so never reverts, so removing them by name needs no other condition."""
    ids = list(key_ids)
    for start in range(0, len(ids), _REMOVALS_PER_WRITE):
        update_if(User(user_id), [User.live_keys[key_id].remove() for key_id in ids[start:start + _REMOVALS_PER_WRITE]],
                  User.live_keys.exists())


def write_with_place(key: ApiKey, write_for_key_as_read: Callable[[], Callable[[Transaction], None]],
                     moot: Callable[[ApiKey], bool]) -> bool:
    """Run a key's transaction that also changes its account's places, built from the key as
    last read; when the key changed meanwhile, read it again and retry, a few times. False
    once ``moot`` says the write no longer applies to the key as stored; ``NotCounted`` when
    the account's places refused it (not counted yet)."""
    for _ in range(3):
        try:
            transactions.run(write_for_key_as_read())
        except transactions.ConditionFailed as failed:
            if NAME in failed:
                raise NotCounted() from None
            key.refresh(consistent_read=True)
            if moot(key):
                return False
            continue
        return True
    raise DependencyUnavailable("This API key keeps changing; retry shortly")
