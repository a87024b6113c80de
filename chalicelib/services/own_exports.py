"""An export of one's own feedback across a claim is whole or says it is not (docs/security.md 311).

Such an export reads one account's ``owner_index`` partition, newest first; a claim moves a
key-only account's spikes from its partition to the claiming person's, keeping their sort keys,
for as long as it takes (12 s a call, the share_deletions job finishing what no call does). So an
export of the key-only account read as the claim empties it, and one of the person's read while a
claim fills it, missed spikes and said nothing. The claim notes itself on the person's account
(store/claim_marks.py); an export of one's own feedback reads that at its start, refused
(409) while a claim into the account is moving, and again once it read everything: a claim begun
since, of the account itself or into it, fails it (409 for ``GET /spikes/export``, ``failed`` for
``POST /exports``) rather than hand over a file short of spikes. Exports of a share or a project
read its project partition, which no claim changes: nothing is asked for them.
"""
from __future__ import annotations

from typing import Iterable, Iterator, Optional, TypeVar

from chalicelib.errors import Conflict
from chalicelib.store import claim_marks
from chalicelib.store.spikes import Scope

OWNER = "owner"  # the index of one's own feedback (spikes.scope_for)
MOVING = ("A claim (POST /auth/link-key) is still moving a key-only account's feedback into this account, so an "
          "export of your own feedback would miss some. Send the claim again until it answers 200 (or wait: it "
          "completes within about 20 minutes), then export.")
MOVED = ("A claim (POST /auth/link-key) moved feedback while this export read it, so it may miss some. Export "
         "again once the claim answered 200 (it completes within about 20 minutes).")
Row = TypeVar("Row")


def claims_before(scope: Scope) -> Optional[int]:
    """What an export of ``scope`` notes at its start: for one's own feedback, how many claims into
    the account began (one strongly consistent read), Conflict while one is moving; None for any
    other export, which nothing is asked for."""
    if scope.index != OWNER:
        return None
    state = claim_marks.state(scope.partition)
    if state is not None and (state.moving or state.merged):
        raise Conflict(MOVING)
    return state.begun if state is not None else 0


def whole(scope: Scope, begun: Optional[int]) -> bool:
    """Whether no claim moved spikes into or out of ``scope``'s partition since the export's start
    noted ``begun`` (``claims_before``). One read, for an export of one's own feedback only."""
    if begun is None or scope.index != OWNER:
        return True
    state = claim_marks.state(scope.partition)
    return state is None or (not state.moving and not state.merged and state.begun == begun)


def read_whole(scope: Scope, rows: Iterable[Row]) -> Iterator[Row]:
    """``rows`` of an export read in one request (``GET /spikes/export``): Conflict before the
    first while a claim moves, or after the last when a claim began since."""
    begun = claims_before(scope)
    yield from rows
    if not whole(scope, begun):
        raise Conflict(MOVED)
