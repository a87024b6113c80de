"""What a request's DynamoDB calls cost, measured in-process: ``Meter`` wraps PynamoDB's one way
out (``Connection._make_api_call``), counts the calls and asks for the consumed capacity.

DynamoDB Local charges a ``BatchGetItem`` only for the items it finds; DynamoDB charges every
key asked, an absent one too (1 RCU read strongly consistently, 0.5 eventually: its
``BatchGetItem`` reference). So the meter also counts the keys asked and found, and what the
absent ones cost on DynamoDB: ``read_units`` gives both figures (bench/run.py's capacity
section, bench/share_listing.py).
"""
from __future__ import annotations

import collections
from typing import Any, Dict, Optional, Tuple

CAPACITY_OPERATIONS = {"PutItem", "UpdateItem", "DeleteItem", "GetItem", "Query", "Scan", "BatchGetItem",
                       "BatchWriteItem", "TransactWriteItems", "TransactGetItems"}
READ_OPERATIONS = {"GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems"}

# Keys of ``Meter.units`` besides the operations' own units.
INDEXES = "indexes"  # of the write units, the indexes' (``ReturnConsumedCapacity=INDEXES`` only)
KEYS_ASKED = "keys asked"  # by BatchGetItem, those it answered (not its UnprocessedKeys)
ITEMS_FOUND = "items found"
ABSENT_KEYS_RCU = "absent keys RCU"  # what DynamoDB charges for the keys asked and not found


class Meter:
    """Calls by operation and units by operation (DynamoDB Local's figures), with ``INDEXES``,
    ``KEYS_ASKED``, ``ITEMS_FOUND`` and ``ABSENT_KEYS_RCU``, from ``install`` to ``uninstall``."""

    def __init__(self, detail: str = "TOTAL"):
        self.detail = detail  # ReturnConsumedCapacity: TOTAL or INDEXES
        self.calls: collections.Counter = collections.Counter()
        self.units: collections.Counter = collections.Counter()
        self._original: Optional[Any] = None

    def clear(self) -> None:
        self.calls.clear()
        self.units.clear()

    def record(self, operation_name: str, operation_kwargs: Dict[str, Any], response: Any) -> None:
        """Count one answered call's units (its call is counted when it is made)."""
        if not isinstance(response, dict):
            return
        consumed = response.get("ConsumedCapacity")
        for entry in (consumed if isinstance(consumed, list) else [consumed] if consumed else []):
            self.units[operation_name] += float(entry.get("CapacityUnits") or 0)
            if operation_name not in READ_OPERATIONS:  # a Query of an index reads it: read units
                self.units[INDEXES] += sum(float(index.get("CapacityUnits") or 0)
                                           for index in (entry.get("GlobalSecondaryIndexes") or {}).values())
        if operation_name == "BatchGetItem":
            found, unprocessed = response.get("Responses") or {}, response.get("UnprocessedKeys") or {}
            for table, asked in operation_kwargs["RequestItems"].items():
                keys = len(asked["Keys"]) - len((unprocessed.get(table) or {}).get("Keys") or ())
                items = len(found.get(table) or ())
                self.units[KEYS_ASKED] += keys
                self.units[ITEMS_FOUND] += items
                self.units[ABSENT_KEYS_RCU] += (keys - items) * (1.0 if asked.get("ConsistentRead") else 0.5)

    def install(self) -> None:
        from pynamodb.connection.base import Connection
        original = self._original = self._original or Connection._make_api_call

        def measuring(connection, operation_name, operation_kwargs):
            self.calls[operation_name] += 1
            if operation_name in CAPACITY_OPERATIONS:
                operation_kwargs = {**operation_kwargs, "ReturnConsumedCapacity": self.detail}
            response = original(connection, operation_name, operation_kwargs)
            self.record(operation_name, operation_kwargs, response)
            return response
        Connection._make_api_call = measuring

    def uninstall(self) -> None:
        from pynamodb.connection.base import Connection
        if self._original is not None:
            Connection._make_api_call = self._original


def read_units(units: Dict[str, float]) -> Tuple[float, float]:
    """The read units of ``Meter.units`` (or a sum of them): DynamoDB Local's, and DynamoDB's
    (those and the absent keys')."""
    local = sum(n for op, n in units.items() if op in READ_OPERATIONS)
    return local, local + units.get(ABSENT_KEYS_RCU, 0.0)


def batch_get_figures(units: Dict[str, float]) -> str:
    return f"BatchGetItem keys asked {int(units.get(KEYS_ASKED, 0))}, found {int(units.get(ITEMS_FOUND, 0))}"


def write_units(units: Dict[str, float]) -> float:
    return sum(n for op, n in units.items() if op in CAPACITY_OPERATIONS and op not in READ_OPERATIONS)
