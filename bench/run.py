"""Benchmarks for the feedback path (`make bench`). Prints figures; asserts nothing.

1. Throughput and latency of POST /spikes and GET /spikes?project= against the real local
   server (tools/devserver.py), from keep-alive client threads. Bounded in count and time.
   Tables live on the embedded moto by default, or on DynamoDB Local with --dynamodb-local.
2. DynamoDB calls per request, by operation, counted in-process (chalice test client + moto)
   at the PynamoDB connection, the one place every table call goes through.

The machine is shared and noisy: compare ratios from one run, not absolute times.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def percentile(values: List[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(pct / 100 * (len(ordered) - 1))))]


def load(name: str, call: Callable[[requests.Session, int], int], workers: int, requests_total: int,
         max_seconds: float) -> Dict[str, float]:
    latencies: List[float] = []
    errors = collections.Counter()
    lock = threading.Lock()
    counter = iter(range(requests_total))
    deadline = time.monotonic() + max_seconds

    def worker():
        session = requests.Session()
        while time.monotonic() < deadline:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            started = time.perf_counter()
            status = call(session, i)
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                if status >= 300:
                    errors[status] += 1

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=max_seconds + 30)
    wall = time.monotonic() - started
    result = {"requests": len(latencies), "seconds": round(wall, 2), "rps": round(len(latencies) / wall, 1),
              "p50_ms": round(percentile(latencies, 50) * 1000, 1), "p99_ms": round(percentile(latencies, 99) * 1000, 1),
              "errors": dict(errors)}
    print(f"  {name:<34} {result['requests']:>6} req  {result['rps']:>8} req/s  p50 {result['p50_ms']:>7} ms"
          f"  p99 {result['p99_ms']:>7} ms  errors {result['errors'] or 0}", flush=True)
    return result


def http_benchmarks(args) -> Dict[str, dict]:
    from tests.live import LiveServer
    ddb_context = None
    endpoint = None
    if args.dynamodb_local:
        from tests import dynamodb_local
        ddb_context = dynamodb_local.running()
        endpoint = ddb_context.__enter__()
    server = LiveServer(dynamodb_endpoint=endpoint, env={"RATE_SPIKES_PER_MINUTE": "100000000",
                                                         "FREE_SPIKE_LIMIT": "100000000", "LOG_LEVEL": "WARNING"})
    server.start()
    results = {}
    try:
        base = server.url
        print(f"HTTP against the local server ({'DynamoDB Local' if endpoint else 'embedded moto'}),"
              f" {args.workers} keep-alive client threads:", flush=True)
        body = {"type": "element", "projectKey": "bench", "page": "Home", "url": "https://example.com/",
                "selector": "button.submit", "rating": "love", "comments": "Perfect placement",
                "reviewer": {"id": "r123", "name": "Jane"}, "viewport": {"width": 1920, "height": 1080},
                "timestamp": "2026-01-15T10:30:00Z"}

        def post_spike(session, i):
            return session.post(f"{base}/spikes", json={**body, "id": f"bench-{i}"}, timeout=30).status_code

        def list_spikes(session, _i):
            return session.get(f"{base}/spikes?project=bench&limit=50", timeout=30).status_code

        def health(session, _i):
            return session.get(f"{base}/", timeout=30).status_code

        results["GET / (no AWS calls)"] = load("GET / (framework floor)", health, args.workers, args.requests,
                                               args.seconds)
        results["POST /spikes"] = load("POST /spikes", post_spike, args.workers, args.requests, args.seconds)
        results["GET /spikes?project= (limit 50)"] = load("GET /spikes?project=&limit=50", list_spikes,
                                                          args.workers, args.requests, args.seconds)
    finally:
        server.close()
        if ddb_context is not None:
            ddb_context.__exit__(None, None, None)
    return results


def dynamodb_calls_per_request() -> Dict[str, dict]:
    """Count table calls per request by operation, in-process."""
    os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1", "SPIKES_STAGE": "test", "SPIKES_LOG_LEVEL": "WARNING",
                       "SPIKES_TOKEN": "bench-admin"})
    import boto3
    from chalice.test import Client
    from moto import mock_aws
    from pynamodb.connection.base import Connection

    from chalicelib import deps
    from chalicelib.store.setup import create_bucket, create_tables
    from tests.factories import make_share

    calls: collections.Counter = collections.Counter()
    original = Connection._make_api_call

    def counting(self, operation_name, operation_kwargs):
        calls[operation_name] += 1
        return original(self, operation_name, operation_kwargs)

    Connection._make_api_call = counting
    out = {}
    try:
        with mock_aws():
            deps.reset()
            settings = deps.settings()
            create_tables(settings, boto3.client("dynamodb"))
            create_bucket(settings, deps.s3_client())
            share = make_share("bench-owner@example.com", "bench-share")
            from app import app
            with Client(app, stage_name="test") as client:
                cases = [
                    ("POST /spikes (project key only)", "POST", "/spikes",
                     {"type": "page", "projectKey": "loose"}),
                    ("POST /spikes (share, quota counted)", "POST", "/spikes",
                     {"type": "page", "projectKey": share.share_id}),
                    ("POST /spikes (retry of a stored id)", "POST", "/spikes",
                     {"type": "page", "projectKey": share.share_id, "id": "same"}),
                    ("GET /spikes?project=<share id>", "GET", f"/spikes?project={share.share_id}", None),
                    ("GET /spikes?project=<slug>", "GET", "/spikes?project=bench-share", None),
                ]
                print("\nDynamoDB calls per request (in-process, by operation):", flush=True)
                for label, method, path, body in cases:
                    if "retry" in label:  # store it once first, then measure the retry
                        client.http.request(method, path, headers={"Content-Type": "application/json"},
                                            body=json.dumps(body))
                    calls.clear()
                    client.http.request(method, path, headers={"Content-Type": "application/json"},
                                        body=json.dumps(body) if body else b"")
                    total = sum(calls.values())
                    out[label] = {"total": total, **dict(calls)}
                    detail = ", ".join(f"{op} {n}" for op, n in sorted(calls.items()))
                    print(f"  {label:<40} {total} calls  ({detail})", flush=True)
    finally:
        Connection._make_api_call = original
        deps.reset()
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Spikes feedback-path benchmarks")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--requests", type=int, default=1500, help="per endpoint (upper bound)")
    parser.add_argument("--seconds", type=float, default=30.0, help="per endpoint (upper bound)")
    parser.add_argument("--dynamodb-local", action="store_true", help="tables on DynamoDB Local instead of moto")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    figures = {"http": http_benchmarks(args), "dynamodb_calls": dynamodb_calls_per_request()}
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
