"""A cold start imports the routes, not what they call (chalicelib/lazy.py).

Behaviour, not timing: which modules ``import app`` loads in a fresh interpreter, and which a
request loads on top of the ones every request needs. The time itself is printed by
``make package`` and ``make bench``.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Modules `import app` must not load, and what each would cost a cold start (measured with
# `python -X importtime`, docs/deploy.md "Cold start").
HEAVY_AT_IMPORT = {
    "pydantic": "request validation and settings: ~50 ms with pydantic-core",
    "pydantic_settings": "the settings object",
    "pynamodb.models": "the store's models: ~30 ms",
    "structlog": "logging, with asyncio: ~15 ms",
    "email_validator": "EmailStr of the sign-in routes: ~17 ms",
    "stripe": "billing: ~0.3 s",
    "argon2": "share passwords",
    "python_multipart": "multipart share uploads",
    "multipart": "multipart share uploads (the old import name)",
    "chalicelib.services.share_html": "rewriting share pages' HTML",
    "chalicelib.store.models": "the store",
    "chalicelib.settings": "pydantic-settings",
}
# Modules only some routes need: a feedback post or a widget load must not pull them in.
ROUTE_SPECIFIC = ("stripe", "argon2", "python_multipart", "multipart", "email_validator",
                  "chalicelib.services.share_html", "chalicelib.services.stripe_events", "chalicelib.services.accounts")


def run_fresh(code: str) -> dict:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    line = [line for line in result.stdout.splitlines() if line.startswith("MODULES ")][-1]
    return json.loads(line[len("MODULES "):])


IMPORT_APP = """
import json, sys
import app
print("MODULES " + json.dumps({"loaded": sorted(sys.modules)}))
"""


def test_import_app_loads_no_heavy_module():
    loaded = set(run_fresh(IMPORT_APP)["loaded"])
    assert "app" in loaded and "chalicelib.api.spikes" in loaded
    assert sorted(set(HEAVY_AT_IMPORT) & loaded) == []


# Everything every request needs (settings, the store, logging) is set up first; then each
# request's new modules are recorded.
REQUESTS = """
import json, sys
from moto import mock_aws
from chalice.test import Client
with mock_aws():
    from app import app
    from chalicelib import deps
    from chalicelib.store.setup import create_bucket, create_tables
    create_tables(deps.settings(), deps.dynamodb_client())
    create_bucket(deps.settings(), deps.s3_client())
    deps.ses_client().verify_email_identity(EmailAddress="no-reply@spikes.test")
    out = {}
    with Client(app, stage_name="test") as client:
        def request(name, method, path, body=None):
            before = set(sys.modules)
            response = client.http.request(method, path, headers={"Content-Type": "application/json"},
                                           body=json.dumps(body) if body is not None else None)
            out[name] = {"status": response.status_code, "new": sorted(set(sys.modules) - before)}
        request("health", "GET", "/health")
        request("widget", "GET", "/widget.js")
        request("post", "POST", "/spikes", {"type": "page", "projectKey": "cold", "rating": "love"})
        request("list", "GET", "/spikes?project=cold")
        request("login", "POST", "/auth/login", {"email": "cold@example.com"})
print("MODULES " + json.dumps(out))
"""


def test_routes_load_only_what_they_need():
    routes = run_fresh(REQUESTS)
    assert [routes[name]["status"] for name in ("health", "widget", "post", "list", "login")] == [200, 200, 201, 200, 200], routes
    for name in ("health", "widget", "post", "list"):
        assert sorted(set(ROUTE_SPECIFIC) & set(routes[name]["new"])) == [], name
    # The feedback routes did load their own modules: the test sees what a route imports.
    assert "chalicelib.services.spike_posts" in routes["post"]["new"]
    assert "email_validator" in routes["login"]["new"] and "chalicelib.services.accounts" in routes["login"]["new"]


def test_the_cold_start_benchmark_first_request_is_answered_as_on_a_deployed_stage():
    """``make bench`` times GET / in a fresh interpreter with a deployed stage's settings and an
    API Gateway event; an event the app refuses would time an error page, and stop the run."""
    from bench import run as bench_run
    code = bench_run.COLD_APP + "\nprint('BODY ' + response['body'])\n"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=bench_run.cold_start_env(),
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    status = result.stdout.split("BENCH_COLD ")[1].split()[2]
    assert status == "200", result.stdout[-2000:]
    body = result.stdout.split("BODY ", 1)[1]
    # Its links are built from the domain API Gateway served it on, with the stage's prefix.
    assert "https://bench.execute-api.us-east-1.amazonaws.com/api/" in body
