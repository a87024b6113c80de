"""`make secrets ROTATE=name` replaces a parameter or says it did not. A rotation of a Stripe
secret given no value (Enter at the prompt, a misspelled variable in a script) wrote nothing,
listed the parameter as present and succeeded: the stage kept the old secret while the operator
believed it replaced (the webhook's new signing secret never reaching it)."""
from __future__ import annotations

import io

import boto3
import pytest
from moto import mock_aws

from infra import secrets

pytestmark = pytest.mark.usefixtures("clean_spikes_env")


def test_a_rotation_given_no_value_fails_and_keeps_the_old_one(monkeypatch):
    with mock_aws():
        ssm = boto3.client("ssm")
        monkeypatch.setenv("SPIKES_STRIPE_WEBHOOK_SECRET", "whsec_old")
        secrets.ensure_secrets(ssm, "prod", out=io.StringIO())
        monkeypatch.delenv("SPIKES_STRIPE_WEBHOOK_SECRET")
        with pytest.raises(SystemExit, match="Not rotated: stripe_webhook_secret"):
            secrets.ensure_secrets(ssm, "prod", rotate=["stripe_webhook_secret"], ask=lambda prompt: "",
                                   out=io.StringIO())
        stored = ssm.get_parameter(Name="/spikes/prod/stripe_webhook_secret", WithDecryption=True)
        assert stored["Parameter"]["Value"] == "whsec_old"
        out = io.StringIO()
        written = secrets.ensure_secrets(ssm, "prod", rotate=["stripe_webhook_secret"],
                                         ask=lambda prompt: "whsec_new" if "webhook signing" in prompt else "",
                                         out=out)
        assert written == ["stripe_webhook_secret"] and "whsec_new" not in out.getvalue()
