"""Property-based fuzzing of the local server against its own /openapi.json (schemathesis):
every operation under /v1, bounded in examples and time, must answer without a 5xx and
without contradicting the document (status codes, content types, headers, bodies)."""
from __future__ import annotations

import time
import traceback
from typing import Dict

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings


pytestmark = pytest.mark.e2e

EXAMPLES_PER_OPERATION = 25
TIME_BUDGET_SECONDS = 240
# Validation is stricter than JSON Schema can say (deliverable e-mail domains, live tokens),
# so "schema-valid data must be accepted" is not a promise the document makes.
EXCLUDED_CHECKS = [schemathesis.checks.positive_data_acceptance]


def test_the_server_keeps_to_its_openapi_document(live_server_factory, stripe_api):
    # Billing against the local fake of Stripe: an unconfigured server's 503s are not what is tested.
    server = live_server_factory(persist=False, env={
        "RATE_LOGIN_PER_IP": "1000", "RATE_VERIFY_PER_MINUTE": "1000", "RATE_SIGN_IN_MAILS_PER_HOUR": "100000", "RATE_SPIKES_PER_MINUTE": "1000", "RATE_EXPORTS_PER_MINUTE": "1000", "RATE_LISTINGS_PER_MINUTE": "100000", "STRIPE_SECRET_KEY": stripe_api.api_key,
        "STRIPE_PRICE_ID": "price_pro", "STRIPE_API_BASE": stripe_api.url, "STRIPE_MAX_NETWORK_RETRIES": "0",
        "STRIPE_WEBHOOK_SECRET": "whsec_fuzz", "STRIPE_EVENT_DESTINATION_SECRET": "whsec_fuzz_destination",
        "BILLING_SUCCESS_URL": "https://app.example/thanks",
        "BILLING_CANCEL_URL": "https://app.example/cancel"})
    token = server.sign_in("fuzz@example.com")
    schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
    # The versioned paths (the unversioned ones are the same views); not the Swagger UI assets.
    schema = schema.include(path_regex=r"^/v1").exclude(path_regex=r"^/v1/docs/")
    failures: Dict[str, str] = {}
    started = time.monotonic()
    operations = 0
    # Last: replacing or revoking the token the other operations run with (a fuzzed logout is a
    # valid one, "everywhere" too: before them, every operation after it only saw 401).
    all_operations = sorted((result.ok() for result in schema.get_all_operations()),
                            key=lambda op: op.path in ("/v1/auth/logout", "/v1/auth/rotate-token"))
    for operation in all_operations:
        if time.monotonic() - started > TIME_BUDGET_SECONDS:
            break
        operations += 1

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, phases=[Phase.generate],
                  derandomize=True,  # the same examples on every run: a failure reproduces
                  suppress_health_check=list(HealthCheck))
        def check(case):
            if time.monotonic() - started > TIME_BUDGET_SECONDS:
                return
            try:
                case.call_and_validate(base_url=server.url, headers={"Authorization": f"Bearer {token}"},
                                       excluded_checks=EXCLUDED_CHECKS, timeout=30)
            except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - reported below, one per operation
                failures.setdefault(operation.label, "".join(traceback.format_exception(exc))[-2500:])

        check()
    assert operations >= 40, "the document lost operations"
    assert failures == {}, "\n\n".join(f"== {label}\n{text}" for label, text in failures.items())
