"""Index pages read without building PynamoDB models.

A listing turns up to a thousand items into JSON. Building a model per item (defaults,
attribute containers) cost more than the query itself; here each stored attribute is
deserialized by its model attribute and nothing else happens. A ``Row`` reads like the model
(``row.comments``; None for an attribute the item does not have), so the service's wire
format has one definition for both.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple, Type

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


def _row(attributes: Dict[str, Tuple[str, Any]], item: Dict[str, Dict[str, Any]]) -> Row:
    values = {}
    for stored_name, typed in item.items():
        known = attributes.get(stored_name)
        if known is None:
            continue
        name, attribute = known
        ((tag, value),) = typed.items()
        values[name] = None if tag == "NULL" else attribute.deserialize(value)
    return Row(values)


def query_index(model: Type[Model], index: GlobalSecondaryIndex, hash_key: str, *, limit: int,
                filter_condition=None, start_key: Optional[Dict[str, Any]] = None, newest_first: bool = True,
                page_size: int = 100) -> Tuple[List[Row], Optional[Dict[str, Any]]]:
    """Up to ``limit`` matching rows of one index partition, reading pages of ``page_size``
    until enough matched the filter; returns them and where the last read page ended."""
    connection = model._get_connection()
    # By stored name (``attr_name``), to the model's name: ``Spike.partition`` is stored as "project".
    attributes = {attribute.attr_name: (name, attribute) for name, attribute in model.get_attributes().items()}
    rows: List[Row] = []
    last_key = start_key
    while len(rows) < limit:
        response = connection.query(hash_key, index_name=index.Meta.index_name, filter_condition=filter_condition,
                                    exclusive_start_key=last_key, scan_index_forward=not newest_first,
                                    limit=page_size)
        for item in response.get("Items", []):
            rows.append(_row(attributes, item))
        last_key = response.get("LastEvaluatedKey")
        if not last_key:
            break
    return rows, last_key
