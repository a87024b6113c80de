"""`make bench`: the feedback path's figures, in one run. Prints them; asserts nothing.

1. Throughput and latency (wrk, keep-alive, 1 and 4 connections) against the real local server
   (`make dev`'s: tools/devserver.py on DynamoDB Local persisted in a temporary folder), with a
   bench-only route doing one GetItem on the same stack (bench/server.py) as the floor, and the
   ratio of every endpoint to it.
2. DynamoDB round trips and the engine's own ReturnConsumedCapacity per request (post, listing,
   share view, upload), in-process on DynamoDB Local, next to the floor.
3. A hot share: 8 posters on one share for 20 s (Pro: no limit), then 8 posters on a free share
   until its quota is spent: statuses, p99, and the quota exact.
4. `make dev` as data grows: posts up to 10,000 stored spikes in one project, the server's and
   DynamoDB Local's memory on the way, then listing and posting from one client at 10,000.
5. Cold start: `import app` against a bare `import chalice, boto3` in fresh interpreters, and the
   first request after the import.
6. The engine's floor: a warm post's DynamoDB calls replayed straight at DynamoDB Local next to
   one GetItem, and the best ratio to the bare route those calls allow (bench/engine_floor.py).

Every load is bounded in count and time and runs on loopback only. The machine is shared and
noisy: compare the ratios measured in one run, not absolute times. `--quick` shortens every run.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Dict, List, Optional

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
WRK_DIR = ROOT / "bench" / "wrk"
BENCH_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
             "AWS_EC2_METADATA_DISABLED": "true"}

SPIKE = {"type": "element", "page": "Home", "url": "https://example.com/", "selector": "button.submit",
         "rating": "love", "comments": "Perfect placement", "reviewer": {"id": "r123", "name": "Jane"},
         "viewport": {"width": 1920, "height": 1080}, "timestamp": "2026-01-15T10:30:00Z"}


# --- load ------------------------------------------------------------------------------------

def wrk(url: str, connections: int, seconds: float, max_requests: int, body: Optional[dict] = None) -> dict:
    """One bounded wrk run (time: -d; count: bench/wrk/bounded.lua). Returns its figures."""
    threads = min(connections, 2)
    env = {**os.environ, "BENCH_WRK_DIR": str(WRK_DIR), "BENCH_MAX_REQUESTS": str(max_requests),
           "BENCH_THREADS": str(threads)}
    script = WRK_DIR / "get.lua"
    body_file = None
    if body is not None:
        body_file = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
        json.dump(body, body_file)
        body_file.close()
        env["BENCH_BODY_FILE"] = body_file.name
        script = WRK_DIR / "post.lua"
    try:
        out = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, int(seconds))}s", "--timeout", "10s",
                              "-s", str(script), url], env=env, capture_output=True, text=True, timeout=seconds + 60)
    finally:
        if body_file is not None:
            os.unlink(body_file.name)
    match = re.search(r"^BENCH (.*)$", out.stdout, re.M)
    if not match:
        raise RuntimeError(f"wrk failed: {out.stdout}\n{out.stderr}")
    fields = {key: float(value) for key, value in (part.split("=") for part in match.group(1).split())}
    # The rate over the run's own window (first thread started to last answer: bounded.lua), not
    # wrk's -d, which it reports even when the count stopped every thread early.
    return {"requests": int(fields["requests"]), "seconds": round(fields["active_seconds"], 2),
            "count_bound": fields["answered"] >= max_requests - threads,
            "rps": round(fields["answered"] / fields["active_seconds"], 1) if fields["active_seconds"] > 0 else float("nan"),
            "p50_ms": round(fields["p50_us"] / 1000, 2), "p99_ms": round(fields["p99_us"] / 1000, 2),
            "2xx": int(fields["s2xx"]), "4xx": int(fields["s4xx"]), "5xx": int(fields["s5xx"]),
            "socket_errors": int(fields["errors"])}


def row(label: str, result: dict, floor: Optional[dict] = None) -> str:
    ratio = f"  {result['rps'] / floor['rps']:.2f}x bare" if floor else ""
    if floor and (floor["5xx"] or result["5xx"]):
        ratio += " (NOT VALID: 5xx answers)"
    return (f"  {label:<44} {result['rps']:>8.1f} req/s  p50 {result['p50_ms']:>7.2f} ms  p99 {result['p99_ms']:>7.2f} ms"
            f"  ({result['requests']} req, 5xx {result['5xx']}, 4xx {result['4xx']}){ratio}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def with_cpu(run, pids: Dict[str, int]) -> dict:
    """A wrk run, and the CPU each process spent per answered request during it."""
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    result = run()
    answered = max(1, result["2xx"] + result["4xx"] + result["5xx"])
    for name, pid in pids.items():
        result[f"{name}_cpu_ms"] = round((cpu_seconds(pid) - before[name]) * 1000 / answered, 2)
    return result


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def percentile(values: List[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(pct / 100 * (len(ordered) - 1))))]


def timed_calls(call, count: int, max_seconds: float) -> dict:
    """One client, one keep-alive session, bounded; latencies in ms."""
    latencies, statuses = [], collections.Counter()
    deadline = time.monotonic() + max_seconds
    session = requests.Session()
    for i in range(count):
        if time.monotonic() > deadline:
            break
        started = time.perf_counter()
        statuses[call(session, i)] += 1
        latencies.append((time.perf_counter() - started) * 1000)
    session.close()
    return {"requests": len(latencies), "p50_ms": round(percentile(latencies, 50), 2),
            "p99_ms": round(percentile(latencies, 99), 2), "statuses": dict(statuses)}


# --- the server ------------------------------------------------------------------------------

def engine_pid_of(server) -> int:
    return int(re.search(r"DynamoDB Local at \S+ \(pid (\d+)", server.output()).group(1))


def bench_server(data_dir: Path, env: Dict[str, str]):
    from tests.live import LiveServer

    class BenchServer(LiveServer):
        def command(self):
            return [self.python, "-m", "bench.server", *super().command()[3:]]

    return BenchServer(data_dir=data_dir, env=env, engine="dynamodb-local", start_timeout=120)


def dynamodb(server):
    import boto3
    return boto3.client("dynamodb", endpoint_url=server.dynamodb_endpoint_url(), region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def create_share(server, token: str, name: str) -> dict:
    response = requests.post(f"{server.url}/shares", headers={"Authorization": f"Bearer {token}"}, timeout=60,
                             data={"metadata": json.dumps({"name": name})},
                             files=[("files", ("index.html", b"<!doctype html><h1>Bench</h1>"))])
    response.raise_for_status()
    return response.json()


def set_tier(server, email: str, tier: str) -> None:
    from chalicelib.services.accounts import user_id_for
    dynamodb(server).update_item(TableName=server.table_name("users"), Key={"user_id": {"S": user_id_for(email)}},
                                 UpdateExpression="SET tier = :t", ExpressionAttributeValues={":t": {"S": tier}})


def ledger_count(server, pk: str) -> int:
    item = dynamodb(server).get_item(TableName=server.table_name("ledger"), Key={"pk": {"S": pk}},
                                     ConsistentRead=True).get("Item")
    return int(item["count"]["N"]) if item else 0


# --- 1, 3, 4: over HTTP ----------------------------------------------------------------------

def http_sections(args, figures: dict, sections: set) -> None:
    quick = args.quick
    hot_limit = 300 if quick else 1000
    with tempfile.TemporaryDirectory(prefix="spikes-bench-") as tmp:
        server = bench_server(Path(tmp), {"RATE_SPIKES_PER_MINUTE": "100000000", "RATE_LISTINGS_PER_MINUTE": "100000000",
                                          "FREE_SPIKE_LIMIT": str(hot_limit), "LOG_LEVEL": "WARNING"})
        server.start()
        try:
            base = server.url
            owner = server.sign_in("bench-owner@example.com")
            set_tier(server, "bench-owner@example.com", "pro")
            share = create_share(server, owner, "bench")
            slug = share["slug"]
            if "throughput" in sections:
                throughput(server, slug, args, figures)
            if "hot" in sections:
                hot_share(server, args, figures, hot_limit)
            if "growth" in sections:
                grows(server, args, figures)
        finally:
            server.close()


LISTED_SPIKES = 100


def throughput(server, slug: str, args, figures: dict) -> None:
    seconds = 3 if args.quick else args.seconds
    base = server.url
    # The listing reads a share of a fixed size, not the share the POST rows fill: every run
    # lists the same page of the same partition. Its growth is section 4's.
    listed = create_share(server, server.sign_in("bench-owner@example.com"), "listed")["slug"]
    session = requests.Session()
    for n in range(LISTED_SPIKES):
        session.post(f"{base}/spikes", json={**SPIKE, "projectKey": listed, "id": f"listed-{n}"},
                     timeout=30).raise_for_status()
    # Warm every path once (first request imports and connects); a failing route, the floor
    # above all, stops the bench instead of printing ratios against error pages.
    requests.get(f"{base}/_bench/bare", timeout=30).raise_for_status()
    requests.post(f"{base}/spikes", json={**SPIKE, "projectKey": slug}, timeout=30).raise_for_status()
    requests.get(f"{base}/spikes?project={listed}&limit=50", timeout=30).raise_for_status()

    print(f"\n1. Throughput: wrk against the local server on DynamoDB Local, {seconds:.0f} s per row "
          f"(bounded at {args.requests} requests; 1-minute load average before: {os.getloadavg()[0]:.1f})", flush=True)
    rows = {}
    for connections in (1, 4):
        print(f" {connections} keep-alive connection{'s' if connections > 1 else ''}:", flush=True)
        pids = {"server": server.pid, "engine": engine_pid_of(server)}
        bare = with_cpu(lambda: wrk(f"{base}/_bench/bare", connections, seconds, args.requests), pids)
        cases = [
            ("GET / (no AWS call)", lambda: wrk(f"{base}/", connections, seconds, args.requests)),
            ("GET /_bench/bare (one GetItem)", lambda: bare),
            (f"POST /spikes (share {slug})", lambda: wrk(f"{base}/spikes", connections, seconds, args.requests,
                                                         {**SPIKE, "projectKey": slug})),
            (f"GET /spikes?project=<slug>&limit=50 (of {LISTED_SPIKES})",
             lambda: wrk(f"{base}/spikes?project={listed}&limit=50", connections, seconds, args.requests)),
        ]
        for label, run in cases:
            result = run() if "bare" in label else with_cpu(run, pids)
            rows[f"{label} @{connections}"] = {**result, "ratio_to_bare": round(result["rps"] / bare["rps"], 2)}
            print(row(label, result, None if "bare" in label else bare)
                  + f"  CPU/req: server {result['server_cpu_ms']} ms, DynamoDB Local {result['engine_cpu_ms']} ms",
                  flush=True)
    figures["throughput"] = rows


def hot_share(server, args, figures: dict, hot_limit: int) -> None:
    seconds = 4 if args.quick else 20
    base = server.url
    print(f"\n3. Hot share: 8 posters on one Pro share for {seconds} s (wrk, 8 connections):", flush=True)
    pro = server.sign_in("bench-pro@example.com")
    set_tier(server, "bench-pro@example.com", "pro")
    hot = create_share(server, pro, "hot-pro")
    from chalicelib import clock
    from chalicelib.store import ledger, spike_counters
    one = wrk(f"{base}/spikes", 1, min(seconds, 5), 200_000, {**SPIKE, "projectKey": hot["slug"]})
    result = wrk(f"{base}/spikes", 8, seconds, 200_000, {**SPIKE, "projectKey": hot["slug"]})
    time.sleep(1)  # a post in flight when wrk stopped still lands
    period = clock.current_period()
    total = sum(ledger_count(server, key) for key in spike_counters.share_total_keys(hot["share_id"]))
    received = sum(ledger_count(server, key) for key in spike_counters.unlimited_quota_keys(hot["share_id"], period))
    from chalicelib.services.accounts import user_id_for
    usage = ledger_count(server, ledger.user_usage_key(user_id_for("bench-pro@example.com"), period))
    stored = _count_listed(base, hot["slug"])
    exact = total == stored == received == usage
    print(row("POST /spikes, 1 poster, Pro share", one), flush=True)
    print(row("POST /spikes, 8 posters, Pro share", result), flush=True)
    print(f"  8 posters / 1 poster: {result['rps'] / one['rps']:.2f}x; answered 201: {one['2xx'] + result['2xx']}"
          f" (+ posts in flight when wrk stopped); spikes stored {stored}; share total (sharded) {total}, period"
          f" count (sharded) {received}, owner's usage {usage}: {'exact' if exact else 'NOT EXACT'}", flush=True)
    figures["hot_share_pro"] = {**result, "one_poster": one, "stored": stored, "counter": total,
                                "period_count": received, "usage": usage, "exact": exact}

    free = server.sign_in("bench-free@example.com")
    free_share = create_share(server, free, "hot-free")
    posts = hot_limit + 400
    print(f"\n   8 posters on one free share (limit {hot_limit} per period), {posts} posts:", flush=True)
    result = wrk(f"{base}/spikes", 8, 60, posts, {**SPIKE, "projectKey": free_share["slug"]})
    time.sleep(1)
    from chalicelib import clock
    from chalicelib.store import ledger
    counter = ledger_count(server, spike_counters.share_quota_key(free_share["share_id"], clock.current_period()))
    stored = _count_listed(base, free_share["slug"])
    print(row("POST /spikes, 8 posters, free share", result), flush=True)
    exact = hot_limit == counter == stored
    print(f"  201: {result['2xx']}, 429: {result['4xx']}, 5xx: {result['5xx']}; quota counter {counter}, "
          f"spikes stored {stored}, limit {hot_limit}: {'exact' if exact else 'NOT EXACT'}", flush=True)
    figures["hot_share_free"] = {**result, "limit": hot_limit, "counter": counter, "stored": stored, "exact": exact}


def _count_listed(base: str, project: str) -> int:
    total, cursor = 0, None
    for _ in range(1000):
        url = f"{base}/spikes?project={project}&limit=1000" + (f"&cursor={cursor}" if cursor else "")
        page = requests.get(url, timeout=60).json()
        total += len(page["data"])
        cursor = page.get("next_cursor")
        if not cursor:
            break
    return total


def grows(server, args, figures: dict) -> None:
    target = args.grow_to or (1000 if args.quick else 10_000)
    base = server.url
    engine_pid = engine_pid_of(server)
    project = f"big-{uuid.uuid4().hex[:6]}"
    print(f"\n4. `make dev` as data grows: posting up to {target} spikes into one project (wrk, 4 connections)",
          flush=True)
    print(f"  {'stored':>8} {'server RSS':>11} {'DynamoDB Local RSS':>19} {'post req/s':>11} {'post p50':>9}", flush=True)
    steps, stored = [], 0
    print(f"  {stored:>8} {rss_mib(server.pid):>8} MiB {rss_mib(engine_pid):>16} MiB", flush=True)
    chunk = target // 4
    for _ in range(4):
        result = wrk(f"{base}/spikes", 4, 120, chunk, {**SPIKE, "projectKey": project})
        stored += result["2xx"]
        step = {"stored": stored, "server_rss_mib": rss_mib(server.pid), "engine_rss_mib": rss_mib(engine_pid),
                "post_rps": result["rps"], "post_p50_ms": result["p50_ms"], "5xx": result["5xx"]}
        steps.append(step)
        print(f"  {stored:>8} {step['server_rss_mib']:>8} MiB {step['engine_rss_mib']:>16} MiB {result['rps']:>11}"
              f" {result['p50_ms']:>6} ms", flush=True)
    count = 100 if args.quick else 300
    listing = timed_calls(lambda s, i: s.get(f"{base}/spikes?project={project}", timeout=30).status_code, count, 30)
    posting = timed_calls(lambda s, i: s.post(f"{base}/spikes", json={**SPIKE, "projectKey": project},
                                              timeout=30).status_code, count, 30)
    print(f"  at {stored} stored, one client: GET /spikes?project= (100 items) p50 {listing['p50_ms']} ms"
          f" p99 {listing['p99_ms']} ms; POST /spikes p50 {posting['p50_ms']} ms p99 {posting['p99_ms']} ms", flush=True)
    one = wrk(f"{base}/spikes", 1, 5, 2000, {**SPIKE, "projectKey": project})
    four = wrk(f"{base}/spikes", 4, 5, 4000, {**SPIKE, "projectKey": project})
    print(f"  not serialized: POST /spikes {one['rps']} req/s from 1 client, {four['rps']} req/s from 4"
          f" ({four['rps'] / one['rps']:.2f}x)", flush=True)
    figures["make_dev_growth"] = {"steps": steps, "listing_one_client": listing, "post_one_client": posting,
                                  "post_rps_1": one["rps"], "post_rps_4": four["rps"],
                                  "server_rss_mib": rss_mib(server.pid), "engine_rss_mib": rss_mib(engine_pid)}


# --- 2: round trips and consumed capacity ----------------------------------------------------

def capacity_section(figures: dict) -> None:
    os.environ.update({**BENCH_ENV, "SPIKES_STAGE": "test", "SPIKES_LOG_LEVEL": "WARNING", "SPIKES_TOKEN": "bench-admin",
                       "SPIKES_MAIL_MODE": "console", "SPIKES_TABLE_PREFIX": f"b{uuid.uuid4().hex[:8]}-"})
    from chalice.test import Client
    from moto import mock_aws
    from pynamodb.exceptions import TableError

    from bench.capacity import INDEXES, Meter, batch_get_figures, read_units, write_units
    from chalicelib import deps
    from chalicelib.store.setup import create_bucket, create_tables
    from tests import dynamodb_local
    from tests.factories import make_share, make_user

    meter = Meter("INDEXES")
    print("\n2. DynamoDB round trips and consumed capacity per request (in-process, DynamoDB Local,"
          " ReturnConsumedCapacity=INDEXES; DynamoDB Local charges a BatchGetItem only for the items it"
          " finds, so its RCU are followed by DynamoDB's, which charges every key asked):", flush=True)
    out = {}
    with dynamodb_local.running() as endpoint, mock_aws():
        os.environ["SPIKES_DYNAMODB_ENDPOINT_URL"] = endpoint
        deps.reset()
        settings = deps.settings()
        try:
            create_tables(settings, deps.dynamodb_client())
        except TableError:  # a CreateTable retried after a timeout on a loaded machine: it exists now
            create_tables(settings, deps.dynamodb_client())
        create_bucket(settings, deps.s3_client())
        meter.install()
        try:
            make_user("cap-owner@example.com", "pro")
            share = make_share("cap-owner@example.com", "cap-share")
            # What else a post may write: a webhook event (a Pro share with a webhook), a usage
            # event (an agent-tier owner's share).
            make_share("cap-owner@example.com", "cap-hooked", webhook_url="https://hooks.example/x",
                       webhook_secret_nonce="bench")
            make_share("cap-agent@example.com", "cap-agent", tier="agent")
            from app import app
            with Client(app, stage_name="test") as client:
                token = _bench_token(client)
                json_headers = {"Content-Type": "application/json"}
                spike = json.dumps({**SPIKE, "projectKey": "cap-share"})
                boundary = "benchboundary"
                multipart = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\r\n"
                             f"{json.dumps({'name': 'cap upload'})}\r\n--{boundary}\r\nContent-Disposition: form-data;"
                             f" name=\"files\"; filename=\"index.html\"\r\nContent-Type: text/html\r\n\r\n"
                             f"<!doctype html><h1>hi</h1>\r\n--{boundary}--\r\n").encode()
                cases = [
                    ("POST /spikes to a share, cold (by id)", "POST", "/spikes", json_headers,
                     json.dumps({**SPIKE, "projectKey": share.share_id}), "3 trips: rate limit, share, transaction"),
                    ("POST /spikes to a share, cold (by slug)", "POST", "/spikes", json_headers, spike,
                     "3 trips: rate limit, the slug's claim (its hint), transaction"),
                    ("POST /spikes to a share, warm (by slug)", "POST", "/spikes", json_headers, spike,
                     "2 trips; 1 WCU + 4 items x 2 WCU = 9 WCU, + GSI writes"),
                    ("POST /spikes to a share, warm (by id)", "POST", "/spikes", json_headers,
                     json.dumps({**SPIKE, "projectKey": share.share_id}), "2 trips; 9 WCU"),
                    ("POST /spikes to a share with a webhook, warm", "POST", "/spikes", json_headers,
                     json.dumps({**SPIKE, "projectKey": "cap-hooked"}), "2 trips; 9 WCU + the event: 2 WCU"),
                    ("POST /spikes to an agent-tier share, warm", "POST", "/spikes", json_headers,
                     json.dumps({**SPIKE, "projectKey": "cap-agent"}), "2 trips; 9 WCU + the usage event: 2 WCU"),
                    ("POST /spikes retry of a stored id", "POST", "/spikes", json_headers,
                     json.dumps({**SPIKE, "projectKey": "cap-share", "id": "same"}), "2 trips"),
                    ("POST /spikes to a plain project key, warm", "POST", "/spikes", json_headers,
                     json.dumps({**SPIKE, "projectKey": "loose"}), "2 trips; 1 WCU + 1 x 2 WCU = 3 WCU"),
                    ("GET /spikes?project=<slug>&limit=50", "GET", "/spikes?project=cap-share&limit=50", {}, None,
                     "rate limit (no credential) + 1 Query; 0.5 RCU per 4 KB read (50 spikes of ~0.4 KB: 2.5 RCU)"),
                    ("POST /shares (upload, one file)", "POST", "/shares",
                     {"Content-Type": f"multipart/form-data; boundary={boundary}", "Authorization": f"Bearer {token}"},
                     multipart, "rate limit + one transaction"),
                    ("GET /s/<slug>/ (share view, index.html)", "GET", None, {}, None,
                     "the share by slug: 2 GetItems, 1 RCU"),
                ]
                uploaded_slug = None
                for label, method, path, headers, body, floor in cases:
                    if path is None:  # the share view: of the share the upload created
                        path = f"/s/{uploaded_slug}/"
                    if label.startswith("GET /spikes"):
                        for _ in range(50):
                            client.http.request("POST", "/spikes", headers=json_headers, body=spike)
                    if "cold" in label:
                        from chalicelib.services import targets
                        targets.forget()  # a new function
                    if "warm" in label or "retry" in label or label.startswith("GET /spikes"):
                        client.http.request(method, path, headers=headers, body=body)
                    meter.clear()
                    response = client.http.request(method, path, headers=headers, body=body)
                    if label.startswith("POST /shares"):
                        uploaded_slug = json.loads(response.body)["slug"]
                    total = sum(meter.calls.values())
                    detail = ", ".join(f"{op} {n}" for op, n in sorted(meter.calls.items()))
                    rcu, rcu_on_dynamodb = read_units(meter.units)
                    wcu, index_units = write_units(meter.units), meter.units[INDEXES]
                    out[label] = {"status": response.status_code, "round_trips": total, "calls": dict(meter.calls),
                                  "rcu": rcu, "rcu_on_dynamodb": rcu_on_dynamodb, "wcu": wcu,
                                  "index_units": index_units, "floor": floor}
                    batch_get = ""
                    if meter.calls["BatchGetItem"]:
                        batch_get = f" ({rcu_on_dynamodb:g} on DynamoDB: {batch_get_figures(meter.units)})"
                    print(f"  {label:<44} {response.status_code}  {total} trips ({detail});"
                          f" {rcu:g} RCU{batch_get}, {wcu:g} WCU (indexes {index_units:g})"
                          f"   floor: {floor}", flush=True)
        finally:
            meter.uninstall()
            deps.reset()
            os.environ.pop("SPIKES_DYNAMODB_ENDPOINT_URL", None)
    figures["capacity"] = out


def _bench_token(client) -> str:
    """A bearer token for the upload, signed in the way the CLI does (login, console mail, verify)."""
    import contextlib
    import io
    captured = io.StringIO()
    with contextlib.redirect_stdout(captured):
        client.http.request("POST", "/auth/login", headers={"Content-Type": "application/json"},
                            body=json.dumps({"email": "cap-owner@example.com"}))
    token = re.search(r"/auth/verify\?token=([A-Za-z0-9_\-]+)", captured.getvalue()).group(1)
    response = client.http.request("POST", "/auth/verify", headers={"Content-Type": "application/json"},
                                   body=json.dumps({"login_token": token}))
    return json.loads(response.body)["token"]


# --- 5: cold start ---------------------------------------------------------------------------

COLD_BARE = "import time; t = time.perf_counter(); import chalice, boto3; print((time.perf_counter() - t) * 1000)"
COLD_APP = """
import json, time
t = time.perf_counter()
import app
imported = (time.perf_counter() - t) * 1000
event = {"resource": "/", "path": "/", "httpMethod": "GET", "headers": {"Host": "bench"}, "multiValueHeaders": {},
         "queryStringParameters": None, "multiValueQueryStringParameters": None, "pathParameters": None,
         "stageVariables": None, "body": None, "isBase64Encoded": False,
         "requestContext": {"resourcePath": "/", "httpMethod": "GET", "path": "/api/", "stage": "api",
                            "domainName": "bench.execute-api.us-east-1.amazonaws.com",
                            "identity": {"sourceIp": "127.0.0.1"}}}
