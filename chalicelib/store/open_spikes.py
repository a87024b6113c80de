"""An owner's open feedback, read from a sparse index that holds open spikes only.

An agent resolves feedback as it works, so most of an owner's stored spikes end up resolved and
few stay open, and the MCP server's ``get_spikes`` (``GET /spikes?resolved=false``, the owner's
listing) read the whole ``owner_index`` partition to find those few: a FilterExpression is
applied after the items are read (docs/performance.md, "Read paths at 30,000 spikes").

``open_sort_key`` is the spike's ``sort_key`` while it is open and absent once it is resolved:
set when the spike is stored open, removed by the update or transaction that resolves it, set
again (from ``sort_key`` itself) by the one that reopens it (store/spikes.py). DynamoDB keeps
an item in an index only while it has the index's keys, so ``open_owner_index`` (``owner_id``,
``open_sort_key``) lists an owner's open spikes alone, newest first, as ``owner_index`` does:
a claim that changes a spike's owner moves it there too. ``open_project_index`` (``project``,
``open_sort_key``) does the same for a project partition's ``resolved=false`` listings and
exports: the same attribute, so every write above keeps both.

Spikes stored before the attribute existed get it from ``backfill`` (``make deploy`` and the
local server's start run it, never a request): each one only while still open and without it,
so a spike resolved or reopened meanwhile is never reopened or changed. Until it has marked
itself done in the ledger, which it does only once the index is ACTIVE, listings filter
``owner_index`` as before, and so they do for a while after DynamoDB refused a Query of the
index (``_refused``: built anew after going back to a version without it). The project index
needs no backfill of its own (the attribute is the same), only that one done and the index
built: the same step marks that too (``PROJECT_MARKER``), once the backfill is done and
``open_project_index`` is ACTIVE (``make deploy`` waits for DynamoDB to build it, CloudFormation
does not); until then a project's listings filter ``project_index``. The listing's
``resolved = false`` filter stays on the index's Query: a spike an earlier version resolves
(its last invocations during a deploy) keeps the attribute, and is left out by that filter.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Dict, Iterator, List, Optional, TypeVar

from pynamodb.exceptions import QueryError

from chalicelib import clock
from chalicelib.store import new_indexes, spike_ids
from chalicelib.store.models import LedgerItem, Spike
from chalicelib.store.spike_filters import Filters
from chalicelib.store.transactions import update_if

BACKFILL_MARKER = "migration#open-spikes"
PROJECT_MARKER = "migration#open-project-spikes"
INDEX_NAME = Spike.open_owner_index.Meta.index_name
PROJECT_INDEX_NAME = Spike.open_partition_index.Meta.index_name
BACKFILL_THREADS = 8
BACKFILL_PASSES = 3

# Until when this function reads the owner's partition instead: DynamoDB refused the index.
_refused_until = 0.0
REFUSED_FOR_SECONDS = 60
T = TypeVar("T")


def opened() -> Any:
    """The update action that puts a spike (back) on the index: its key is its own sort_key."""
    return Spike.open_sort_key.set(Spike.sort_key)


def closed() -> Any:
    """The update action that takes a resolved spike off the index."""
    return Spike.open_sort_key.remove()


def serves(scope_index: str, filters: Filters) -> bool:
    """Whether a listing of ``scope_index`` with ``filters`` reads an index of open spikes."""
    return _open_index(scope_index, filters) is not None


def _open_index(scope_index: str, filters: Filters) -> Any:
    """The index of open spikes a listing of ``scope_index`` reads, else None: the owner's once
    the backfill is done, the project's once that is done and its index built (``PROJECT_MARKER``)."""
    if filters.resolved is not False or not backfilled() or clock.epoch() < _refused_until:
        return None
    if scope_index == "owner":
        return Spike.open_owner_index
    return Spike.open_partition_index if scope_index == "project" and project_ready() else None


def reading(scope_index: str, filters: Filters, index: Any, read: Callable[[Any, str], T]) -> T:
    """``read(index, its range key's stored name)``: of the index of open spikes that ``serves``
    the listing, else (or when DynamoDB refused it: ``_refused``) of the listing's own ``index``."""
    open_index = _open_index(scope_index, filters)
    if open_index is not None:
        try:
            return read(open_index, Spike.open_sort_key.attr_name)
        except QueryError as exc:
            if not _refused(exc):
                raise
    return read(index, Spike.sort_key.attr_name)


