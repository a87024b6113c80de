"""`make dev` at tens of thousands of spikes: what the other paths cost once the data has grown.

`make bench`'s section 4 posts up to 10,000 spikes and times a post and a listing. This one
stores ``--spikes`` (default 50,000) over one big share (60%) and four small ones, then prints,
against the real local server (tools/devserver.py on DynamoDB Local, in a temporary folder):
the listing's first and last page, the dashboard's JSON routes (``GET /shares``, ``/usage``,
``/me``, ``GET /shares/{key}`` of a small share and of the big one, which answers 409), the
exports of the big share, a filter matching nothing, a restart (time until the server answers,
memory after), the data folder's size, and with ``--delete`` the big share's deletion (minutes
on DynamoDB Local) with a listing timed meanwhile.

The spikes are written the way the store writes them (``store.spikes.new`` with a post's stored
fields, 25 to a BatchWriteItem, counted in the share's total shards), not posted: 50,000 posts
would keep both cores busy for about a quarter of an hour. Prints figures; asserts nothing.

    nice .venv/bin/python -m bench.data_growth [--spikes 50000] [--delete]
"""
from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import List

import requests

from bench.run import BENCH_ENV, bench_server, create_share, machine, rss_mib, set_tier

OWNER = "growth-owner@example.com"
SMALL_SHARES = 4


def seed(endpoint: str, share_id: str, slug: str, owner_id: str, count: int, rnd: random.Random) -> None:
    """``count`` spikes of a share, written as a post stores them, and counted in its total."""
    os.environ.update({**BENCH_ENV, "SPIKES_STAGE": "local", "SPIKES_DYNAMODB_ENDPOINT_URL": endpoint,
                       "SPIKES_AWS_ENDPOINT_URL": "http://127.0.0.1:1", "SPIKES_LOG_LEVEL": "WARNING"})
    from chalicelib import clock, deps
    from chalicelib.services import spike_posts
    from chalicelib.store import spike_counters
    from chalicelib.store import spikes as spike_store
    from chalicelib.store.models import LedgerItem, Spike
    deps.reset()
    deps.settings()
    start, shards = datetime(2026, 11, 1, tzinfo=timezone.utc), [0] * spike_counters.COUNTER_SHARDS
    with Spike.batch_write() as batch:
        for i in range(count):
            created = clock.iso_millis(start + timedelta(seconds=i * 30, milliseconds=rnd.randint(0, 999)))
            public_id = spike_store.new_public_id()
            spike_id = spike_store.spike_id_for(share_id, public_id)
            new = spike_posts.NewSpike(
                type="element", project_key=slug, client_id=public_id, page=f"Page {rnd.randint(0, 39)}",
                url=f"https://example.com/{rnd.randint(0, 39)}", comments="Looks good " * rnd.randint(1, 8),
                rating=rnd.choice(["love", "like", "meh", "no"]), reviewer={"id": f"r{rnd.randint(0, 50)}", "name": "R"},
                selector=f"div.c{rnd.randint(0, 30)} > button", element_text="Submit",
                bounding_box={"x": 1, "y": 2, "width": 30, "height": 10}, viewport={"width": 1920, "height": 1080})
            batch.save(spike_store.new(spike_id, share_id, created, public_id=public_id, owner_id=owner_id,
                                       share_id=share_id, **spike_posts._stored_fields(new, created, False)))
            shards[spike_counters.shard_of(spike_id)] += 1
    for shard, counted in enumerate(shards):
        LedgerItem(spike_counters.share_total_shard_key(share_id, shard)).update(actions=[LedgerItem.count.add(counted)])


def timed(session: requests.Session, label: str, method: str, url: str, count: int, **kwargs) -> List[float]:
    times, response = [], None
    for _ in range(count):
        started = time.perf_counter()
        response = session.request(method, url, timeout=600, allow_redirects=False, **kwargs)
        times.append((time.perf_counter() - started) * 1000)
    print(f"  {label:<52} {response.status_code} p50 {statistics.median(times):>8.1f} ms"
          f"  max {max(times):>8.1f} ms  {len(response.content):>8} B", flush=True)
    return times


def engine_pid(server) -> int:
    """DynamoDB Local's pid: the last one the server printed (a restart starts another)."""
    return int(re.findall(r"DynamoDB Local at \S+ \(pid (\d+)", server.output())[-1])