class Context:
    function_name = "bench"; aws_request_id = "bench"; memory_limit_in_mb = 128
    def get_remaining_time_in_millis(self): return 30000
t = time.perf_counter()
response = app.app(event, Context())
first = (time.perf_counter() - t) * 1000
print("BENCH_COLD", imported, first, response["statusCode"])
"""


def cold_start_env() -> Dict[str, str]:
    """A deployed stage's configuration (its secret key comes from SSM there), so the first
    request is the real GET /, not the 503 of a stage without its secret."""
    env = {**os.environ, **BENCH_ENV, "SPIKES_STAGE": "prod", "SPIKES_LOG_LEVEL": "WARNING",
           "SPIKES_SECRET_KEY": "bench-only-secret-key-0123456789abcdef", "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("SPIKES_DYNAMODB_ENDPOINT_URL", None)
    env.pop("SPIKES_PUBLIC_BASE_URL", None)  # links come from the domain API Gateway names, as deployed
    return env


def cold_start_section(args, figures: dict) -> None:
    runs = 3 if args.quick else 7
    env = cold_start_env()
    bare, app_import, first = [], [], []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", COLD_BARE], cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=120)
        bare.append(float(out.stdout.split()[0]))
        out = subprocess.run([sys.executable, "-c", COLD_APP], cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=120)
        if out.returncode != 0:
            raise RuntimeError(out.stderr)
        parts = re.search(r"^BENCH_COLD (\S+) (\S+) (\d+)$", out.stdout, re.M).groups()
        if parts[2] != "200":
            raise RuntimeError(f"the first request after the import answered {parts[2]}: {out.stdout[-500:]}")
        app_import.append(float(parts[0]))
        first.append(float(parts[1]))
    result = {"bare_import_ms": round(statistics.median(bare), 1), "app_import_ms": round(statistics.median(app_import), 1),
              "first_request_ms": round(statistics.median(first), 1)}
    result["ratio"] = round(result["app_import_ms"] / result["bare_import_ms"], 2)
    print(f"\n5. Cold start (median of {runs} fresh interpreters): import chalice, boto3 {result['bare_import_ms']} ms;"
          f" import app {result['app_import_ms']} ms ({result['ratio']}x); first request (GET /) after the import"
          f" {result['first_request_ms']} ms", flush=True)
    figures["cold_start"] = result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Spikes feedback-path benchmarks")
    parser.add_argument("--seconds", type=float, default=10.0, help="per throughput row (upper bound)")
    parser.add_argument("--requests", type=int, default=20000, help="per throughput row (upper bound)")
    parser.add_argument("--quick", action="store_true", help="short runs (a smoke test of the bench itself)")
    parser.add_argument("--only", choices=["http", "throughput", "hot", "growth", "capacity", "cold", "floor"], action="append",
                        help="http: sections 1, 3 and 4 (throughput, hot, growth)")
    parser.add_argument("--grow-to", type=int, help="section 4: how many spikes to store (default 10,000)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    os.environ.update(BENCH_ENV)
    only = set(args.only or ["http", "capacity", "cold", "floor"])
    if "http" in only:
        only |= {"throughput", "hot", "growth"}
    figures: dict = {"machine": machine()}
    print(f"Machine: {figures['machine']}", flush=True)
    if only & {"throughput", "hot", "growth"}:
        http_sections(args, figures, only)
    if "capacity" in only:
        capacity_section(figures)
    if "cold" in only:
        cold_start_section(args, figures)
    if "floor" in only:
        from bench.engine_floor import engine_floor_section
        engine_floor_section(figures, SPIKE, rounds=60 if args.quick else 300)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "?")
    memory = next((int(line.split()[1]) // 1024 for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal")), 0)
    return f"{os.cpu_count()} cores ({cpu}), {memory} MiB, Python {sys.version.split()[0]}"


if __name__ == "__main__":
    sys.exit(main())
