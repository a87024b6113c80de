"""What the read paths cost at tens of thousands of spikes: DynamoDB calls, items read, time, memory.

In-process (the app under ``chalice.test.Client``, as ``make bench``'s capacity section runs it),
on DynamoDB Local in memory with moto for S3 and SES. Stores ``--spikes`` (default 30,000) in one
share of an owner with ``--shares`` shares (default 100; five of them hold 200 spikes each),
written the way the store writes them (``store.spikes.new``, 25 to a BatchWriteItem, counted in
the share's total shards; one in 10,000 resolved), then runs each read once for its calls, the
items DynamoDB evaluated (``ScannedCount``) and its wall time, and once more under tracemalloc
for the Python memory it peaked at (moto's copy of a staged export included). Prints figures;
asserts nothing (tests/test_data_growth.py asserts what is read). Not part of ``make bench``:
the seeding alone takes a minute or two.

    nice .venv/bin/python -m bench.read_paths [--spikes 30000] [--shares 100] [--open-every N]
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import random
import time
import tracemalloc
import uuid
from datetime import datetime, timedelta, timezone

from bench.run import BENCH_ENV, _bench_token, machine

OWNER = "cap-owner@example.com"  # the address bench.run._bench_token signs in with


def seed(share_id: str, owner_id: str, count: int, rnd: random.Random, resolved_every: int = 0,
         open_every: int = 0) -> None:
    """``count`` spikes of a share, one a minute from September on, as a post stores them; one in
    ``resolved_every`` resolved, or with ``open_every`` all resolved but one in that many."""
    from chalicelib import clock
    from chalicelib.services import spike_posts
    from chalicelib.store import spike_counters
    from chalicelib.store import spikes as spike_store
    from chalicelib.store.models import LedgerItem, Spike
    start, shards = datetime(2026, 9, 1, tzinfo=timezone.utc), [0] * spike_counters.COUNTER_SHARDS
    with Spike.batch_write() as batch:
        for i in range(count):
            created = clock.iso_millis(start + timedelta(minutes=i, milliseconds=rnd.randint(0, 999)))
            public_id = spike_store.new_public_id()
            spike_id = spike_store.spike_id_for(share_id, public_id)
            new = spike_posts.NewSpike(
                type="element", project_key=share_id, client_id=public_id, page=f"Page {rnd.randint(0, 39)}",
                url=f"https://example.com/{rnd.randint(0, 39)}", comments="Looks good " * rnd.randint(1, 8),
                rating=rnd.choice(["love", "like", "meh", "no"]),
                reviewer={"id": f"r{rnd.randint(0, 50)}", "name": "R"},
                selector=f"div.c{rnd.randint(0, 30)} > button", element_text="Submit",
                bounding_box={"x": 1, "y": 2, "width": 30, "height": 10}, viewport={"width": 1920, "height": 1080})
            resolved = i % open_every != 0 if open_every else bool(resolved_every) and i % resolved_every == 0
            batch.save(spike_store.new(spike_id, share_id, created, public_id=public_id, owner_id=owner_id,
                                       share_id=share_id, **spike_posts._stored_fields(new, created, resolved)))
            shards[spike_counters.shard_of(spike_id)] += 1
    for shard, counted in enumerate(shards):
        if counted:
            LedgerItem(spike_counters.share_total_shard_key(share_id, shard)).update(actions=[LedgerItem.count.add(counted)])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spikes", type=int, default=30_000)
    parser.add_argument("--shares", type=int, default=100)
    parser.add_argument("--open-every", type=int, default=0,
                        help="an agent's feedback: every spike resolved but one in N (default: one in 10,000 resolved)")
    args = parser.parse_args(argv)
    os.environ.update({**BENCH_ENV, "SPIKES_STAGE": "test", "SPIKES_LOG_LEVEL": "WARNING",
                       "SPIKES_TOKEN": "bench-admin", "SPIKES_MAIL_MODE": "console",
                       "SPIKES_TABLE_PREFIX": f"r{uuid.uuid4().hex[:8]}-"})
    from chalice.test import Client
    from moto import mock_aws
    from pynamodb.connection.base import Connection

    from chalicelib import deps
    from chalicelib.services.accounts import user_id_for
    from chalicelib.store.setup import create_bucket, create_tables
    from tests import dynamodb_local
    from tests.factories import make_share, make_user

    calls: collections.Counter = collections.Counter()
    scanned = [0]
    original = Connection._make_api_call

    def counting(self, operation_name, operation_kwargs):
        calls[operation_name] += 1
        response = original(self, operation_name, operation_kwargs)
        if operation_name == "Query":
            scanned[0] += response.get("ScannedCount", len(response.get("Items", [])))
        return response

    print(f"machine: {machine()}, load average {os.getloadavg()[0]:.1f}", flush=True)
    print(f"read paths at {args.spikes} spikes in one share, {args.shares} shares"
          " (in-process, DynamoDB Local in memory):", flush=True)
    with dynamodb_local.running() as endpoint, mock_aws():
        os.environ["SPIKES_DYNAMODB_ENDPOINT_URL"] = endpoint
        deps.reset()
        create_tables(deps.settings(), deps.dynamodb_client())
        create_bucket(deps.settings(), deps.s3_client())
        make_user(OWNER, "pro")
        shares = [make_share(OWNER, f"read-{n}").share_id for n in range(max(2, args.shares))]
        big, small, rnd, started = shares[0], shares[1], random.Random(7), time.monotonic()
        seed(big, user_id_for(OWNER), args.spikes, rnd, resolved_every=10_000, open_every=args.open_every)
        for share_id in shares[1:6]:
            seed(share_id, user_id_for(OWNER), 200, rnd, open_every=args.open_every)
        print(f"stored in {time.monotonic() - started:.0f} s", flush=True)
        Connection._make_api_call = counting
        from app import app
        with Client(app, stage_name="test") as client:
            auth = {"Authorization": f"Bearer {_bench_token(client)}"}

            def get(path: str, headers=None):
                response = client.http.request("GET", path, headers=headers or {})
                try:
                    body = json.loads(response.body)
                except ValueError:  # an export's file
                    body = None
                items = body.get("data") if isinstance(body, dict) and "data" in body else body
                count = len(items) if isinstance(items, list) else (body or {}).get("code", "")
                return f"{response.status_code} {count} {len(response.body)} B"

            def dashboard_charts():
                cursor, pages = None, 0
                while pages < 1000:  # bounded: 1,000 pages of 1,000
                    page = json.loads(client.http.request(
                        "GET", f"/spikes?project={big}&limit=1000" + (f"&cursor={cursor}" if cursor else ""),
                        headers=auth).body)
                    pages, cursor = pages + 1, page["next_cursor"]
                    if not cursor:
                        return f"{pages} pages"
                return f"{pages} pages (stopped)"

            cases = [
                ("GET /spikes?project=<big> (first 100)", lambda: get(f"/spikes?project={big}")),
                ("  &rating=no&limit=20 (1 in 4 match)", lambda: get(f"/spikes?project={big}&rating=no&limit=20")),
                ("  &page=Page%203&limit=20 (1 in 40)", lambda: get(f"/spikes?project={big}&page=Page%203&limit=20")),
                ("  &resolved=true&limit=20 (3 match)", lambda: get(f"/spikes?project={big}&resolved=true&limit=20")),
                ("  &resolved=false&limit=1000", lambda: get(f"/spikes?project={big}&resolved=false&limit=1000")),
                ("  &reviewer=nobody&limit=20 (none)", lambda: get(f"/spikes?project={big}&reviewer=nobody&limit=20")),
                ("GET /spikes, owner (first 100)", lambda: get("/spikes", auth)),
                ("  &resolved=false&limit=1000 (MCP get_spikes)",
                 lambda: get("/spikes?resolved=false&limit=1000", auth)),
                ("  &resolved=true&limit=1000 (3 match)", lambda: get("/spikes?resolved=true&limit=1000", auth)),
                (f"GET /shares ({len(shares)} shares)", lambda: get("/shares", auth)),
                ("GET /me", lambda: get("/me", auth)),
                ("GET /usage", lambda: get("/usage", auth)),
                ("GET /shares/<small> (200 spikes inline)", lambda: get(f"/shares/{small}", auth)),
                ("GET /shares/<big> (409)", lambda: get(f"/shares/{big}", auth)),
                ("GET /shares/<big>?exported_spikes=false", lambda: get(f"/shares/{big}?exported_spikes=false", auth)),
                ("dashboard charts: every page at 1,000", dashboard_charts),
                ("GET /spikes/export?project=<big>&format=csv", lambda: get(f"/spikes/export?project={big}", auth)),
                ("  &format=jsonl", lambda: get(f"/spikes/export?project={big}&format=jsonl", auth)),
                ("  &format=csv&rating=no", lambda: get(f"/spikes/export?project={big}&rating=no", auth)),
            ]
            print(f"  {'request':<46} {'ms':>7} {'items read':>10} {'peak MiB':>8}  calls; answer", flush=True)
            for label, run in cases:
                calls.clear()
                scanned[0] = 0
                begun = time.perf_counter()
                answer = run()
                elapsed = (time.perf_counter() - begun) * 1000
                made, read = dict(calls), scanned[0]
                tracemalloc.start()
                run()
                peak = tracemalloc.get_traced_memory()[1] / 2 ** 20
                tracemalloc.stop()
                print(f"  {label:<46} {elapsed:>7.0f} {read:>10} {peak:>8.1f}  {made}; {answer}", flush=True)
            print(f"load average at the end {os.getloadavg()[0]:.1f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
