"""Secrets from SSM: a missing or unreadable parameter answers 503 with Retry-After on every
route (never a 500) and logs what is wrong; `make secrets` fixes it without a redeploy."""
from __future__ import annotations

import io
import json

import boto3
from botocore.exceptions import ClientError

from infra import secrets
from tests.conftest import call

PATH = "/spikes/test/"  # the stage the API tests run as: its generated policy may read it


def log_events(capsys) -> list:
    out = capsys.readouterr().out
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_a_missing_secret_key_is_a_503_until_make_secrets_creates_it(aws, monkeypatch, capsys):
    """Outside the local stages (over HTTP: tests/deploy/test_packaged_handlers.py)."""
    from chalicelib.errors import DependencyUnavailable
    from chalicelib.settings import get_settings, reset_settings
    monkeypatch.setenv("SPIKES_STAGE", "prod")
    monkeypatch.setenv("SPIKES_SSM_PARAMETER_PATH", "/spikes/prod/")
    reset_settings()
    try:
        for _ in range(2):  # not cached: every request tries again
            try:
                get_settings()
                raise AssertionError("settings without secret_key")
            except DependencyUnavailable as exc:
                assert exc.status == 503 and exc.headers["Retry-After"] == "30"
        events = [e for e in log_events(capsys) if e.get("event") == "settings.ssm_missing"]
        assert len(events) == 2 and events[0]["missing"] == ["/spikes/prod/secret_key"]
        assert "make secrets" in events[0]["fix"]

        assert set(secrets.ensure_secrets(boto3.client("ssm"), "prod", out=io.StringIO())) == {"secret_key", "token"}
        assert get_settings().stage == "prod" and get_settings().admin_token
    finally:
        reset_settings()


def test_routes_answer_503_while_the_configuration_is_unreadable(client, env, capsys, monkeypatch):
    env(SSM_PARAMETER_PATH=PATH)
    import botocore.client
    original = botocore.client.BaseClient._make_api_call

    def refuse(self, operation, params):
        if operation == "GetParameters":
            raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, operation)
        return original(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", refuse)
    for method, path in (("GET", "/"), ("GET", "/spikes?project=p"), ("POST", "/auth/login"), ("GET", "/nope")):
        status, body, headers = call(client, method, path, {"email": "a@example.com"} if method == "POST" else None)
        assert status == 503, (path, body)
        assert body["code"] == "SERVICE_UNAVAILABLE" and body["request_id"]
        assert headers["Retry-After"] == "30"
    events = [e for e in log_events(capsys) if e.get("event") == "settings.ssm_unreadable"]
    assert events and events[0]["error"] == "ClientError" and events[0]["path"] == PATH
    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", original)
    assert call(client, "GET", "/")[0] == 200  # recovers without a redeploy


def test_settings_are_read_from_the_stages_parameters(client, env):
    """The API function reads its parameters (and its policy allows it: tests/aws_calls.py)."""
    secrets.ensure_secrets(boto3.client("ssm"), "test", out=io.StringIO())
    env(SSM_PARAMETER_PATH=PATH)
    status, _, _ = call(client, "GET", "/")
    assert status == 200


def test_every_scheduled_job_reads_the_stages_parameters(client, env):
    """Each job's function reads the stage's parameters on its cold start, under its own role
    (tests/aws_calls.py checks the call against each generated policy)."""
    from chalicelib import deps
    from infra.policy import SCHEDULED
    from tests.test_usage import SCHEDULE_EVENT
    secrets.ensure_secrets(boto3.client("ssm"), "test", out=io.StringIO())
    token = boto3.client("ssm").get_parameter(Name=PATH + "token", WithDecryption=True)["Parameter"]["Value"]
    env(SSM_PARAMETER_PATH=PATH)
    for job in SCHEDULED:
        deps.reset()  # a cold start of this function
        result = client.lambda_.invoke(job, SCHEDULE_EVENT)
        assert isinstance(result.payload, dict) and "errorMessage" not in result.payload, (job, result.payload)
        assert deps.settings().admin_token == token, job


def test_secrets_are_generated_once_and_never_printed_but_the_admin_token(aws, monkeypatch):
    ssm = boto3.client("ssm")
    monkeypatch.setenv("SPIKES_STRIPE_SECRET_KEY", "sk_test_from_env")
    out = io.StringIO()
    assert set(secrets.ensure_secrets(ssm, "test", out=out)) == {"secret_key", "token", "stripe_secret_key"}
    values = {p["Name"]: p["Value"] for p in ssm.get_parameters_by_path(Path=PATH, WithDecryption=True)["Parameters"]}
    printed = out.getvalue()
    assert values[PATH + "token"] in printed
    assert values[PATH + "secret_key"] not in printed and "sk_test_from_env" not in printed
    assert "stripe_webhook_secret" in printed  # named as still missing
    again = io.StringIO()
    assert secrets.ensure_secrets(ssm, "test", out=again) == []
    assert values[PATH + "token"] not in again.getvalue()
    assert secrets.ensure_secrets(ssm, "test", rotate=["secret_key"], out=io.StringIO()) == ["secret_key"]
    types = {p["Type"] for p in ssm.describe_parameters()["Parameters"]}
    assert types == {"SecureString"}
