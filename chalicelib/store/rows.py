"""Index pages read without building PynamoDB models, and without botocore parsing each item.

A listing turns up to a thousand items into JSON. Two costs dominated it, both more than the
query itself: botocore walks every attribute value of the response through its shape model
(``{"S": "..."}`` in, the same ``{"S": "..."}`` out), and building a model per item (defaults,
attribute containers). Here the response's ``Items`` are taken from the JSON as DynamoDB sent
it (the same dicts botocore would return: our tables hold no binary attributes, and a page that
does is parsed the normal way), and each stored attribute is deserialized by its model
attribute and nothing else happens. A ``Row`` reads like the model (``row.comments``; None for
an attribute the item does not have), so the service's wire format has one definition for both.
"""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, Type

from pynamodb.attributes import UnicodeAttribute
from pynamodb.indexes import GlobalSecondaryIndex
from pynamodb.models import Model


class Row:
    __slots__ = ("_values",)

    def __init__(self, values: Dict[str, Any]):
        self._values = values

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            return None

    def get(self, name: str) -> Any:
        """The attribute's value, None when the item does not have it (as ``getattr``, faster)."""
        return self._values.get(name)


def _attributes(model: Type[Model]) -> Dict[str, Tuple[str, Any]]:
    """Stored name (``attr_name``) -> the model's name and how to read the stored value (None:
    a string, kept as it is, no call per value). ``Spike.partition`` is stored as "project"."""
    return {attribute.attr_name: (name, None if type(attribute) is UnicodeAttribute else attribute.deserialize)
            for name, attribute in model.get_attributes().items()}


def _row(attributes: Dict[str, Tuple[str, Any]], item: Dict[str, Dict[str, Any]]) -> Row:
    values = {}
    for stored_name, typed in item.items():
        known = attributes.get(stored_name)
        if known is None:
            continue  # not an attribute of the model (written by something newer): ignored, as models do
        name, deserialize = known
        for tag, value in typed.items():
            if tag == "NULL":
                values[name] = None
            else:
                values[name] = value if deserialize is None else deserialize(value)
    return Row(values)


# --- Items straight from the response body ----------------------------------------------------

_raw = threading.local()
_RAW_ITEMS_HOOK = "spikes-raw-query-items"
# Types botocore decodes (base64 to bytes): a page holding one is left to botocore. In the
# body's JSON these tokens can only be type keys (a string's own quotes are escaped).
_DECODED_TYPES = ('"B":', '"BS":')


def _take_raw_items(response_dict: Dict[str, Any], customized_response_dict: Dict[str, Any], **_: Any) -> None:
    """botocore's before-parse hook: on a Query this thread asked for raw, hand the Items over
    as sent and let botocore parse only the rest (count, LastEvaluatedKey)."""
    if not getattr(_raw, "wanted", False) or response_dict.get("status_code") != 200:
        return
    body = response_dict.get("body")
    if not body:
        return
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    if any(token in text for token in _DECODED_TYPES):
        return
    parsed = json.loads(text)
    items = parsed.pop("Items", None)
    if items is None:
        return
    customized_response_dict["Items"] = items
    response_dict["body"] = json.dumps(parsed).encode("utf-8")


def _query_raw(connection, hash_key: str, **kwargs: Any) -> Dict[str, Any]:
    client = connection.connection.client
    client.meta.events.register("before-parse.dynamodb.Query", _take_raw_items, unique_id=_RAW_ITEMS_HOOK)
    _raw.wanted = True
    try:
        return connection.query(hash_key, **kwargs)
    finally:
        _raw.wanted = False


@dataclass(frozen=True)
class ReadLimit:
    """The most one ``query_index`` reads, its first read always made whole: ``items`` (DynamoDB's
    ScannedCount, what a Query is billed for) and ``queries`` (each reads at most 1 MB)."""
    items: int
    queries: int

    def allows(self, read: int, queries: int) -> bool:
        return read < self.items and queries < self.queries


class ReadsSpent(Exception):
    """``iterate_index`` would read past its ``ReadLimit`` (``items``): the reader says what that means."""

    def __init__(self, items: int):
        super().__init__(items)
        self.items = items


