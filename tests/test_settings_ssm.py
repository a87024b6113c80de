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


def test_missing_secret_key_answers_503_until_make_secrets_creates_it(client, env, capsys):
    env(SSM_PARAMETER_PATH=PATH)
    for method, path in (("GET", "/"), ("GET", "/spikes?project=p"), ("POST", "/auth/login"), ("GET", "/nope")):
        status, body, headers = call(client, method, path, {"email": "a@example.com"} if method == "POST" else None)
        assert status == 503, (path, body)
        assert body["code"] == "SERVICE_UNAVAILABLE" and body["request_id"]
        assert headers["Retry-After"] == "30"
    events = [e for e in log_events(capsys) if e.get("event") == "settings.ssm_missing"]
    assert events and events[0]["missing"] == [PATH + "secret_key"] and "make secrets" in events[0]["fix"]

    written = secrets.ensure_secrets(boto3.client("ssm"), "test", out=io.StringIO())
    assert set(written) == {"secret_key", "token"}
    status, body, _ = call(client, "GET", "/")
    assert status == 200, body


def test_an_unreadable_parameter_store_answers_503(client, env, capsys, monkeypatch):
    env(SSM_PARAMETER_PATH=PATH)
    import botocore.client
    original = botocore.client.BaseClient._make_api_call

    def refuse(self, operation, params):
        if operation == "GetParameters":
            raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, operation)
        return original(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", refuse)
    status, body, headers = call(client, "GET", "/spikes?project=p")
    assert status == 503 and headers["Retry-After"] == "30", body
    events = [e for e in log_events(capsys) if e.get("event") == "settings.ssm_unreadable"]
    assert events and events[0]["error"] == "ClientError" and events[0]["path"] == PATH


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
