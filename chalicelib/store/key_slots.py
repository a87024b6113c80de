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
owner index, only while it is still missing, never over a map another request wrote.
"""
from __future__ import annotations

from typing import Callable, Iterable, List, Optional

from pynamodb.expressions.condition import size

from chalicelib.errors import DependencyUnavailable
from chalicelib.store import transactions
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


def start_counting(user_id: str, expired_before: str) -> None:
    """Count an account from before ``live_keys``: its keys neither revoked nor expired at
    ``expired_before``, read on the owner index, written only while the account still has no
    map (a request that counted it meanwhile wins; its count stands). Every later change is
    conditioned on the map, so none can land between this read and this write."""
    live = ApiKey.revoked_at.does_not_exist() & (ApiKey.expires_at.does_not_exist()
                                                 | (ApiKey.expires_at > expired_before))
    ids = {key.key_id: True for key in ApiKey.owner_index.query(user_id, filter_condition=live)}
    update_if(User(user_id), [User.live_keys.set(ids)], User.user_id.exists() & User.live_keys.does_not_exist())


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
