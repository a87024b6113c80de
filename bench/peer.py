"""Our POST /spikes next to the upstream Spikes Cloudflare template's, same machine, same run,
same load tool (wrk, keep-alive, 1 and 4 connections, median of 3 interleaved runs).

The template is not part of this repository (its code is not ours to commit). Prepare it in a
folder of its own (docs/performance.md says how: `templates/cloudflare` of
github:bierlingm/spikes, wrangler and Node 22 from npm, a wrangler.toml with local D1/R2),
then:

    python -m bench.peer --peer-dir /path/to/peer

Both servers bind 127.0.0.1; both are stopped by PID at the end; every run is bounded.
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from bench.run import BENCH_ENV, SPIKE, bench_server, create_share, set_tier, wrk


def start_peer(peer_dir: Path, port: int) -> subprocess.Popen:
    node_bin = peer_dir / "node_modules" / ".bin"
    env = {**os.environ, "PATH": f"{node_bin}:{os.environ.get('PATH', '')}", "WRANGLER_SEND_METRICS": "false",
           "CI": "1", "NO_UPDATE_NOTIFIER": "1"}
    subprocess.run([str(node_bin / "wrangler"), "d1", "execute", "peer-bench-db", "--local", "--file=schema.sql"],
                   cwd=peer_dir, env=env, check=True, capture_output=True, timeout=180)
    process = subprocess.Popen([str(node_bin / "wrangler"), "dev", "--local", "--ip", "127.0.0.1", "--port", str(port)],
                               cwd=peer_dir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except requests.RequestException:
            pass
        if process.poll() is not None:
            raise RuntimeError(f"wrangler dev exited with {process.returncode}")
        time.sleep(0.5)
    stop_group(process)
    raise RuntimeError("wrangler dev did not answer within 120 s")


def stop_group(process: subprocess.Popen) -> None:
    """wrangler runs workerd as a child: stop its process group (started with its own session)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer-dir", required=True, type=Path)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    os.environ.update(BENCH_ENV)
    peer_port = free_port()
    peer = start_peer(args.peer_dir.resolve(), peer_port)
    with tempfile.TemporaryDirectory(prefix="spikes-peer-bench-") as tmp:
        ours = bench_server(Path(tmp), {"RATE_SPIKES_PER_MINUTE": "100000000", "RATE_LISTINGS_PER_MINUTE": "100000000", "LOG_LEVEL": "WARNING"})
        ours.start()
        try:
            token = ours.sign_in("peer-bench@example.com")
            set_tier(ours, "peer-bench@example.com", "pro")
            share = create_share(ours, token, "peer")
            peer_share = "peer-bench-share"
            targets = {
                "ours (local server, DynamoDB Local)": (f"{ours.url}/spikes", {**SPIKE, "projectKey": share["slug"]}),
                "peer (wrangler dev, local D1)": (f"http://127.0.0.1:{peer_port}/spikes",
                                                  {**SPIKE, "projectKey": peer_share}),
            }
            for url, body in targets.values():  # warm both
                for _ in range(20):
                    requests.post(url, json=body, timeout=30)
            print(f"POST /spikes, wrk, {args.seconds:.0f} s per run, median of {args.runs} interleaved runs:",
                  flush=True)
            results = {}
            for connections in (1, 4):
                runs = {name: [] for name in targets}
                for _ in range(args.runs):
                    for name, (url, body) in targets.items():
                        runs[name].append(wrk(url, connections, args.seconds, 100_000, body))
                for name, measured in runs.items():
                    rps = statistics.median(run["rps"] for run in measured)
                    p50 = statistics.median(run["p50_ms"] for run in measured)
                    p99 = statistics.median(run["p99_ms"] for run in measured)
                    errors = sum(run["5xx"] + run["4xx"] + run["socket_errors"] for run in measured)
                    results[(name, connections)] = rps
                    print(f"  {connections} conn  {name:<38} {rps:>8.1f} req/s  p50 {p50:>6.2f} ms  p99 {p99:>7.2f} ms"
                          f"  (runs: {', '.join(str(run['rps']) for run in measured)}; non-2xx {errors})", flush=True)
                names = list(targets)
                print(f"  {connections} conn  ours / peer = {results[(names[0], connections)] / results[(names[1], connections)]:.2f}x",
                      flush=True)
        finally:
            ours.close()
            stop_group(peer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