def du_mib(path: Path) -> float:
    out = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True).stdout
    return round(int(out.split()[0]) / 1024, 1)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spikes", type=int, default=50_000)
    parser.add_argument("--delete", action="store_true", help="also delete the big share (minutes)")
    args = parser.parse_args(argv)
    print(f"machine: {machine()}", flush=True)
    big_count = args.spikes * 6 // 10
    small_count = (args.spikes - big_count) // SMALL_SHARES
    with tempfile.TemporaryDirectory(prefix="spikes-growth-") as tmp:
        data_dir = Path(tmp)
        server = bench_server(data_dir, {"RATE_SPIKES_PER_MINUTE": "100000000", "RATE_LISTINGS_PER_MINUTE": "100000000", "LOG_LEVEL": "WARNING"})
        server.start()
        try:
            base, http = server.url, requests.Session()
            token = server.sign_in(OWNER)
            set_tier(server, OWNER, "pro")
            auth = {"Authorization": f"Bearer {token}"}
            from chalicelib.services.accounts import user_id_for
            shares = [create_share(server, token, name) for name in
                      ["big", *(f"small-{n}" for n in range(1, SMALL_SHARES + 1))]]
            rnd, started = random.Random(7), time.monotonic()
            for share, count in zip(shares, [big_count] + [small_count] * SMALL_SHARES):
                seed(server.dynamodb_endpoint_url(), share["share_id"], share["slug"], user_id_for(OWNER), count, rnd)
            print(f"stored {big_count} + {SMALL_SHARES} x {small_count} spikes in {time.monotonic() - started:.0f} s;"
                  f" data folder {du_mib(data_dir)} MiB, server RSS {rss_mib(server.pid)} MiB", flush=True)
            big, small = shares[0]["share_id"], shares[1]["share_id"]
            print("\nlistings (one client):", flush=True)
            timed(http, f"GET /spikes?project=<big> first page (100)", "GET", f"{base}/spikes?project={big}", 10)
            cursor, pages, walk_started = None, 0, time.perf_counter()
            while pages < 1000:  # bounded: 1000 pages of 1000
                page = http.get(f"{base}/spikes?project={big}&limit=1000" + (f"&cursor={cursor}" if cursor else ""),
                                timeout=60).json()
                pages, cursor = pages + 1, page["next_cursor"]
                if not cursor:
                    break
            print(f"  every page of the big share at 1000: {pages} pages in "
                  f"{(time.perf_counter() - walk_started) * 1000:.0f} ms (the last page one request like the first)")
            timed(http, "GET /spikes?project=<big>&resolved=true (none match)", "GET",
                  f"{base}/spikes?project={big}&resolved=true&limit=20", 3)
            print("\nthe dashboard's JSON routes:", flush=True)
            for label, path in [("GET /shares", "/shares"), ("GET /usage", "/usage"), ("GET /me", "/me"),
                                ("GET /shares/<small> (its feedback inline)", f"/shares/{small}"),
                                ("GET /shares/<big> (409 EXPORT_TOO_LARGE)", f"/shares/{big}")]:
                timed(http, label, "GET", base + path, 3, headers=auth)
            print("\nexports of the big share:", flush=True)
            for fmt in ("csv", "jsonl"):
                timed(http, f"GET /spikes/export?project=<big>&format={fmt}", "GET",
                      f"{base}/spikes/export?project={big}&format={fmt}", 2, headers=auth)
            print(f"  server RSS after them {rss_mib(server.pid)} MiB, data folder {du_mib(data_dir)} MiB", flush=True)
            restart_started = time.monotonic()
            server.restart()
            print(f"\nrestart: answering after {time.monotonic() - restart_started:.1f} s, server RSS"
                  f" {rss_mib(server.pid)} MiB, DynamoDB Local RSS {rss_mib(engine_pid(server))} MiB,"
                  f" data folder {du_mib(data_dir)} MiB", flush=True)
            if args.delete:
                delete_big(server, big, small, auth)
                print(f"  after: data folder {du_mib(data_dir)} MiB, server RSS {rss_mib(server.pid)} MiB", flush=True)
        finally:
            server.close()
    return 0


def delete_big(server, big: str, small: str, auth: dict) -> None:
    """DELETE of the big share (its export downloaded: exported_spikes=false), a listing of a
    small share timed every 50 ms meanwhile."""
    done, latencies = threading.Event(), []

    def meanwhile() -> None:
        session = requests.Session()
        while not done.is_set() and len(latencies) < 20_000:
            started = time.perf_counter()
            session.get(f"{server.url}/spikes?project={small}&limit=20", timeout=60)
            latencies.append((time.perf_counter() - started) * 1000)
            time.sleep(0.05)
    other = threading.Thread(target=meanwhile)
    other.start()
    started = time.perf_counter()
    response = requests.delete(f"{server.url}/shares/{big}?exported_spikes=false", headers=auth, timeout=900)
    took = time.perf_counter() - started
    done.set()
    other.join()
    print(f"\nDELETE /shares/<big>?exported_spikes=false: {response.status_code} after {took:.1f} s; a listing"
          f" meanwhile p50 {statistics.median(latencies):.1f} ms, max {max(latencies):.1f} ms", flush=True)


if __name__ == "__main__":
    sys.exit(main())
