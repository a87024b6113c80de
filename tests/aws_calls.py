"""Every AWS call the app makes while the tests drive it, checked against the deploy's IAM policy.

While a test calls the app through ``chalice.test.Client`` (an HTTP request runs as the API
function, ``lambda_.invoke("quota_reset")`` as the quota function), or runs a job's code
inside ``acting_as(function)``, each botocore call (and
each presigned URL, which S3 authorizes with the signer's role) is turned into the IAM
actions and resources AWS would check. A call the function's generated policy does not allow
fails that test at once. At the end of a run of the whole in-process suite, every grant of the
policy must have been used by some call (``unused_grants``), so the policy is exactly what
the code needs.
"""
from __future__ import annotations

import contextlib
import fnmatch
import functools
import json
import os
from typing import Any, Dict, Iterator, List, Optional, Set, Tuple

from infra import policy, stack

ACCOUNT = "123456789012"
REGION = "us-east-1"
STAGE = "test"
# Grants the in-process tests cannot exercise, and where they are proven instead.
EXERCISED_ELSEWHERE = {
    (function, "logs:CreateLogStream"): "Lambda's runtime writes the logs" for function in policy.FUNCTIONS}
EXERCISED_ELSEWHERE.update({(function, "logs:PutLogEvents"): "Lambda's runtime writes the logs"
                            for function in policy.FUNCTIONS})

EXERCISED_ELSEWHERE[(policy.USAGE_REPORT_FUNCTION, "ssm:GetParameters")] = "untested: no test reads SSM in it"

_state: Dict[str, Any] = {"function": None, "installed": False}
USED: Dict[str, Set[Tuple[int, str]]] = {function: set() for function in policy.FUNCTIONS}
CALLED: Dict[str, Set[Tuple[str, str]]] = {function: set() for function in policy.FUNCTIONS}
NEEDED: Set[Tuple[str, str]] = set()


class PolicyDenied(AssertionError):
    pass


def rendered_policy(function: str) -> dict:
    """The function's policy as deployed for the test stage in the test account."""
    settings_names = stack.table_names(STAGE)
    document = policy.function_policy(STAGE, function, settings_names, stack.ssm_path(STAGE))
    text = json.dumps(document)
    for placeholder, value in {"${AWS::Partition}": "aws", "${AWS::Region}": REGION, "${AWS::AccountId}": ACCOUNT,
                               "${ShareBucket}": "spikes-test-files", "${MailFrom}": "no-reply@spikes.test",
                               "${MailDomain}": "spikes.test"}.items():
        text = text.replace(placeholder, value)
    assert "${" not in text, text
    return json.loads(text)


@functools.lru_cache(maxsize=None)  # the code's policy is fixed for the run; rendering it costs ~1 ms a call
def _grants(function: str) -> Tuple[Tuple[int, str, str], ...]:
    """(statement index, action, resource pattern) of every grant."""
    out = []
    for number, statement in enumerate(rendered_policy(function)["Statement"]):
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        for action in statement["Action"]:
            for resource in resources:
                out.append((number, action, resource))
    return tuple(out)


@functools.lru_cache(maxsize=1)
def _stage_table_names() -> Dict[str, str]:
    """The test stage's table names by logical name (fixed for the run)."""
    return stack.table_names(STAGE)


def _normalise(kind: str, name: str) -> str:
    """Tests on DynamoDB Local use a random table prefix: map it back to the stage's names."""
    from chalicelib import deps
    from chalicelib.store.tables import table_name
    settings = deps.settings()
    if kind == "table":
        stage_names = _stage_table_names()
        actual = {table_name(settings, logical): logical for logical in stage_names}
        return stage_names[actual[name]] if name in actual else name
    return "spikes-test-files" if name == settings.bucket_name else name


def _table(name: str, index: Optional[str] = None) -> str:
    arn = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{_normalise('table', name)}"
    return f"{arn}/index/{index}" if index else arn


