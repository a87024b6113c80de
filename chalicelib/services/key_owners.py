"""Whose key a request on a key acts for while a claim moves an agent's keys (docs/security.md 78).

A claim marks the key-only account merged, then moves its keys to the new owner one by one
(``services/claims.py``); a key of the marked account authenticates as the new owner from then
on. A change or revocation (``PATCH``/``DELETE /auth/api-key/{id}``) reads the key and writes
it conditioned on its owner as read, so a claim running meanwhile found it not the caller's
(the caller's account, as the request read it, on one side of the move, the key on the other:
404), or refused its write. A key is the caller's when ``ownership.owns`` says so (a claim made
its owner's account and the caller's one); a write refused because the key moved
is made again for the owner it moved to, and never answered as done.
"""
from __future__ import annotations

from typing import List

from chalicelib.errors import Conflict, DependencyUnavailable
from chalicelib.logs import get_logger
from chalicelib.services import key_places, ownership
from chalicelib.store import apikeys as key_store
from chalicelib.store import older_made_keys
from chalicelib.store.models import ApiKey

log = get_logger("spikes.key_owners")

_ATTEMPTS = 3  # a key moves at most once (a claimed account's new owner has an address: never claimed)


def revoke_with_made(key: ApiKey, at: str, now: float) -> List[ApiKey]:
    """``store/apikeys.revoke_with_made`` for the key's owner as read, and for an account a claim
    made one with it when a key of the tree turns out to be that account's (moved by the claim
    meanwhile, or still to move); the keys revoked. Refused (409) for any other account; 503
    while a key of the tree from before ``made_keys`` is still looked up (store/older_made_keys.py)."""
    owners, revoked = (key.user_id,), []
    # One budget of owner-index reads for the request, whatever its attempts (docs/security.md 351).
    looking = older_made_keys.Looking()
    for _ in range(_ATTEMPTS):
        try:
            return revoked + key_places.counted(key.user_id, now,
                                                lambda: key_store.revoke_with_made(key, owners, at, looking))
        except key_store.LookingFurther as looking:
            # A key from before made_keys, in an account of many keys: the part of its owner index
            # a request reads did not end (docs/security.md 348). What it found is revoked already.
            for item in revoked + looking.revoked:
                log.info("apikey.revoked", key_id=item.key_id, user_id=item.user_id, via=key.key_id)
            raise DependencyUnavailable("Looking for the keys this API key made before they were recorded on it, "
                                        "among this account's keys; send the request again", retry_after=1) from None
        except key_store.Moved as moved:
            revoked += moved.revoked
            if not any(ownership.one_by_claim(owner, moved.owner_id) for owner in owners):
                break
            owners += (moved.owner_id,)
    raise Conflict("This API key, or one it made, was moved to another account meanwhile; send the request again")
