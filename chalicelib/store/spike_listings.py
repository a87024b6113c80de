"""Listings of the spikes table: a scope's partition of one index, newest first, as rows.

A page's cursor holds the ``sort_key`` of where it ended (``open_spikes.resumed`` renames it
for the sparse indexes), signed and bound to its scope.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from chalicelib.errors import InvalidCursor
from chalicelib.store import cursors, open_spikes, rows, spike_filters
from chalicelib.store.models import Spike
from chalicelib.store.spike_filters import Filters
from chalicelib.store.spikes import Scope


def _index(scope: Scope):
    """The index of the scope's partition (an owner's open spikes: ``open_spikes.reading``)."""
    return {"project": Spike.partition_index, "owner": Spike.owner_index, "feed": Spike.feed_index}[scope.index]


def _hash_attribute(scope: Scope) -> str:
    """The stored name of the index's hash key, as DynamoDB's LastEvaluatedKey spells it."""
    return {"project": Spike.partition, "owner": Spike.owner_id, "feed": Spike.feed}[scope.index].attr_name


def page(scope: Scope, filters: Filters, limit: int, cursor: Optional[str], secret: str,
         keep_reading: Optional[Callable[[], bool]] = None,
         read_limit: Optional[rows.ReadLimit] = None) -> Tuple[List[rows.Row], Optional[str]]:
    """Up to ``limit`` spikes, newest first, after ``cursor``; and the cursor of the next page
    (signed with ``secret`` and bound to the scope, so it cannot be moved to another one).
    ``keep_reading`` is asked before each read after the first: False ends the page where the
    reads ended, with fewer items (none, when a filter matched nothing so far) and a cursor that
    continues from there, so a filter matching little in a large partition answers in time.
    ``read_limit`` ends it the same way once the reads evaluated that much (``rows.ReadLimit``)."""
    start = cursors.decode(secret, scope.cursor_scope, cursor)
    if start is not None and start.get(_hash_attribute(scope)) != scope.partition:
        raise InvalidCursor()
    stopped_at: Dict[str, str] = {}

    def read(index, range_key: str) -> List[rows.Row]:
        # Rows, not models: building a model per item cost more than the query (store/rows.py). The
        # first read takes the item past the page too (a page of 1,000 read 1,001 in two Queries).
        last_key = {name: {"S": value} for name, value in open_spikes.resumed(range_key, start).items()} or None
        found, ended = rows.query_index(Spike, index, scope.partition, limit=limit + 1, start_key=last_key,
                                        filter_condition=spike_filters.condition(filters),
                                        page_size=max(limit + 1, 50), keep_reading=keep_reading,
                                        read_limit=read_limit)
        stopped_at.clear()
        if ended is not None and len(found) <= limit:  # reads were stopped before the page filled
            stopped_at.update(spike_id=ended[Spike.spike_id.attr_name]["S"], sort_key=ended[range_key]["S"])
        return found
    results = open_spikes.reading(scope.index, filters, _index(scope), read)
    items = results[:limit]
    if len(results) > limit:
        return items, cursor_after(scope, items[-1], secret)
    if not stopped_at:
        return items, None
    return items, cursors.encode(secret, scope.cursor_scope, {**stopped_at, _hash_attribute(scope): scope.partition})


def cursor_after(scope: Scope, row: rows.Row, secret: str) -> str:
    """The cursor of a page of ``page``'s that ends at ``row`` (one it listed): a page cut
    shorter after it was read continues from there, without reading it again."""
    stopped_at = {"spike_id": row.spike_id, "sort_key": row.sort_key, _hash_attribute(scope): scope.partition}
    return cursors.encode(secret, scope.cursor_scope, stopped_at)


def newest(scope: Scope, filters: Filters, limit: int) -> List[rows.Row]:
    """The first ``limit`` spikes a listing shows, newest first, without a cursor."""
    def read(index, _: str) -> List[rows.Row]:
        return rows.query_index(Spike, index, scope.partition, limit=limit, filter_condition=spike_filters.condition(
            filters), page_size=min(1000, max(limit, 50)))[0]
    return open_spikes.reading(scope.index, filters, _index(scope), read)[:limit]


def iterate(scope: Scope, filters: Filters, before_read: Optional[Callable[[], None]] = None,
            position: Optional[Dict[str, Any]] = None, read_limit: Optional[rows.ReadLimit] = None,
            spent: Optional[Dict[str, int]] = None) -> Iterator[rows.Row]:
    """Every matching spike, newest first, as rows (exports); ``position``, ``read_limit`` (what all
    the reads together may evaluate: ``rows.ReadsSpent`` past it) and ``spent``: rows.iterate_index's."""
    spent = {} if spent is None else spent  # one count for both indexes' reads

    def read(index, range_key: str) -> Iterator[rows.Row]:
        if position is not None and position.get("after"):
            position["after"] = open_spikes.resumed(range_key, position["after"])
        return rows.iterate_index(Spike, index, scope.partition, before_read=before_read,
                                  filter_condition=spike_filters.condition(filters), position=position,
                                  read_limit=read_limit, spent=spent)
    yield from open_spikes.iterating(scope.index, filters, _index(scope), read)


def key_of(scope: Scope, filters: Filters, row: rows.Row) -> Dict[str, str]:
    """Where ``iterate`` continues after ``row``, read by either index (``open_spikes.resumed``)."""
    return {Spike.spike_id.attr_name: row.spike_id, _hash_attribute(scope): scope.partition,
            Spike.sort_key.attr_name: row.sort_key}