def _object(bucket: str, key: str) -> str:
    return f"arn:aws:s3:::{_normalise('bucket', bucket)}/{key}"


TRANSACT = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem", "ConditionCheck": "ConditionCheckItem"}
S3_OBJECT_ACTIONS = {"GetObject": "GetObject", "HeadObject": "GetObject", "PutObject": "PutObject",
                     "DeleteObject": "DeleteObject", "CreateMultipartUpload": "PutObject", "UploadPart": "PutObject",
                     "CompleteMultipartUpload": "PutObject", "AbortMultipartUpload": "AbortMultipartUpload",
                     "put_object": "PutObject", "get_object": "GetObject"}


def iam_requests(service: str, operation: str, params: dict) -> List[List[Tuple[str, str]]]:
    """What IAM checks for one call: a list of requirements, each satisfied by any one of its
    (action, resource) alternatives."""
    if service == "dynamodb":
        if operation in ("BatchGetItem", "BatchWriteItem"):
            return [[(f"dynamodb:{operation}", _table(name))] for name in params["RequestItems"]]
        if operation == "TransactWriteItems":
            needs = []
            for item in params["TransactItems"]:
                (kind, body), = item.items()
                needs.append([(f"dynamodb:{TRANSACT[kind]}", _table(body["TableName"]))])
            return needs
        if operation == "TransactGetItems":
            return [[("dynamodb:GetItem", _table(item["Get"]["TableName"]))] for item in params["TransactItems"]]
        return [[(f"dynamodb:{operation}", _table(params["TableName"], params.get("IndexName")))]]
    if service == "s3":
        if operation in ("ListObjectsV2", "ListObjects", "HeadBucket"):
            return [[("s3:ListBucket", f"arn:aws:s3:::{_normalise('bucket', params['Bucket'])}")]]
        if operation == "ListMultipartUploads":
            return [[("s3:ListBucketMultipartUploads", f"arn:aws:s3:::{_normalise('bucket', params['Bucket'])}")]]
        if operation == "DeleteObjects":
            return [[("s3:DeleteObject", _object(params["Bucket"], item["Key"]))] for item in params["Delete"]["Objects"]]
        if operation == "CopyObject":
            source = params["CopySource"]
            if isinstance(source, str):
                bucket, _, key = source.lstrip("/").partition("/")
            else:
                bucket, key = source["Bucket"], source["Key"]
            return [[("s3:GetObject", _object(bucket, key))], [("s3:PutObject", _object(params["Bucket"], params["Key"]))]]
        if operation in S3_OBJECT_ACTIONS:
            return [[(f"s3:{S3_OBJECT_ACTIONS[operation]}", _object(params["Bucket"], params["Key"]))]]
    if service == "ses" and operation in ("SendEmail", "SendRawEmail"):
        sender = params["Source"].rsplit("<", 1)[-1].rstrip(">").strip()
        base = f"arn:aws:ses:{REGION}:{ACCOUNT}:identity/"
        needs = [[("ses:SendEmail", base + sender), ("ses:SendEmail", base + sender.split("@", 1)[1])]]
        if params.get("ConfigurationSetName"):
            needs.append([("ses:SendEmail", f"arn:aws:ses:{REGION}:{ACCOUNT}:configuration-set/{params['ConfigurationSetName']}")])
        return needs
    if service == "ssm" and operation == "GetParameters":
        return [[("ssm:GetParameters", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{name}")] for name in params["Names"]]
    return [[(f"{service}:{operation}", "*")]]  # unknown to this map: no policy allows it


def check(function: str, service: str, operation: str, params: dict) -> None:
    grants = _grants(function)
    for alternatives in iam_requests(service, operation, params):
        matched = [(number, action, pattern) for action, resource in alternatives
                   for number, granted, pattern in grants if granted == action and fnmatch.fnmatchcase(resource, pattern)]
        if not matched:
            if os.environ.get("AWS_CALLS_LEARN"):  # list what is missing instead of failing
                NEEDED.add((function, str(alternatives[0])))
                continue
            raise PolicyDenied(f"{policy.function_name(STAGE, function)} called {service}:{operation} needing "
                               f"{alternatives}, which its generated policy (infra/policy.py) does not allow")
        for number, action, pattern in matched:
            USED[function].add((number, f"{action} {pattern}"))
        CALLED[function].add((service, operation))


@contextlib.contextmanager
def running_as(function: str) -> Iterator[None]:
    """Check the AWS calls of a block as ``function``'s (a scheduled service a test calls
    directly, with arguments a Lambda invocation cannot pass, such as the time)."""
    previous, _state["function"] = _state["function"], function
    try:
        yield
    finally:
        _state["function"] = previous


def unused_grants() -> Dict[str, List[str]]:
    out: Dict[str, List[str]] = {}
    for function in policy.FUNCTIONS:
        used = {grant for _, grant in USED[function]}
        missing = [f"{action} {pattern}" for _, action, pattern in _grants(function)
                   if f"{action} {pattern}" not in used and (function, action) not in EXERCISED_ELSEWHERE]
        if missing:
            out[function] = missing
    return out


def _service(client: Any) -> str:
    return client.meta.service_model.service_name


def install() -> None:
    """Patch botocore and Chalice's test client (idempotent). Call before any client exists."""
    if _state["installed"]:
        return
    import botocore.client
    import botocore.signers
    from chalice import test as chalice_test

    make_api_call = botocore.client.BaseClient._make_api_call

    def recording_call(self, operation_name, api_params):
        function = _state["function"]
        if function:
            check(function, _service(self), operation_name, api_params)
        return make_api_call(self, operation_name, api_params)

    botocore.client.BaseClient._make_api_call = recording_call

    presign = botocore.signers.generate_presigned_url

    def recording_presign(self, ClientMethod, Params=None, *args, **kwargs):
        function = _state["function"]
        if function:
            check(function, _service(self), ClientMethod, Params or {})
        return presign(self, ClientMethod, Params, *args, **kwargs)

    botocore.signers.generate_presigned_url = recording_presign

    def as_function(function: str, call):
        def wrapper(*args, **kwargs):
            previous, _state["function"] = _state["function"], function
            try:
                return call(*args, **kwargs)
            finally:
                _state["function"] = previous
        return wrapper

    http_request = chalice_test.TestHTTPClient.request
    chalice_test.TestHTTPClient.request = lambda self, *a, **k: as_function(policy.API_FUNCTION, http_request)(self, *a, **k)
    invoke = chalice_test.TestLambdaClient.invoke

    def invoke_as(self, function_name, *args, **kwargs):
        function = function_name if function_name in policy.SCHEDULED else policy.API_FUNCTION
        return as_function(function, invoke)(self, function_name, *args, **kwargs)

    chalice_test.TestLambdaClient.invoke = invoke_as
    _state["installed"] = True


@contextlib.contextmanager
def acting_as(function: str) -> Iterator[None]:
    """Check the calls of code a test runs directly (a scheduled job's service with a chosen
    clock) against ``function``'s policy, as if that function made them."""
    previous, _state["function"] = _state["function"], function
    try:
        yield
    finally:
        _state["function"] = previous


def coverage_report() -> str:
    lines = [f"needed, not granted: {function} {need}" for function, need in sorted(NEEDED)]
    for function in policy.FUNCTIONS:
        calls = ", ".join(f"{s}:{o}" for s, o in sorted(CALLED[function]))
        lines.append(f"{policy.function_name(STAGE, function)} called: {calls or 'nothing'}")
    return "\n".join(lines)


def suite_modules() -> List[str]:
    """The in-process API test modules: all of them must run for the unused-grant check."""
    from pathlib import Path
    here = Path(__file__).resolve().parent
    return sorted(f"tests.{path.stem}" for path in here.glob("test_*.py"))
