"""Shared fixtures: an in-process AWS (moto), the Chalice test client, mail capture, users.

DynamoDB Local (Amazon's engine) is used by tests that ask for ``store_backend`` (see
tests/dynamodb_local.py); the rest run on moto.
"""
from __future__ import annotations

import collections
import json
import os
import re
import uuid
from typing import Iterator, List, Optional

import pytest

os.environ.update({
    "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
})
os.environ.pop("AWS_PROFILE", None)
TEST_ENV = {
    "SPIKES_STAGE": "test",
    "SPIKES_TOKEN": "admin-test-token",
    "SPIKES_MAIL_MODE": "ses",
    "SPIKES_MAIL_SENDER": "no-reply@spikes.test",
    "SPIKES_MAIL_CONFIGURATION_SET": "spikes-test",  # as deployed: mail events tracked (docs/deploy.md)
}
os.environ.update(TEST_ENV)
for key in [k for k in os.environ if k.startswith("SPIKES_") and k not in TEST_ENV]:
    del os.environ[key]

from tests import aws_calls  # noqa: E402

aws_calls.install()  # before any AWS client exists: checks each call against the deploy's policy

from tests import documented_answers  # noqa: E402

documented_answers.install()  # every answer's status is one GET /openapi.json lists for its route

from chalice.test import Client  # noqa: E402
from moto import mock_aws  # noqa: E402
from pynamodb.connection.base import Connection  # noqa: E402

from chalicelib import deps  # noqa: E402
from chalicelib.api import responses  # noqa: E402
from tests import dynamodb_local, moto_stage  # noqa: E402


def _connections_share_one_loader() -> None:
    """PynamoDB gives each model's connection a botocore session of its own, and each session parses
    DynamoDB's service model again (~0.4 s). configure_models drops the connections whenever the
    table names change, so every DynamoDB Local test (a prefix of its own) and every switch back to
    moto paid that eight times. The sessions here share one loader: the files it reads and caches
    are the same for all of them."""
    import botocore.loaders
    import botocore.session
    from pynamodb.connection import base
    loader = botocore.loaders.create_loader()

    def get_session(*args, **kwargs):
        session = botocore.session.get_session(*args, **kwargs)
        session.register_component("data_loader", loader)
        return session
    base.get_session = get_session


_connections_share_one_loader()
ADMIN_TOKEN = TEST_ENV["SPIKES_TOKEN"]
# Bodies sent without their model's validation (the spike listing) are checked against it here.
responses.CHECKS.preshaped = True


def pytest_sessionfinish(session, exitstatus):
    """After a run of every in-process API test: the generated IAM policies grant nothing that
    no call used (tests/aws_calls.py; a call they deny already failed its test)."""
    config = session.config
    if aws_calls.NEEDED:
        session.config.get_terminal_writer().line(aws_calls.coverage_report(), red=True)
        session.exitstatus = 1
    ran_everything = (not config.option.keyword and session.testsfailed == 0 and exitstatus == 0
                      and "not e2e" in (config.option.markexpr or "not e2e")
                      and set(aws_calls.suite_modules()) <= {item.module.__name__ for item in session.items})
    if not ran_everything:
        return
    unused = aws_calls.unused_grants()
    if unused:
        details = "\n".join(f"  {function}: {grant}" for function, grants in unused.items() for grant in grants)
        session.config.get_terminal_writer().line(
            "Generated IAM policy grants what no API test called (infra/policy.py):\n" + details + "\n"
            + aws_calls.coverage_report(), red=True)
        session.exitstatus = 1


def pytest_addoption(parser):
    parser.addoption("--no-dynamodb-local", action="store_true", help="skip the DynamoDB Local runs")


@pytest.fixture(scope="session")
def dynamodb_local_endpoint(request) -> Iterator[Optional[str]]:
    if request.config.getoption("--no-dynamodb-local"):
        yield None
        return
    with dynamodb_local.running() as endpoint:
        yield endpoint


@pytest.fixture
def env(monkeypatch):
    """Set extra SPIKES_* variables for one test: ``env(FREE_SPIKE_LIMIT="3")``."""
    def set_env(**values: str) -> None:
        for key, value in values.items():
            monkeypatch.setenv(f"SPIKES_{key}", str(value))
        deps.reset()
    yield set_env
    deps.reset()


def _provision(endpoint: Optional[str] = None) -> None:
    if endpoint:
        os.environ["SPIKES_DYNAMODB_ENDPOINT_URL"] = endpoint
        os.environ["SPIKES_TABLE_PREFIX"] = f"t{uuid.uuid4().hex[:10]}-"
    deps.reset()
    settings = deps.settings()
    # store.setup's create_tables and create_bucket; on moto, a copy of what they made for an earlier test
    moto_stage.create_schema(settings, deps.dynamodb_client())
    moto_stage.upgrade_items(settings)
    moto_stage.create_bucket(settings, deps.s3_client())
    deps.ses_client().verify_email_identity(EmailAddress="no-reply@spikes.test")


@pytest.fixture
def from_network(monkeypatch):
    """Send the following requests from an address, as API Gateway reports it (its sourceIp):
    ``from_network("203.0.113.7")``. Rate limits count per client network."""
    from chalicelib.api import inputs

    def use(address: str) -> None:
        monkeypatch.setattr(inputs, "client_ip", lambda request: address)
    return use