def query_index(model: Type[Model], index: GlobalSecondaryIndex, hash_key: str, *, limit: Optional[int],
                filter_condition=None, start_key: Optional[Dict[str, Any]] = None, newest_first: bool = True,
                page_size: int = 100, before_read: Optional[Callable[[], None]] = None,
                position: Optional[Dict[str, Any]] = None, keep_reading: Optional[Callable[[], bool]] = None,
                read_limit: Optional[ReadLimit] = None,
                spent: Optional[Dict[str, int]] = None,
                projection: Optional[List[str]] = None) -> Tuple[List[Row], Optional[Dict[str, Any]]]:
    """Up to ``limit`` matching rows of one index partition: a first read of ``page_size``, then
    reads sized by the filter's match rate until enough matched; returns them and where the
    last read page ended (``limit`` None: rows until ``read_limit`` is spent, which then bounds
    them, each row being an item read). ``before_read`` is called before each read (it may raise);
    ``keep_reading`` before each read after the first (False: stop there, fewer rows), and
    ``read_limit`` too (spent: stop there; the reads after the first are cut to what it leaves);
    ``position["scanned"]``: where the reads that matched nothing yet ended (``iterate_index``);
    ``spent``: its ``items`` and ``queries`` add this call's reads (``iterate_index``'s limit);
    ``projection``: the only attributes read into the function (None: all; keep the keys)."""
    connection = model._get_connection()
    attributes = _attributes(model)
    rows: List[Row] = []
    last_key = start_key
    read_size, read, queries = page_size, 0, 0
    while limit is None or len(rows) < limit:
        if before_read is not None:
            before_read()
        response = _query_raw(connection, hash_key, index_name=index.Meta.index_name,
                              filter_condition=filter_condition, exclusive_start_key=last_key,
                              scan_index_forward=not newest_first, limit=read_size, attributes_to_get=projection)
        items = response.get("Items", [])
        for item in items:
            rows.append(_row(attributes, item))
        read, queries = read + response.get("ScannedCount", len(items)), queries + 1
        if spent is not None:
            spent["items"] = spent.get("items", 0) + response.get("ScannedCount", len(items))
            spent["queries"] = spent.get("queries", 0) + 1
        last_key = response.get("LastEvaluatedKey")
        if position is not None and not rows:
            position["scanned"] = _plain_key(last_key)
        if not last_key or (keep_reading is not None and not keep_reading()) \
                or (read_limit is not None and not read_limit.allows(read, queries)):
            break
        read_size = MAX_READ_SIZE if limit is None else _next_read_size(limit - len(rows), read, len(rows))
        if read_limit is not None:
            read_size = min(read_size, read_limit.items - read)
    return rows, last_key


def _plain_key(key: Optional[Dict[str, Any]]) -> Optional[Dict[str, str]]:
    return {name: value["S"] for name, value in key.items()} if key else None


def iterate_index(model: Type[Model], index: GlobalSecondaryIndex, hash_key: str, *, filter_condition=None,
                  read_size: int = 1000, before_read: Optional[Callable[[], None]] = None,
                  position: Optional[Dict[str, Any]] = None, read_limit: Optional[ReadLimit] = None,
                  spent: Optional[Dict[str, int]] = None) -> Iterator[Row]:
    """Every matching row of one index partition, newest first, read ``read_size`` at a time:
    an export of 30,000 spikes took 15 s as models, most of it building them. ``before_read``:
    called before each Query, also those a filter matching little makes between two rows.
    ``position``: its ``after``, an item's key (stored attribute names: strings), where reading
    starts; its ``scanned`` is kept where every row yielded so far and every read that matched
    nothing since ended, so a reader stopped between two reads may continue from there.
    ``read_limit``: ReadsSpent before a Query once ``spent`` (its reads so far, kept by the caller
    across calls, counted here) reached it, each Query cut to what it leaves; a partition of
    exactly that much is read whole (``_nothing_follows``)."""
    after = (position or {}).get("after")
    start_key = {name: {"S": value} for name, value in after.items()} if after else None
    spent = {} if spent is None else spent

    def read_allowed() -> None:
        if read_limit is not None and not read_limit.allows(spent.get("items", 0), spent.get("queries", 0)):
            raise ReadsSpent(read_limit.items)
        if before_read is not None:
            before_read()
    while True:
        left = None if read_limit is None else ReadLimit(read_limit.items - spent.get("items", 0),
                                                         read_limit.queries - spent.get("queries", 0))
        if left is not None and not left.allows(0, 0):
            if _nothing_follows(model, index, hash_key, filter_condition, start_key, before_read, spent):
                return
            raise ReadsSpent(read_limit.items)
        size = read_size if left is None else min(read_size, left.items)
        rows, start_key = query_index(model, index, hash_key, limit=size, filter_condition=filter_condition,
                                      start_key=start_key, page_size=size, before_read=read_allowed,
                                      position=position, read_limit=left, spent=spent)
        if position is not None:
            position["scanned"] = _plain_key(start_key)  # past these rows, once they are yielded
        yield from rows
        if start_key is None:
            return


def _nothing_follows(model: Type[Model], index: GlobalSecondaryIndex, hash_key: str, filter_condition,
                     start_key: Optional[Dict[str, Any]], before_read: Optional[Callable[[], None]],
                     spent: Dict[str, int]) -> bool:
    """Whether nothing follows ``start_key``, where reads that spent their ``ReadLimit`` exactly
    ended: DynamoDB answers a LastEvaluatedKey whenever a Query's Limit is reached, also at the
    partition's last item, so a partition of exactly the limit was refused. One read of one item
    tells (counted in ``spent``); one found, matching or not, is past the limit."""
    before = spent.get("items", 0)
    _, last_key = query_index(model, index, hash_key, limit=1, filter_condition=filter_condition,
                              start_key=start_key, page_size=1, before_read=before_read, read_limit=ReadLimit(1, 1),
                              spent=spent)
    return spent.get("items", 0) == before and last_key is None


MAX_READ_SIZE = 1000  # items one Query reads at most here (as the listings' largest page)


def _next_read_size(wanted: int, read: int, matched: int) -> int:
    """How many items the next read evaluates: about what the rest of the page needs at the
    filter's match rate so far (never less than that rest), and the most when nothing matched.
    Reads kept at the page's size made a filter that matches little cost one round trip per
    page's worth of the whole partition (600 for 30,000 spikes at the dashboard's 20), and a
    full page of 1,000 read 1,000 more to find the one item that says more follow."""
    if matched == 0:
        return MAX_READ_SIZE
    return min(MAX_READ_SIZE, wanted * read // matched + 1)
