"""Fixtures for the deploy tests: the stage packaged once per session (``make package``'s own
code, into build/tests/), and an emulated AWS account (moto) with the stack created in it by
``make deploy``'s own code."""
from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any, Dict, Iterator

import pytest

from infra import package

ROOT = Path(__file__).resolve().parents[2]
BUILD_ROOT = ROOT / "build" / "tests"
STAGE = "prod"
MAIL_FROM = "no-reply@spikes.example"


@pytest.fixture(scope="session")
def built() -> Dict[str, Any]:
    """build/tests/prod/: deployment.zip, sam.json, template.json (Chalice's dependency cache
    in build/tests/.projects/ makes repeated runs quick)."""
    info = package.build(STAGE, BUILD_ROOT)
    out = Path(info["dir"])
    info["sam"] = json.loads((out / "sam.json").read_text())
    info["template"] = json.loads((out / "template.json").read_text())
    return info


def emulate_api_gateway_body() -> None:
    """moto's CloudFormation ignores a RestApi's Body (Chalice's Swagger), then refuses the
    Deployment of an API without methods. Give each emulated API one mock method so the rest
    of the stack can be created; the routes themselves are tested through proxy events."""
    from moto.apigateway import models as apigateway
    if getattr(apigateway.RestAPI, "_spikes_patched", False):
        return
    original = apigateway.RestAPI.create_from_cloudformation_json.__func__

    def create(cls, *args, **kwargs):
        api = original(cls, *args, **kwargs)
        root = api.get_resource_for_path("/")
        root.add_method("GET", "NONE", None)
        root.add_integration("GET", "MOCK", "", request_templates={})
        return api

    apigateway.RestAPI.create_from_cloudformation_json = classmethod(create)
    apigateway.RestAPI._spikes_patched = True


def emulate_tls_requests() -> None:
    """moto applies a bucket policy's statements without their conditions, so a TLS-only Deny
    (``aws:SecureTransport`` false) refuses every request. boto3 speaks TLS to S3, where such a
    statement never applies: it is left out of moto's evaluation, every other one kept."""
    import json
    from moto.iam.access_control import IAMPolicy, PermissionResult
    from moto.s3 import models as s3
    if getattr(s3.FakeBucket, "_spikes_patched", False):
        return
    plain_http_only = {"Bool": {"aws:SecureTransport": "false"}}

    def get_permission(bucket, action, resource):
        if bucket.policy is None:
            return PermissionResult.NEUTRAL
        policy = json.loads(bucket.policy)
        policy["Statement"] = [statement for statement in policy["Statement"]
                               if statement.get("Condition") != plain_http_only]
        if not policy["Statement"]:
            return PermissionResult.NEUTRAL
        return IAMPolicy(json.dumps(policy)).is_action_permitted(action, resource)

    s3.FakeBucket.get_permission = get_permission
    s3.FakeBucket._spikes_patched = True


def deploy_stack(built: Dict[str, Any], **options: Any) -> Dict[str, Any]:
    from infra.deploy import Deployer
    emulate_api_gateway_body()
    emulate_tls_requests()
    out = io.StringIO()
    outputs = Deployer(out=out).deploy(STAGE, BUILD_ROOT, {"mail_from": MAIL_FROM, **options})
    return {"outputs": outputs, "log": out.getvalue()}


def function_environment(function_name: str) -> Dict[str, str]:
    import boto3
    return boto3.client("lambda").get_function_configuration(FunctionName=function_name)["Environment"]["Variables"]


@pytest.fixture
def clean_spikes_env(monkeypatch) -> Iterator[None]:
    """No SPIKES_* variable of the test suite leaks into what a deploy test sets itself."""
    for key in [k for k in os.environ if k.startswith("SPIKES_")]:
        monkeypatch.delenv(key)
    from chalicelib import deps
    deps.reset()
    yield
    deps.reset()
