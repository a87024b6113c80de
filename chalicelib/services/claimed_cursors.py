"""Listings paged across a claim carry on (docs/security.md 310, 332).

A listing's cursor is signed and bound to the account that listed (``<listing>:<account id>``,
store/cursors.py). A claim moves a key-only account's spikes, shares and keys to the claiming
person keeping each item's sort key, and from then on the account's keys authenticate as the
person: a cursor the key-only account was given names a place in the person's listing, where
the moved items are. Presented by the person (a session, or any key now theirs), it is bound
to the person's listing at the same place; the person's older items follow, as after one of
their own cursors. Any other account's cursor is left as it is, and refused as before.
"""
from __future__ import annotations

from typing import Optional

from chalicelib.services import ownership
from chalicelib.store import cursors

# The listings whose cursors are bound to an account, and the field of the cursor naming it
# (the hash key of the owner index each one reads): GET /spikes without ?project= (the owner's
# listing, its open spikes' too), GET /shares and GET /auth/api-keys.
ACCOUNT_FIELDS = {"owner": "owner_id", "shares": "owner_id", "keys": "user_id"}


def carried_on(principal: Optional[ownership.Caller], cursor: Optional[str], secret: str) -> Optional[str]:
    """``cursor`` as ``principal`` pages on: one of an account a claim merged into the caller's
    bound to the caller's listing at the same place; any other as it is. Costs a strongly
    consistent read of an account only for a signed cursor of another account than the caller's
    that the caller's key was not made for (``claimed_from``): refused otherwise anyway."""
    user = principal.user if principal is not None else None
    if not cursor or user is None:
        return cursor
    listing, _, account = (cursors.scope_of(secret, cursor) or "").partition(":")
    field = ACCOUNT_FIELDS.get(listing)
    if field is None or not account or account == user.user_id:
        return cursor
    if account != principal.claimed_from and not ownership.claimed_into(account, user):
        return cursor
    return cursors.rebound(secret, cursor, f"{listing}:{account}", f"{listing}:{user.user_id}", field, account,
                           user.user_id)
