"""The code package, not the source tree: handlers imported from the unzipped deployment.zip in
a fresh interpreter without site-packages (what Lambda runs), called with API Gateway proxy
events and a scheduled event, against the stack `make deploy` created in a moto server."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any, Dict, Iterator, List

import boto3
import pytest

from tests.deploy.conftest import MAIL_FROM, deploy_stack, function_environment
from tests.test_cold_start import HEAVY_AT_IMPORT

pytestmark = pytest.mark.usefixtures("clean_spikes_env")

# Runs inside the package: one cold start, then each (handler, event) in order.
DRIVER = r"""
import importlib, json, sys, time, uuid
started = time.perf_counter()
import app
import_ms = (time.perf_counter() - started) * 1000
loaded_at_import = sorted(sys.modules)

class Context:
    function_name = "spikes-prod-api"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:spikes-prod-api"
    def __init__(self):
        self.aws_request_id = str(uuid.uuid4())
        self._deadline = time.monotonic() + 25
    def get_remaining_time_in_millis(self):
        return int((self._deadline - time.monotonic()) * 1000)

results = []
for handler, event in json.load(sys.stdin):  # handler: the template's "module.function"
    module, _, name = handler.rpartition(".")
    results.append(getattr(importlib.import_module(module), name)(event, Context()))
print("RESULTS " + json.dumps({"import_ms": import_ms, "loaded_at_import": loaded_at_import,
                               "paths": [p for p in sys.path if p], "results": results}))
"""


def proxy_event(method: str, path: str, resource: str, body: Any = None, query: Dict[str, str] = None,
                headers: Dict[str, str] = None) -> Dict[str, Any]:
    headers = {"Host": "abc123.execute-api.us-east-1.amazonaws.com", "User-Agent": "pytest",
               "X-Forwarded-For": "203.0.113.9", **({"Content-Type": "application/json"} if body is not None else {}),
               **(headers or {})}
    return {
        "resource": resource, "path": path, "httpMethod": method, "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": query, "multiValueQueryStringParameters": {k: [v] for k, v in (query or {}).items()} or None,
        "pathParameters": None, "stageVariables": None,
        "requestContext": {"resourcePath": resource, "httpMethod": method, "path": f"/api{path}", "stage": "api",
                           "requestId": "gw-request-1", "domainName": headers["Host"], "apiId": "abc123",
                           "identity": {"sourceIp": "203.0.113.9", "userAgent": "pytest"}},
        "body": json.dumps(body) if body is not None else None, "isBase64Encoded": False,
    }


SCHEDULED_EVENT = {"version": "0", "id": "e1", "detail-type": "Scheduled Event", "source": "aws.events",
                   "account": "123456789012", "time": "2026-12-01T00:15:00Z", "region": "us-east-1",
                   "resources": ["arn:aws:events:us-east-1:123456789012:rule/quota"], "detail": {}}


@pytest.fixture(scope="module")
def moto_server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def stage(built, moto_server, monkeypatch, tmp_path) -> Dict[str, Any]:
    """The stack deployed into the moto server, and the package unzipped as Lambda would."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    requests_reset = __import__("requests").post(f"{moto_server}/moto-api/reset")
    assert requests_reset.status_code == 200
    deployed = deploy_stack(built)
    environment = function_environment("spikes-prod-api")
    task = tmp_path / "task"
    with zipfile.ZipFile(Path(built["dir"]) / "deployment.zip") as package:
        package.extractall(task)
    return {"task": task, "environment": environment, "outputs": deployed["outputs"], "endpoint": moto_server}