def resumed(range_key: str, key: Optional[Dict[str, str]]) -> Dict[str, str]:
    """Where a read resumes on the index of ``range_key`` (empty: at the start). A cursor, or a
    background export's ``key_of``, holds the spike's sort key as ``sort_key`` (``open_sort_key``
    in a key kept from before 2026-12-07), so either index continues it: the marker may be
    written, or the index refused, between two pages."""
    renamed = (Spike.sort_key.attr_name, Spike.open_sort_key.attr_name)
    return {(range_key if name in renamed else name): value for name, value in (key or {}).items()}


def iterating(scope_index: str, filters: Filters, index: Any, read: Callable[[Any, str], Iterator[T]]) -> Iterator[T]:
    """``reading`` for an iteration: it falls back when the index's first read is refused."""
    open_index = _open_index(scope_index, filters)
    if open_index is not None:
        items = read(open_index, Spike.open_sort_key.attr_name)
        try:
            first = next(items, None)
        except QueryError as exc:
            if not _refused(exc):
                raise
        else:
            if first is not None:
                yield first
                yield from items
            return
    yield from read(index, Spike.sort_key.attr_name)


def _refused(exc: QueryError) -> bool:
    """Whether DynamoDB refused the Query because it has no such index or is building it (or the
    grant on it is spreading: ``new_indexes.not_ready``): a stack taken back to a version
    without it, and forward again, has it built anew while this code runs and the marker still
    says done. This function then reads the owner's partition (the same answer, slower, as
    before the backfill) for a while, and asks the index again after."""
    global _refused_until
    names = [name for name in (INDEX_NAME, PROJECT_INDEX_NAME) if name in (exc.cause_response_message or "")]
    missing_in_moto = exc.cause_response_code == "ResourceNotFoundException" and names
    if not (missing_in_moto or new_indexes.not_ready(exc, (names or [INDEX_NAME])[0])):
        return False
    _refused_until = clock.epoch() + REFUSED_FOR_SECONDS
    return True


def project_ready() -> bool:
    return spike_ids.marker_done(PROJECT_MARKER)


def backfilled() -> bool:
    return spike_ids.marker_done(BACKFILL_MARKER)


def backfill(whole: bool = False) -> int:
    """Give ``open_sort_key`` to every open spike stored without it; marked done once a whole
    pass found none left and the index is ACTIVE. Idempotent, resumable and safe beside live
    traffic: each update holds only while the spike is still open and still without the
    attribute. Once done, every later deploy and local start looks again at the spikes received
    since the last look (as ``spike_ids.backfill`` does), for those an earlier version stored
    meanwhile; ``whole``: at every spike again. How many spikes it updated."""
    checked_to = None if whole else spike_ids.checked_to_of(BACKFILL_MARKER)
    started = spike_ids.looked_up_to()
    updated = 0
    for _ in range(BACKFILL_PASSES):
        missing = _missing(checked_to)
        if not missing:
            if _index_active():
                LedgerItem(BACKFILL_MARKER, state=spike_ids.DONE, detail={"checked_to": started}).save()
                if not project_ready() and _project_index_active():
                    LedgerItem(PROJECT_MARKER, state=spike_ids.DONE).save()
            return updated
        with ThreadPoolExecutor(max_workers=BACKFILL_THREADS) as pool:
            updated += sum(pool.map(_open, missing))
    return updated  # still changing under us: the next run (deploy or start) finishes it


def _missing(checked_to: Optional[float]) -> List[Spike]:
    old_form = (Spike.resolved == False) & Spike.open_sort_key.does_not_exist()  # noqa: E712
    if checked_to is None:
        return list(Spike.scan(old_form, attributes_to_get=["spike_id"]))
    since = clock.iso_millis_at(checked_to - spike_ids.RECHECK_MARGIN_SECONDS)
    return list(Spike.feed_index.query(spike_ids.FEED, Spike.sort_key > since, filter_condition=old_form,
                                       attributes_to_get=["spike_id"], page_size=spike_ids.FILTERED_PAGE))


def _open(spike: Spike) -> int:
    still_open = Spike.spike_id.exists() & (Spike.resolved == False) & Spike.open_sort_key.does_not_exist()  # noqa: E712
    return int(update_if(spike, [opened()], still_open))


def _index_active() -> bool:
    return _active(INDEX_NAME)


def _project_index_active() -> bool:
    return _active(PROJECT_INDEX_NAME)


def _active(name: str) -> bool:
    """Whether DynamoDB answers Queries of the index with every item: CloudFormation ends an
    update while DynamoDB still builds an index it added (``make deploy`` waits for it), the local
    server adds it at start and DynamoDB Local may take a while (or longer) to build it."""
    indexes = Spike.describe_table().get("GlobalSecondaryIndexes", [])
    return any(index["IndexName"] == name and index.get("IndexStatus", "ACTIVE") == "ACTIVE" for index in indexes)
