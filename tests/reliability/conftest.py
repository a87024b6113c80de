"""The reliability suite (docs/reliability.md): `make test-reliability`, called by `make test`.

In-process parts run the app through ``chalice.test.Client`` on Amazon's DynamoDB Local (S3 and
SES on moto); the load part runs the real local server. Faults are injected at the client
layer (tests/reliability/faults.py). Every test here is marked ``reliability``; the figures
they count are printed as a table at the end of the run.
"""
from __future__ import annotations

import uuid
from typing import Iterator

import pytest

from tests.reliability import faults, summary

faults.install()  # at collection: before any AWS client exists

LIFTED_LIMITS = {name: "1000000" for name in (
    "RATE_SPIKES_PER_MINUTE", "RATE_SHARES_PER_MINUTE", "RATE_PASSWORD_PER_MINUTE", "RATE_PASSWORD_PER_SHARE_PER_MINUTE",
    "RATE_LOGIN_PER_ADDRESS", "RATE_LOGIN_PER_IP", "RATE_POLL_PER_MINUTE", "RATE_VERIFY_PER_MINUTE",
    "RATE_SIGN_IN_MAILS_PER_HOUR", "RATE_EXPORTS_PER_MINUTE", "RATE_LISTINGS_PER_MINUTE",
    "RATE_SHARE_LISTINGS_PER_MINUTE")}


def pytest_configure(config):
    config.addinivalue_line("markers", "reliability: the reliability suite (make test-reliability)")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/reliability/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.reliability)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if summary.ran():
        terminalreporter.write_line("")
        for line in summary.table().splitlines():
            terminalreporter.write_line(line)


@pytest.fixture
def counted(monkeypatch):
    """Counts every request the chalice test client sends during the test."""
    from chalice import test as chalice_test
    request = chalice_test.TestHTTPClient.request

    def counting(self, *args, **kwargs):
        summary.add("requests sent")
        return request(self, *args, **kwargs)

    monkeypatch.setattr(chalice_test.TestHTTPClient, "request", counting)


@pytest.fixture
def ddb_local(dynamodb_local_endpoint, monkeypatch) -> Iterator[str]:
    """A fresh stage on DynamoDB Local (own table prefix), S3 and SES on moto, limits lifted."""
    from moto import mock_aws

    from chalicelib import deps
    from tests.conftest import _provision
    if dynamodb_local_endpoint is None:
        pytest.skip("DynamoDB Local disabled (--no-dynamodb-local)")
    with mock_aws():
        monkeypatch.setenv("SPIKES_DYNAMODB_ENDPOINT_URL", dynamodb_local_endpoint)
        monkeypatch.setenv("SPIKES_TABLE_PREFIX", f"r{uuid.uuid4().hex[:10]}-")
        for name, value in LIFTED_LIMITS.items():
            monkeypatch.setenv(f"SPIKES_{name}", value)
        _provision(dynamodb_local_endpoint)
        yield dynamodb_local_endpoint
    deps.reset()


@pytest.fixture
def app_client(ddb_local, counted):
    from chalice.test import Client

    from app import app
    with Client(app, stage_name="test") as test_client:
        yield test_client
