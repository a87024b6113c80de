"""tests/moto_stage.py: the tables, bucket and markers a test's moto gets from the kept copies are
what store.setup builds there, and nothing one test wrote reaches the next."""
from __future__ import annotations

import json
from datetime import datetime, timezone

from moto import mock_aws

from chalicelib import clock, deps
from chalicelib.store.models import ALL_MODELS, LedgerItem
from tests import moto_stage
from tests.conftest import _provision
from tests.factories import make_share


def _stage() -> dict:
    """Every table's description (but its creation time), TTL and items, and the bucket's rules."""
    dynamodb, s3, settings = deps.dynamodb_client(), deps.s3_client(), deps.settings()
    tables = {}
    for model in ALL_MODELS:
        name = model.Meta.table_name
        description = dynamodb.describe_table(TableName=name)["Table"]
        description.pop("CreationDateTime")
        items = dynamodb.scan(TableName=name, ConsistentRead=True)["Items"]
        tables[name] = (description, dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"], items)
    bucket = settings.bucket_name
    return {"tables": tables, "objects": s3.list_objects_v2(Bucket=bucket).get("KeyCount"),
            "lifecycle": s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"],
            "public": s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]}


def _provisioned_at(moment: datetime) -> dict:
    clock.use(lambda: moment)
    try:
        with mock_aws():
            _provision()
            stage = _stage()
            make_share("someone@example.com", "left-behind")  # for the next provision to be without
            deps.s3_client().put_object(Bucket=deps.settings().bucket_name, Key="left/behind", Body=b"x")
    finally:
        clock.use(None)
        deps.reset()
    return stage


def test_a_copied_stage_is_the_one_setup_builds_at_that_moment(monkeypatch):
    moment = datetime(2026, 3, 4, 5, 6, 7, 890000, tzinfo=timezone.utc)
    for kept in ("_tables", "_buckets", "_upgrades"):
        monkeypatch.setattr(moto_stage, kept, {})
    built = _provisioned_at(moment)  # nothing kept: store.setup's own calls
    assert moto_stage._tables and moto_stage._buckets and moto_stage._upgrades
    assert all(moto_stage._upgrades.values()), "the markers were not found replayable"
    copied = [_provisioned_at(moment) for _ in range(2)]  # each after one that left a share and a file
    assert copied == [built, built]
    markers = {item["pk"]["S"]: item for item in built["tables"][LedgerItem.Meta.table_name][2]}
    assert json.loads(markers["migration#spike-owner-project"]["detail"]["S"]) == {"checked_to": moment.timestamp()}
    assert not any(items for name, (_, _, items) in built["tables"].items() if name != LedgerItem.Meta.table_name)
    assert built["objects"] == 0


def test_markers_carry_the_moment_of_each_provision():
    first = _provisioned_at(datetime(2026, 1, 1, tzinfo=timezone.utc))
    later = _provisioned_at(datetime(2026, 6, 1, 0, 0, 0, 250000, tzinfo=timezone.utc))
    details = [{item["pk"]["S"]: item.get("detail", {}).get("S") for item in stage["tables"][LedgerItem.Meta.table_name][2]}
               for stage in (first, later)]
    assert details[0]["migration#open-spikes"] == json.dumps({"checked_to": datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp()})
    assert details[1]["migration#open-spikes"] == json.dumps(
        {"checked_to": datetime(2026, 6, 1, 0, 0, 0, 250000, tzinfo=timezone.utc).timestamp()})
