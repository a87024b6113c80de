"""Section 6 of `make bench`: what DynamoDB Local itself charges for a post, against one GetItem.

A warm post's DynamoDB calls are captured from the in-process app (one post to a Pro share),
then replayed straight at the engine with the app's own botocore client, on DynamoDB Local
configured as `make dev` and the bench server run it (persisted, without fsync, the same JVM
options), next to:

- one ``GetItem`` (what the bare route of section 1 does);
- the post the issue asks for at its floor: the rate-limit ``UpdateItem`` and one transaction
  holding only the spike, the share's period counter, its total and the owner's usage (no
  condition checks);
- an ``UpdateItem`` and a plain ``PutItem`` (no transaction: what the peer's post does, one
  INSERT and one UPDATE).

From section 1's bare route (one connection, same run), the best ratio a post could reach if
the app spent nothing beyond what the bare route spends: the bare route's time per request with
its ``GetItem`` replaced by the post's calls. When that bound is under a target, no change to
the app can meet the target on this engine.
"""
from __future__ import annotations

import copy
import json
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Callable, Dict, List, Optional

ROUNDS = 300


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _timed(engine_pid: int, cases: Dict[str, Callable[[], None]], rounds: int) -> Dict[str, dict]:
    """Every case warmed first (the JVM compiles each shape of call), then measured in blocks
    taken in turn, so a noisy moment of the machine falls on all of them alike."""
    block = 20
    for _ in range(max(2, rounds // block)):
        for calls in cases.values():
            for _ in range(block):
                calls()
    samples: Dict[str, List[float]] = {label: [] for label in cases}
    cpu: Dict[str, float] = {label: 0.0 for label in cases}
    for _ in range(max(1, rounds // block)):
        for label, calls in cases.items():
            cpu_before = _cpu_seconds(engine_pid)
            for _ in range(block):
                start = time.perf_counter()
                calls()
                samples[label].append((time.perf_counter() - start) * 1000)
            cpu[label] += _cpu_seconds(engine_pid) - cpu_before
    return {label: {"mean_ms": round(statistics.fmean(times), 2), "p50_ms": round(statistics.median(times), 2),
                    "engine_cpu_ms": round(cpu[label] * 1000 / len(times), 2)} for label, times in samples.items()}


def _capture_warm_post(app, share_key: str, spike: dict) -> List[tuple]:
    """The DynamoDB calls of one warm post, as the app made them."""
    from chalice.test import Client
    from pynamodb.connection.base import Connection

    captured: List[tuple] = []
    original = Connection._make_api_call

    def capturing(self, operation_name, operation_kwargs):
        captured.append((operation_name, copy.deepcopy(operation_kwargs)))
        return original(self, operation_name, operation_kwargs)

    body = json.dumps({**spike, "projectKey": share_key})
    with Client(app, stage_name="test") as client:
        for _ in range(2):
            captured.clear()
            Connection._make_api_call = capturing
            try:
                response = client.http.request("POST", "/spikes", headers={"Content-Type": "application/json"},
                                               body=body)
            finally:
                Connection._make_api_call = original
            if response.status_code != 201:
                raise RuntimeError(f"the captured post answered {response.status_code}: {response.body[:300]!r}")
    return captured


def engine_floor_section(figures: dict, spike: dict, rounds: int = ROUNDS) -> None:
    from moto import mock_aws

    from chalicelib import deps
    from chalicelib.store.setup import create_bucket, create_tables
    from tests.factories import make_share
    from tools.dynamodb_local import DynamoDBLocal

    rounds = max(20, rounds)
    print(f"\n6. The engine's floor: a warm post's DynamoDB calls replayed at DynamoDB Local ({rounds} rounds each"
          " after as many to warm up, in turns; persisted and without fsync as `make dev` runs it; wall time per"
          " round, engine CPU per round):", flush=True)
    out: Dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="spikes-floor-") as tmp, mock_aws():
        engine = DynamoDBLocal(db_path=Path(tmp) / "dynamodb-local").start()
        saved = {key: os.environ.get(key)
                 for key in ("SPIKES_DYNAMODB_ENDPOINT_URL", "SPIKES_TABLE_PREFIX", "SPIKES_LOG_LEVEL")}
        try:
            os.environ.update(SPIKES_DYNAMODB_ENDPOINT_URL=engine.endpoint, SPIKES_LOG_LEVEL="WARNING",
                              SPIKES_TABLE_PREFIX=f"f{uuid.uuid4().hex[:8]}-")
            deps.reset()
            settings = deps.settings()
            create_tables(settings, deps.dynamodb_client())
            create_bucket(settings, deps.s3_client())
            share = make_share("floor-owner@example.com", "floor", tier="pro")
            from app import app
            captured = _capture_warm_post(app, share.share_id, spike)
            out = _replay(deps.dynamodb_client(), engine.process.pid, captured, rounds)
        finally:
            deps.reset()
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            engine.stop()
    for label, result in out.items():
        print(f"  {label:<58} {result['mean_ms']:6.2f} ms (p50 {result['p50_ms']:.2f})"
              f"  engine CPU {result['engine_cpu_ms']:.2f} ms", flush=True)
    _print_bound(figures, out)
    figures["engine_floor"] = out


def _replay(dynamodb, engine_pid: int, captured: List[tuple], rounds: int) -> Dict[str, dict]:
    rate_limit = next(kwargs for operation, kwargs in captured if operation == "UpdateItem")
    transaction = next(kwargs for operation, kwargs in captured if operation == "TransactWriteItems")
    spike_put = next(item["Put"] for item in transaction["TransactItems"] if "Put" in item)
    counters = [item for item in transaction["TransactItems"] if "Update" in item]
    checks = [item for item in transaction["TransactItems"] if "ConditionCheck" in item]

    def new_spike() -> dict:
        item = dict(spike_put["Item"])
        item["spike_id"] = {"S": uuid.uuid4().hex}
        return item

    def update(kwargs: dict) -> None:
        dynamodb.update_item(**{k: v for k, v in kwargs.items() if k != "ReturnConsumedCapacity"})

    def as_made() -> None:
        update(rate_limit)
        items = copy.deepcopy(transaction["TransactItems"])
        next(item for item in items if "Put" in item)["Put"]["Item"] = new_spike()
        dynamodb.transact_write_items(TransactItems=items)

    def issue_floor() -> None:
        update(rate_limit)
        dynamodb.transact_write_items(TransactItems=[
            {"Put": {**{k: v for k, v in spike_put.items() if k != "Item"}, "Item": new_spike()}}, *counters])

    def without_transaction() -> None:
        update(rate_limit)
        dynamodb.put_item(TableName=spike_put["TableName"], Item=new_spike())

    def get_item() -> None:
        dynamodb.get_item(TableName=spike_put["TableName"], Key={"spike_id": spike_put["Item"]["spike_id"]})

    dynamodb.put_item(TableName=spike_put["TableName"], Item=spike_put["Item"])  # what get_item reads
    return _timed(engine_pid, {
        "GetItem (the bare route's call)": get_item,
        f"post as made: UpdateItem + transaction of {len(transaction['TransactItems'])} items"
        f" ({len(checks)} checks)": as_made,
        f"issue's floor: UpdateItem + transaction of {1 + len(counters)} (spike, counters)": issue_floor,
        "no transaction: UpdateItem + PutItem (the peer's shape)": without_transaction,
    }, rounds)


def _print_bound(figures: dict, out: Dict[str, dict]) -> None:
    rows = (figures.get("throughput") or {})
    bare = next((row for label, row in rows.items() if label.startswith("GET /_bench/bare") and label.endswith("@1")),
                None)
    if bare is None:
        print("  (run with section 1 for the best ratio these calls allow)", flush=True)
        return
    bare_ms = 1000.0 / bare["rps"]
    get_item = next(iter(out.values()))["mean_ms"]
    print(f"  Best ratio to the bare route ({bare_ms:.2f} ms per request at one connection in section 1) if the"
          " app spent nothing beyond what the bare route spends:", flush=True)
    bounds: Dict[str, Optional[float]] = {}
    for label, result in list(out.items())[1:]:
        bound = bare_ms / max(bare_ms - get_item + result["mean_ms"], 1e-6)
        bounds[label] = round(bound, 2)
        print(f"    {label:<56} at most {bound:.2f}x", flush=True)
    figures["engine_floor_bounds"] = bounds