def run_package(stage: Dict[str, Any], calls: List[tuple]) -> Dict[str, Any]:
    env = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8", **stage["environment"],
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true", "PYTHONDONTWRITEBYTECODE": "1",
           "AWS_LAMBDA_FUNCTION_NAME": "spikes-prod-api",
           # Lambda reaches AWS itself; here every client goes to the moto server.
           "SPIKES_AWS_ENDPOINT_URL": stage["endpoint"]}
    # -S: no site-packages, -E: no PYTHON* from outside: only the package and the standard library.
    result = subprocess.run([sys.executable, "-S", "-E", "-c", DRIVER], cwd=stage["task"], env=env,
                            input=json.dumps(calls), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    line = [line for line in result.stdout.splitlines() if line.startswith("RESULTS ")][-1]
    return {**json.loads(line[len("RESULTS "):]),
            "logs": [line for line in result.stdout.splitlines() if line and not line.startswith("RESULTS ")]}


def body(response: Dict[str, Any]) -> Any:
    return json.loads(response["body"])


def handlers(built) -> Dict[str, str]:
    return {key: value["Properties"]["Handler"] for key, value in built["template"]["Resources"].items()
            if value["Type"] == "AWS::Lambda::Function"}


def test_the_packaged_handlers_answer_proxy_events_against_the_stack(built, stage):
    api, job_handler = handlers(built)["APIHandler"], handlers(built)["QuotaReset"]
    deletions, deliveries = handlers(built)["ShareDeletions"], handlers(built)["WebhookDeliveries"]
    background_exports = handlers(built)["Exports"]
    spike = {"type": "page", "projectKey": "launch-page", "page": "Home", "url": "https://example.com/",
             "rating": "love", "comments": "Ship it", "reviewer": {"id": "r1", "name": "Ada"}}
    calls = [
        (api, proxy_event("GET", "/", "/")),
        (api, proxy_event("POST", "/spikes", "/spikes", spike)),
        (api, proxy_event("GET", "/spikes", "/spikes", query={"project": "launch-page"})),
        (api, proxy_event("POST", "/auth/login", "/auth/login", {"email": "reviewer@example.com"})),
        (api, proxy_event("GET", "/widget.js", "/widget.js")),
        (job_handler, SCHEDULED_EVENT),
        (deletions, SCHEDULED_EVENT),
        (deliveries, SCHEDULED_EVENT),
        (background_exports, SCHEDULED_EVENT),
    ]
    out = run_package(stage, calls)
    assert all(str(stage["task"]) in p or "python3" in p for p in out["paths"]), out["paths"]
    health, posted, listed, login, widget, job, deleted, delivered, exported = out["results"]
    assert health["statusCode"] == 200 and body(health)["ok"] is True
    assert posted["statusCode"] == 201, posted
    assert listed["statusCode"] == 200, listed
    assert [item["comments"] for item in body(listed)["data"]] == ["Ship it"]
    assert login["statusCode"] == 200, login
    assert widget["statusCode"] == 200 and "javascript" in widget["headers"]["Content-Type"]
    assert isinstance(job, dict), job
    # The other jobs, with nothing left to do: each read its settings and made its first query.
    assert exported == {"pending": 0, "advanced": 0, "finished": 0, "failed": 0, "parked": 0, "stopped": None}, exported
    assert deleted == {"pending": 0, "finished": 0, "failed": 0, "abandoned_uploads_removed": 0,
                       "abandoned_uploads_failed": 0, "unfinished_uploads_expired": 0, "unfinished_uploads_kept": 0,
                       "unfinished_uploads_failed": 0, "claims_pending": 0, "claims_finished": 0,
                       "claims_failed": 0}, deleted
    assert delivered == {"attempted": 0, "delivered": 0, "retrying": 0, "failed": 0, "paused": 0, "deferred": 0, "held_ended": 0,
                         "releases_failed": 0, "releases_parked": 0, "releases_stopped": None, "errors": 0}, delivered

    # The spike is in the stack's table, the mail went out through SES from the deploy's sender
    # with a link on the public base URL the deploy set.
    table = stage["outputs"]["SpikesTableName"]
    assert boto3.client("dynamodb").scan(TableName=table)["Count"] == 1
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends
    (mail,) = ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages
    assert mail.source == f"Spikes <{MAIL_FROM}>" and mail.destinations["ToAddresses"] == ["reviewer@example.com"]
    assert f"{stage['outputs']['ApiUrl']}/auth/verify?token=" in mail.body


def test_links_are_right_before_the_deploy_sets_the_public_url(built, stage):
    """The first deploy creates the stack before the API's URL exists (the functions cannot
    reference the API that references them), then sets SPIKES_PUBLIC_BASE_URL in a second
    update. In between the functions run with it empty: links then come from the domain and
    stage API Gateway says it served the request on (never the Host header), the same URL."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends
    assert stage["environment"]["SPIKES_PUBLIC_BASE_URL"] == stage["outputs"]["ApiUrl"]  # after the update
    first = {**stage, "environment": {**stage["environment"], "SPIKES_PUBLIC_BASE_URL": ""}}
    api = handlers(built)["APIHandler"]
    login = proxy_event("POST", "/auth/login", "/auth/login", {"email": "early@example.com"},
                        headers={"Host": "attacker.example"})
    login["requestContext"]["domainName"] = "abc123.execute-api.us-east-1.amazonaws.com"
    out = run_package(first, [(api, login)])
    assert out["results"][0]["statusCode"] == 200, out["results"]
    (mail,) = [m for m in ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages
               if m.destinations["ToAddresses"] == ["early@example.com"]]
    assert "https://abc123.execute-api.us-east-1.amazonaws.com/api/auth/verify?token=" in mail.body
    assert "attacker.example" not in mail.body


def test_heavy_modules_wait_for_the_routes_that_use_them(stage):
    out = run_package(stage, [])
    assert sorted(set(HEAVY_AT_IMPORT) & set(out["loaded_at_import"])) == [], "imported by `import app` on a cold start"


def test_the_package_ships_only_what_runs(built):
    with zipfile.ZipFile(Path(built["dir"]) / "deployment.zip") as package:
        names = package.namelist()
    tops = {name.split("/")[0] for name in names}
    for unwanted in ("pip", "setuptools", "wheel", "click", "inquirer", "yaml", "pytest", "moto", "chalicelib/__pycache__"):
        assert unwanted not in tops, unwanted
    assert "chalice/app.py" in names and "chalice/cli/__init__.py" not in names
    assert "app.py" in names and "boto3/__init__.py" in names
    compiled = [name for name in names if name.endswith(".pyc")]
    sources = [name for name in names if name.endswith(".py")]
    assert len(compiled) >= len(sources) * 0.95, "bytecode compiled in"
    assert any(name.startswith("chalicelib/__pycache__/settings.cpython-311") for name in names)


def test_a_stage_without_its_secret_answers_503_not_500(built, stage):
    boto3.client("ssm").delete_parameter(Name="/spikes/prod/secret_key")
    api = handlers(built)["APIHandler"]
    out = run_package(stage, [(api, proxy_event("GET", "/spikes", "/spikes", query={"project": "p"})),
                              (api, proxy_event("GET", "/", "/"))])
    for response in out["results"]:
        assert response["statusCode"] == 503, response
        assert response["headers"]["Retry-After"] == "30"
        assert body(response)["request_id"]
    # CloudWatch gets the failure as JSON, like every other line, though the settings (which
    # carry the log level) never loaded.
    logged = [json.loads(line) for line in out["logs"]]
    assert [entry["level"] for entry in logged if entry["event"] == "settings.ssm_missing"] == ["error", "error"]
    assert [entry["status"] for entry in logged if entry["event"] == "request"] == [503, 503]
