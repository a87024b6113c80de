"""The stage's tables on a new in-process moto, copied rather than created call by call.

``create_schema`` makes eight tables through ~50 emulated calls (exists, create, wait, TTL), about
a tenth of a second that every test using ``aws``/``client`` paid before it started. The tables it
leaves on an empty moto are the same each time for the same models and settings, so the first
test of a process builds them for real and keeps a deep copy of moto's table objects; later tests
on an empty moto get a copy of that copy (~1 ms per table). Items are never copied: the
migrations' markers (``upgrade_items``) are still written by each test at its own time.
"""
from __future__ import annotations

import copy
import json
from typing import Any, Dict, Tuple

from chalicelib.settings import Settings
from chalicelib.store import setup

_built: Dict[Tuple[str, ...], Dict[str, Any]] = {}


def _schema_key(settings: Settings) -> Tuple[str, ...]:
    """Everything ``create_schema`` reads: each model's table name and schema, and which have TTL."""
    from chalicelib.store.models import ALL_MODELS
    return (settings.region, json.dumps(
        [[model.Meta.table_name, model._get_schema(), model in setup.MODELS_WITH_TTL] for model in ALL_MODELS],
        sort_keys=True, default=str), setup.TTL_ATTRIBUTE)


def _in_process_backend(settings: Settings) -> Any:
    """moto's DynamoDB backend the client reaches, or None when it talks to an endpoint."""
    if settings.dynamodb_endpoint_url or settings.aws_endpoint_url:
        return None
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends
    return dynamodb_backends[DEFAULT_ACCOUNT_ID][settings.region]


def create_schema(settings: Settings, dynamodb_client: Any) -> None:
    """``setup.create_schema`` on the client's moto, from the kept copy when there is one."""
    backend = _in_process_backend(settings)
    if backend is None or backend.tables:  # an endpoint, or tables already there: the real thing
        setup.create_schema(settings, dynamodb_client)
        return
    setup.configure_models(settings)
    key = _schema_key(settings)
    if key not in _built:
        setup.create_schema(settings, dynamodb_client)
        if any(table.items for table in backend.tables.values()):  # a copy is of empty tables only
            return
        _built[key] = copy.deepcopy(backend.tables)
        return
    backend.tables = copy.deepcopy(_built[key])