@pytest.fixture
def aws(monkeypatch) -> Iterator[None]:
    """A fresh in-process AWS: tables, bucket and a verified SES sender."""
    with mock_aws():
        _provision()
        yield
    deps.reset()


@pytest.fixture
def dynamodb_calls(monkeypatch) -> collections.Counter:
    """How many DynamoDB calls of each operation the code makes (PynamoDB's and the listings')."""
    calls: collections.Counter = collections.Counter()
    original = Connection._make_api_call

    def counting(self, operation_name, operation_kwargs):
        calls[operation_name] += 1
        return original(self, operation_name, operation_kwargs)

    monkeypatch.setattr(Connection, "_make_api_call", counting)
    return calls


@pytest.fixture
def query_limits(monkeypatch) -> List[Optional[int]]:
    """The ``Limit`` of each DynamoDB Query the code makes, in order: how much each read asked for."""
    limits: List[Optional[int]] = []
    original = Connection._make_api_call

    def recording(self, operation_name, operation_kwargs):
        if operation_name == "Query":
            limits.append(operation_kwargs.get("Limit"))
        return original(self, operation_name, operation_kwargs)

    monkeypatch.setattr(Connection, "_make_api_call", recording)
    return limits


@pytest.fixture
def stripe_api():
    """The local fake of Stripe's API (tests/fakes/stripe_api.py) on a free loopback port."""
    from tests.fakes.stripe_api import FakeStripe
    fake = FakeStripe().start()
    yield fake
    fake.stop()


@pytest.fixture(params=["moto", "dynamodb-local"])
def store_backend(request, monkeypatch) -> Iterator[str]:
    """Run a test on moto and again on DynamoDB Local (S3/SES stay on moto)."""
    with mock_aws():
        if request.param == "dynamodb-local":
            endpoint = request.getfixturevalue("dynamodb_local_endpoint")
            if endpoint is None:
                pytest.skip("DynamoDB Local disabled (--no-dynamodb-local)")
            monkeypatch.setenv("SPIKES_DYNAMODB_ENDPOINT_URL", endpoint)
            monkeypatch.setenv("SPIKES_TABLE_PREFIX", f"t{uuid.uuid4().hex[:10]}-")
            _provision(endpoint)
        else:
            _provision()
        yield request.param
    deps.reset()


@pytest.fixture
def client(aws) -> Iterator[Client]:
    from app import app
    with Client(app, stage_name="test") as test_client:
        yield test_client


@pytest.fixture
def backend_client(store_backend) -> Iterator[Client]:
    from app import app
    with Client(app, stage_name="test") as test_client:
        yield test_client


# --- helpers ---------------------------------------------------------------------------------

def call(client: Client, method: str, path: str, body=None, token: Optional[str] = None,
         headers: Optional[dict] = None, raw: Optional[bytes] = None):
    """One request through the test client; returns (status, json-or-None, headers)."""
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    if token:
        all_headers["Authorization"] = f"Bearer {token}"
    payload = raw if raw is not None else (json.dumps(body) if body is not None else None)
    response = client.http.request(method, path, headers=all_headers, body=payload)
    try:
        data = json.loads(response.body) if response.body else None
    except ValueError:
        data = None
    return response.status_code, data, response.headers


def sent_mails(to: Optional[str] = None) -> List[dict]:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends
    messages = ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages
    out = [{"to": m.destinations["ToAddresses"], "subject": m.subject, "body": m.body} for m in messages]
    return [m for m in out if to is None or to.lower() in m["to"]]


def login_token_from_mail(to: str) -> str:
    body = sent_mails(to)[-1]["body"]
    return re.search(r"/auth/verify\?token=([A-Za-z0-9_\-]+)", body).group(1)


def sign_in(client: Client, email: str = "owner@example.com") -> str:
    status, _, _ = call(client, "POST", "/auth/login", {"email": email})
    assert status == 200
    status, data, _ = call(client, "POST", "/auth/verify", {"login_token": login_token_from_mail(email)})
    assert status == 200, data
    return data["token"]


def sign_up_agents(client: Client, count: int) -> list:
    """``count`` agent signups (POST /auth/api-key without credentials): their keys."""
    keys = []
    for _ in range(count):
        status, agent, _ = call(client, "POST", "/auth/api-key", {})
        assert status == 201, agent
        keys.append(agent["api_key"])
    return keys


@pytest.fixture
def user_token(client) -> str:
    return sign_in(client, "owner@example.com")


@pytest.fixture
def key_index_scans(monkeypatch) -> list:
    """The items each Query of the keys' owner index evaluated (DynamoDB's ScannedCount), in order:
    what bounds 334's counting and 348's look-ups are held to."""
    from pynamodb.connection.table import TableConnection

    from chalicelib.store.models import ApiKey
    scanned, querying = [], TableConnection.query

    def query(self, *args, **kwargs):
        response = querying(self, *args, **kwargs)
        if self.table_name == ApiKey.Meta.table_name and kwargs.get("index_name") == ApiKey.owner_index.Meta.index_name:
            scanned.append(response.get("ScannedCount", len(response.get("Items", []))))
        return response
    monkeypatch.setattr(TableConnection, "query", query)
    return scanned
