"""Finding a spike by the id its client sees, reading only the caller's spikes.

Clients choose public ids, so any number of projects can hold the same one, and anyone can
post to a project key of their own. ``id_index`` (by public id alone) made a user's lookup
read every project's spike with that id, filtered to the user afterwards: a reviewer who
knows a spike's id could post it under thousands of throwaway keys and make its owner's
``GET/PATCH/DELETE /spikes/{id}`` read them all (docs/security.md, finding 33).

``id_owner_index`` keys the id by ``owner_project`` = ``<owner id>#<partition>`` (``#<partition>``
for an anonymous project key), so a user's lookup is a key condition on their own prefix.
Items stored before the attribute existed get it from ``backfill``, which ``make deploy`` and
the local server's start run; until it has finished, a miss falls back to ``id_index``.

A lookup asks for at most two matches (one is the answer, two a conflict the caller resolves
with ``?project=``), and a project given is part of the Query's filter, so the spike in the
project asked for is found however many other projects of the same owner hold its id.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import List, Optional, Set

from pynamodb.exceptions import QueryError
from pynamodb.expressions.condition import Condition

from chalicelib import clock
from chalicelib.store import new_indexes
from chalicelib.store.models import LedgerItem, Spike
from chalicelib.store.transactions import update_if

MAX_ID_MATCHES = 2
# Items read per Query page while a filter drops some: PynamoDB's default page is the limit,
# which would read a filtered-out run of items two at a time.
FILTERED_PAGE = 100
BACKFILL_MARKER = "migration#spike-owner-project"
BACKFILL_THREADS = 8
BACKFILL_PASSES = 3
# A later look reads the spikes received since the last one, this much earlier: another machine's
# clock (a Lambda's, the deploying laptop's) may be behind.
RECHECK_MARGIN_SECONDS = 3600
FEED = "all"  # every spike's feed_index partition
DONE = "done"

# A finished migration never un-finishes, so a function may remember its marker for its lifetime.
_done_markers: Set[str] = set()


def owner_project(owner_id: Optional[str], partition: str) -> str:
    return f"{owner_id or ''}#{partition}"


def find(public_id: str, owner_id: Optional[str] = None, project_key: Optional[str] = None,
         share_id: Optional[str] = None) -> List[Spike]:
    """At most two spikes with this public id (ids are unique per project), only ``owner_id``'s
    when given; with ``project_key``, only those posted under that key or to ``share_id`` (the
    share the key names). Items stored before ids were kept have no public id: their id is
    their key."""
    in_project = _in_project(project_key, share_id)
    found = _from_owner_index(public_id, owner_id, in_project)
    if found is None or (not found and not backfilled()):
        found = _from_id_index(public_id, owner_id, in_project)
    if not found and public_id.startswith("spk_"):
        try:
            legacy = Spike.get(public_id)
        except Spike.DoesNotExist:
            legacy = None
        if (legacy is not None and legacy.public_id is None and (owner_id is None or legacy.owner_id == owner_id)
                and _holds(legacy, project_key, share_id)):
            found = [legacy]
    return found


def _in_project(project_key: Optional[str], share_id: Optional[str]) -> Optional[Condition]:
    if project_key is None:
        return None
    condition = Spike.project_key == project_key
    return condition | (Spike.share_id == share_id) if share_id is not None else condition


def _holds(spike: Spike, project_key: Optional[str], share_id: Optional[str]) -> bool:
    return project_key is None or spike.project_key == project_key or (share_id is not None and spike.share_id == share_id)


def _page_size(condition: Optional[Condition]) -> Optional[int]:
    return FILTERED_PAGE if condition is not None else None


def _from_owner_index(public_id: str, owner_id: Optional[str],
                      in_project: Optional[Condition]) -> Optional[List[Spike]]:
    """None while the index is not readable yet: an upgrade's new index is built while the
    new code already runs (CloudFormation; the local server adds it at start)."""
    mine = Spike.owner_project.startswith(f"{owner_id}#") if owner_id is not None else None
    try:
        return list(Spike.id_owner_index.query(public_id, range_key_condition=mine, filter_condition=in_project,
                                               limit=MAX_ID_MATCHES, page_size=_page_size(in_project)))
    except QueryError as exc:
        if new_indexes.not_ready(exc, Spike.id_owner_index.Meta.index_name):
            return None
        raise


def _from_id_index(public_id: str, owner_id: Optional[str], in_project: Optional[Condition]) -> List[Spike]:
    condition = Spike.owner_id == owner_id if owner_id is not None else None
    if in_project is not None:
        condition = in_project if condition is None else condition & in_project
    return list(Spike.id_index.query(public_id, filter_condition=condition, limit=MAX_ID_MATCHES,
                                     page_size=_page_size(condition)))


def backfilled() -> bool:
    return marker_done(BACKFILL_MARKER)


def marker_done(marker_key: str) -> bool:
    """Whether the migration marked ``marker_key`` in the ledger has finished: remembered once it
    has, read again (consistently) at each ask until then."""
    if marker_key not in _done_markers:
        try:
            if LedgerItem.get(marker_key, consistent_read=True).state == DONE:
                _done_markers.add(marker_key)
        except LedgerItem.DoesNotExist:
            pass
    return marker_key in _done_markers


def backfill(whole: bool = False) -> int:
    """Give ``owner_project`` to every spike stored without it; True in the marker once a whole
    pass found none left. Idempotent and safe beside live traffic: each item is updated only if
    its owner is still the one read (a concurrent move sets the attribute itself), and items
    the old code wrote meanwhile are caught by the next pass. Not on a request path: it scans.
    Once done, every later deploy and local start looks again at the spikes received since the
    last look (``RECHECK_MARGIN_SECONDS`` earlier, for clocks), from the admin feed: an earlier
    version may have written since, in its last invocations after the deploy that marked it,
    or deployed or started again on the same tables, and a spike it wrote without the attribute
    would stay out of every lookup by id for good. ``whole``: look at every spike again, as if
    never marked (store/setup.upgrade_items)."""
    checked_to = None if whole else checked_to_of(BACKFILL_MARKER)
    started = looked_up_to()
    updated = 0
    for _ in range(BACKFILL_PASSES):
        missing = _missing(checked_to)
        if not missing:
            LedgerItem(BACKFILL_MARKER, state=DONE, detail={"checked_to": started}).save()
            return updated
        with ThreadPoolExecutor(max_workers=BACKFILL_THREADS) as pool:
            updated += sum(pool.map(_give_owner_project, missing))
    return updated  # still changing under us: the next run (deploy or start) finishes it


def looked_up_to() -> float:
    """What the marker may record of a look that starts now: this machine's clock (the deployer's
    laptop may be hours ahead), or the newest spike's received time (by the clock of the function
    that stored it) if earlier. Spikes an earlier version stores later are received after it."""
    now = clock.epoch()
    for newest in Spike.feed_index.query(FEED, scan_index_forward=False, limit=1, attributes_to_get=["sort_key"]):
        try:
            return min(now, clock.parse_iso(newest.sort_key.split("#", 1)[0]).timestamp())
        except ValueError:
            break
    return now


def checked_to_of(marker_key: str) -> Optional[float]:
    """Up to when every spike was looked at by the backfill marked ``marker_key``, or None: never
    (or by a version that kept no time)."""
    try:
        marker = LedgerItem.get(marker_key, consistent_read=True)
    except LedgerItem.DoesNotExist:
        return None
    return (marker.detail or {}).get("checked_to") if marker.state == DONE else None


def _missing(checked_to: Optional[float]) -> List[Spike]:
    old_form = Spike.owner_project.does_not_exist() & Spike.public_id.exists()
    attributes = ["spike_id", "owner_id", "project"]
    if checked_to is None:
        return list(Spike.scan(old_form, attributes_to_get=attributes))
    since = clock.iso_millis_at(checked_to - RECHECK_MARGIN_SECONDS)
    return list(Spike.feed_index.query(FEED, Spike.sort_key > since, filter_condition=old_form,
                                       attributes_to_get=attributes, page_size=FILTERED_PAGE))


def _give_owner_project(spike: Spike) -> int:
    same_owner = Spike.owner_id == spike.owner_id if spike.owner_id else Spike.owner_id.does_not_exist()
    return int(update_if(spike, [Spike.owner_project.set(owner_project(spike.owner_id, spike.partition))],
                         Spike.spike_id.exists() & same_owner))
