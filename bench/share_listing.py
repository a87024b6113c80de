"""What `GET /shares` costs an account of thousands of shares: DynamoDB calls, consumed capacity
(ReturnConsumedCapacity=TOTAL, as DynamoDB Local reports it) and wall time, per answer and for
the whole listing.

In-process (the app under ``chalice.test.Client``, as ``make bench``'s capacity section runs it),
on DynamoDB Local in memory with moto for S3 and SES. For each ``--shares`` count (default 1,000
and 10,000) it stores that many shares of one Pro owner (``--files`` files in each manifest,
default 3; one in ``--counted-every`` shares has received spikes, counted in its total's shards),
written straight to the tables 25 to a BatchWriteItem (10,000 uploads would take minutes), then
lists them the way the clients do: the CLI (no ``limit``: as many as one answer carries, its
``X-Next-Cursor`` followed here to the end) and pages of ``--page`` (default 100), every page to
the end. It checks every share is listed once with its exact total. Prints figures; asserts
nothing beyond that (tests/test_share_listing_cost.py counts the calls per page). Not part of
``make bench``: seeding 10,000 shares takes about a minute.

    nice .venv/bin/python -m bench.share_listing [--shares 1000 10000] [--files 3] [--page 100]
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Dict, List, Optional, Tuple

from bench.capacity import CAPACITY_OPERATIONS, Meter, batch_get_figures, read_units
from bench.run import BENCH_ENV, _bench_token, machine

OWNER = "cap-owner@example.com"  # the address bench.run._bench_token signs in with
MAX_ANSWERS = 2_000  # bounded: no listing here needs more answers than that


def seed(owner_id: str, count: int, files: int, counted_every: int) -> Dict[str, int]:
    """``count`` active shares of ``owner_id``, one a minute from September on, with ``files``
    files in each manifest; one in ``counted_every`` with ``n % 50 + 1`` spikes counted over its
    total's shards. Their totals by share id."""
    from chalicelib.store import spike_counters
    from chalicelib.store import shares as share_store
    from chalicelib.store.models import LedgerItem, Share, User
    start, totals = datetime(2026, 9, 1, tzinfo=timezone.utc), {}
    manifest = {f"assets/page-{n:03d}.html": {"size": 1200 + n, "type": "text/html"} for n in range(files)}
    with Share.batch_write() as batch:
        for n in range(count):
            share_id = f"sh_{n:012d}"
            batch.save(share_store.new(
                share_id, slug=f"bench-{n}", owner_id=owner_id, name=f"Bench share {n}",
                created_at=(start + timedelta(minutes=n)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                status=share_store.ACTIVE, file_count=files, total_bytes=sum(f["size"] for f in manifest.values()),
                files=manifest, owner_tier="pro"))
            totals[share_id] = 0
    with LedgerItem.batch_write() as batch:
        for n, share_id in enumerate(totals):
            if counted_every and n % counted_every == 0:
                totals[share_id] = n % 50 + 1
                for shard in range(min(totals[share_id], spike_counters.COUNTER_SHARDS)):
                    batch.save(LedgerItem(spike_counters.share_total_shard_key(share_id, shard),
                                          count=len(range(shard, totals[share_id], spike_counters.COUNTER_SHARDS))))
    User(owner_id).update(actions=[User.active_shares.set(count)])
    return totals


def list_all(client, auth: dict, page: Optional[int], measure) -> Tuple[List[dict], List[dict]]:
    """Every share, answer after answer; the items and each answer's figures."""
    items, answers, cursor = [], [], None
    while len(answers) < MAX_ANSWERS:
        parts = (f"limit={page}" if page else "", f"cursor={cursor}" if cursor else "")
        query = "&".join(part for part in parts if part)
        figures, response = measure(lambda: client.http.request("GET", "/shares" + (f"?{query}" if query else ""),
                                                                headers=auth))
        assert response.status_code == 200, response.body[:300]
        listed = json.loads(response.body)
        items += listed
        answers.append({**figures, "shares": len(listed), "bytes": len(response.body)})
        cursor = response.headers.get("X-Next-Cursor")
        if not cursor:
            break
    return items, answers


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shares", type=int, nargs="+", default=[1_000, 10_000])
    parser.add_argument("--files", type=int, default=3, help="files in each share's manifest")
    parser.add_argument("--counted-every", type=int, default=4, help="one share in N has received spikes")
    parser.add_argument("--page", type=int, default=100, help="the paged listing's limit")
    args = parser.parse_args(argv)
    os.environ.update({**BENCH_ENV, "SPIKES_STAGE": "test", "SPIKES_LOG_LEVEL": "WARNING",
                       "SPIKES_TOKEN": "bench-admin", "SPIKES_MAIL_MODE": "console",
                       "SPIKES_RATE_LISTINGS_PER_MINUTE": "100000000",
                       "SPIKES_RATE_SHARE_LISTINGS_PER_MINUTE": "100000000"})  # pages of one account
    from chalice.test import Client
    from moto import mock_aws

    from chalicelib import deps
    from chalicelib.services.accounts import user_id_for
    from chalicelib.store.setup import create_bucket, create_tables
    from tests import dynamodb_local
    from tests.factories import make_user

    meter = Meter("TOTAL")

    def read_figures(units: collections.Counter) -> str:
        """DynamoDB Local's units by operation, and the read units it and DynamoDB count
        (bench/capacity.py: DynamoDB charges every key a BatchGetItem asks)."""
        by_operation = {op: round(n, 1) for op, n in sorted(units.items()) if op in CAPACITY_OPERATIONS}
        local, on_dynamodb = read_units(units)
        return (f"units {by_operation}; RCU {local:.1f} (DynamoDB Local), {on_dynamodb:.1f} on DynamoDB;"
                f" counters' {batch_get_figures(units)}")

    def measure(request):
        meter.clear()
        begun = time.perf_counter()
        response = request()
        return ({"ms": (time.perf_counter() - begun) * 1000, "calls": dict(meter.calls), "units": dict(meter.units)},
                response)

    def line(label: str, answers: List[dict]) -> str:
        made, read = collections.Counter(), collections.Counter()
        for answer in answers:
            made.update(answer["calls"])
            read.update(answer["units"])
        return (f"  {label:<28} {len(answers):>4} answers {sum(a['shares'] for a in answers):>6} shares"
                f" {sum(a['ms'] for a in answers):>8.0f} ms  calls {dict(sorted(made.items()))};"
                f" {read_figures(read)}")

    print(f"machine: {machine()}, load average {os.getloadavg()[0]:.1f}", flush=True)
    print(f"GET /shares of one account (in-process, DynamoDB Local in memory; {args.files} files a manifest,"
          f" one share in {args.counted_every} counted):", flush=True)
    with dynamodb_local.running() as endpoint, mock_aws():
        os.environ["SPIKES_DYNAMODB_ENDPOINT_URL"] = endpoint
        for count in args.shares:
            os.environ["SPIKES_TABLE_PREFIX"] = f"l{uuid.uuid4().hex[:8]}-"
            deps.reset()
            create_tables(deps.settings(), deps.dynamodb_client())
            create_bucket(deps.settings(), deps.s3_client())
            make_user(OWNER, "pro")
            started = time.monotonic()
            totals = seed(user_id_for(OWNER), count, args.files, args.counted_every)
            print(f" {count} shares stored in {time.monotonic() - started:.0f} s", flush=True)
            from app import app
            with Client(app, stage_name="test") as client:
                auth = {"Authorization": f"Bearer {_bench_token(client)}"}
                meter.install()
                try:
                    for label, page in (("CLI (no limit), to the end", None), (f"pages of {args.page}", args.page)):
                        items, answers = list_all(client, auth, page, measure)
                        exact = {item["id"]: item["spike_count"] for item in items} == totals and len(items) == count
                        print(line(label, answers) + ("" if exact else "  NOT EXACT"), flush=True)
                        first = answers[0]
                        print(f"  {'  its first answer':<28} {first['shares']:>6} shares {first['bytes']:>9} B"
                              f" {first['ms']:>8.0f} ms  calls {first['calls']};"
                              f" {read_figures(collections.Counter(first['units']))}", flush=True)
                finally:
                    meter.uninstall()
    print(f"load average at the end {os.getloadavg()[0]:.1f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
