"""Secrets at rest and bad inputs, on DynamoDB Local: the existing checks, run again here.

- tests/test_secrets_at_rest.py: every flow that creates a secret, then a scan of every table
  finds none of them in clear (hashes and HMACs instead);
- tests/test_hostile_inputs.py: every route, anonymous and signed in, against the corpus of
  bad inputs: never a 5xx, every 4xx in the error envelope, no injected header echoed.
"""
from __future__ import annotations

from tests.conftest import sign_in
from tests.reliability import summary
from tests.test_hostile_inputs import send_corpus
from tests.test_secrets_at_rest import test_a_scan_of_every_table_finds_no_secret_in_clear as scan_for_secrets


def test_no_secret_is_stored_in_clear_on_dynamodb_local(app_client):
    scan_for_secrets(app_client)


def test_every_route_answers_every_bad_input_without_a_5xx_on_dynamodb_local(app_client):
    sent, problems = send_corpus(app_client, sign_in(app_client, "corpus@example.com"))
    summary.add("bad inputs tried", sent)
    assert sent > 1000
    assert problems == [], f"{len(problems)} of {sent} requests misbehaved:\n" + "\n".join(problems[:40])
