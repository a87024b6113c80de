"""The stage's tables and bucket on a new in-process moto, copied rather than created call by call.

``create_schema`` makes eight tables through ~50 emulated calls (exists, create, wait, TTL) and
``create_bucket`` four more, about a tenth of a second that every test using ``aws``/``client``
paid before it started. What they leave on an empty moto is the same each time for the same
models and settings, so the first test of a process builds it for real and keeps a deep copy of
moto's objects; later tests on an empty moto get a copy of that copy, with its creation time now.
``upgrade_items`` on those empty tables writes the migrations' markers, which carry the moment
it ran: it is run twice at first, at two moments far apart, and if the items differ only by
that moment they are written again for each later test with its own moment in their place;
otherwise it runs for real each time. An endpoint (DynamoDB Local, a moto server) or a moto that
already has tables or buckets gets the real thing.
"""
from __future__ import annotations

import copy
import datetime
import json
from typing import Any, Dict, List, Optional, Tuple

from chalicelib import clock
from chalicelib.settings import Settings
from chalicelib.store import setup

_tables: Dict[Tuple[str, ...], Dict[str, Any]] = {}
_buckets: Dict[Tuple[str, str], Any] = {}
_upgrades: Dict[Tuple[str, ...], Optional[List[Tuple[str, str]]]] = {}
# Two moments far apart (2001, 2017) with a fraction: a time kept in any other form than the
# epoch itself differs between the two runs, and the items are then not replayed.
_PROBE_MOMENTS = (1000000123.25, 1500000456.5)
_MOMENT = "<the moment upgrade_items ran>"


def _schema_key(settings: Settings) -> Tuple[str, ...]:
    """Everything ``create_schema`` reads: each model's table name and schema, and which have TTL."""
    from chalicelib.store.models import ALL_MODELS
    return (settings.region, json.dumps(
        [[model.Meta.table_name, model._get_schema(), model in setup.MODELS_WITH_TTL] for model in ALL_MODELS],
        sort_keys=True, default=str), setup.TTL_ATTRIBUTE)


def create_schema(settings: Settings, dynamodb_client: Any) -> None:
    """``setup.create_schema`` on the client's moto, from the kept copy when there is one."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.core.utils import utcnow
    from moto.dynamodb.models import dynamodb_backends
    endpoint = settings.dynamodb_endpoint_url or settings.aws_endpoint_url
    backend = None if endpoint else dynamodb_backends[DEFAULT_ACCOUNT_ID][settings.region]
    if backend is None or backend.tables:
        setup.create_schema(settings, dynamodb_client)
        return
    setup.configure_models(settings)
    key = _schema_key(settings)
    if key not in _tables:
        setup.create_schema(settings, dynamodb_client)
        if not any(table.items for table in backend.tables.values()):  # a copy is of empty tables only
            _tables[key] = copy.deepcopy(backend.tables)
        return
    tables = copy.deepcopy(_tables[key])
    for table in tables.values():
        table.created_at = utcnow()
    backend.tables = tables


def create_bucket(settings: Settings, s3_client: Any) -> None:
    """``setup.create_bucket`` on the client's moto, from the kept copy when there is one."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends
    from moto.utilities.utils import get_partition
    backend = None if settings.aws_endpoint_url else s3_backends[DEFAULT_ACCOUNT_ID][get_partition(settings.region)]
    if backend is None or backend.buckets or settings.bucket_name in s3_backends.bucket_accounts:
        setup.create_bucket(settings, s3_client)
        return
    key = (settings.region, settings.bucket_name)
    if key not in _buckets:
        setup.create_bucket(settings, s3_client)
        made: Optional[Any] = backend.buckets.get(settings.bucket_name)
        if made is not None and list(backend.buckets) == [settings.bucket_name] and not made.keys:
            _buckets[key] = copy.deepcopy(made)
        return
    bucket = copy.deepcopy(_buckets[key])
    bucket.creation_date = datetime.datetime.now(tz=datetime.timezone.utc)
    backend.buckets[bucket.name] = bucket
    s3_backends.bucket_accounts[bucket.name] = (bucket.partition, bucket.account_id)


def upgrade_items(settings: Settings) -> None:
    """``setup.upgrade_items`` on the tables just copied in: its items replayed at this moment."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends
    backend = None
    if not (settings.dynamodb_endpoint_url or settings.aws_endpoint_url):
        backend = dynamodb_backends[DEFAULT_ACCOUNT_ID][settings.region]
    schema = _schema_key(settings)
    key = schema + (str(settings.webhook_max_event_age_seconds),)
    if backend is None or schema not in _tables or not backend.tables or any(t.items for t in backend.tables.values()):
        setup.upgrade_items(settings)
        return
    if key not in _upgrades:
        _upgrades[key] = _items_written(settings, backend)
    if _upgrades[key] is None:
        setup.upgrade_items(settings)
        return
    moment = repr(clock.epoch())
    for table_name, item in _upgrades[key]:
        backend.get_table(table_name).put_item(json.loads(item.replace(_MOMENT, moment)))


def _items_written(settings: Settings, backend: Any) -> Optional[List[Tuple[str, str]]]:
    """What ``upgrade_items`` writes on empty tables, with ``_MOMENT`` for the time it ran, or
    None when the two probe runs differ by more than that moment. Leaves the tables empty."""
    empty, runs, previous_source = backend.tables, [], clock._source  # clock.use(None) would drop a test's own
    try:
        for probe in _PROBE_MOMENTS:
            backend.tables = copy.deepcopy(empty)
            clock.use(lambda probe=probe: datetime.datetime.fromtimestamp(probe, datetime.timezone.utc))
            setup.upgrade_items(settings)
            runs.append(sorted((name, json.dumps(item.to_json()["Attributes"], sort_keys=True).replace(
                repr(probe), _MOMENT)) for name, table in backend.tables.items() for item in table.all_items()))
    finally:
        clock.use(previous_source)
        backend.tables = empty
    return runs[0] if runs[0] == runs[1] else None
