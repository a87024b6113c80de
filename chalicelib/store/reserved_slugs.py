"""Retired slugs: a deleted share's slug claim stays, kept for the share's owner
(``Share.reserved_for``, written by ``store/share_tombstones.remove``), so its old links never reach
someone else's share. Found by owner through the sparse ``reserved_index``, without a scan: they
move with a claimed key-only account, and an account's deletion can release them."""
from __future__ import annotations

from typing import Iterator

from chalicelib.store.models import Share
from chalicelib.store.shares import slug_pk
from chalicelib.store.transactions import update_if


def reserved_for(owner_id: str) -> Iterator[str]:
    """The slugs retired for ``owner_id`` (their deleted shares' slugs), oldest first."""
    for claim in Share.reserved_index.query(owner_id):
        yield claim.pk.removeprefix(slug_pk(""))


def move_reservation(slug: str, old_owner: str, new_owner: str) -> bool:
    """A retired slug kept for ``old_owner`` is kept for ``new_owner`` instead. False when it
    is not ``old_owner``'s any more (moved already, or claimed again by a new share)."""
    return update_if(Share(slug_pk(slug)), [Share.reserved_for.set(new_owner)],
                     Share.share_id.does_not_exist() & (Share.reserved_for == old_owner))
