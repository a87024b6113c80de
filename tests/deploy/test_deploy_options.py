"""A deploy option set empty clears it. Options left out keep the stack's values, and an empty
one was read as left out: `make deploy DOMAIN_NAME=` (or ALARM_EMAIL=, STRIPE_PRICE_ID=,
AGENT_SIGNUP=) kept the old value without a word, so a custom domain, an alarm address, a price
being sold or an open agent signup could not be removed with the command docs/deploy.md gives."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Dict

import boto3
import pytest
from moto import mock_aws

from infra import deploy
from tests.deploy.conftest import STAGE, deploy_stack

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.usefixtures("clean_spikes_env")


def parameters() -> Dict[str, str]:
    described = boto3.client("cloudformation").describe_stacks(StackName=deploy.stack_name(STAGE))["Stacks"][0]
    return {p["ParameterKey"]: p["ParameterValue"] for p in described["Parameters"]}


def test_make_deploy_passes_an_option_set_empty_on_the_command_line():
    if not shutil.which("make"):
        pytest.skip("make is not installed")
    env = {key: value for key, value in os.environ.items() if key not in ("ALARM_EMAIL", "DOMAIN_NAME")}
    dry = subprocess.run(["make", "-n", "deploy", "STAGE=staging", "ALARM_EMAIL="], cwd=ROOT, capture_output=True,
                         text=True, stdin=subprocess.DEVNULL, timeout=60, env=env)
    assert dry.returncode == 0, dry.stderr
    command = next(line for line in dry.stdout.splitlines() if "infra.deploy deploy" in line)
    assert "--alarm-email=''" in command
    assert "--domain-name" not in command  # left out: kept as deployed


def test_the_deploy_command_keeps_an_empty_option(monkeypatch):
    seen: Dict[str, Any] = {}

    class Recorder:
        def deploy(self, stage, build_dir, options, interactive=False):
            seen.update(options)

    monkeypatch.setattr(deploy, "Deployer", Recorder)
    deploy.main(["deploy", "--stage", STAGE, "--alarm-email", "", "--stripe-price-id", ""])
    assert seen["alarm_email"] == "" and seen["stripe_price_id"] == ""
    assert seen["domain_name"] is None


def test_an_option_set_empty_returns_to_the_templates_default(built):
    with mock_aws():
        deploy_stack(built, alarm_email="ops@spikes.example", stripe_price_id="price_123", agent_signup="true",
                     log_retention_days="90")
        deploy_stack(built, alarm_email="", stripe_price_id="", agent_signup="", log_retention_days="",
                     mail_from_name=None)
        now = parameters()
        assert (now["AlarmEmail"], now["StripePriceId"], now["AgentSignup"], now["LogRetentionDays"]) == ("", "", "", "30")
        with pytest.raises(SystemExit, match="MAIL_FROM cannot be cleared"):
            deploy_stack(built, mail_from="")


def test_the_public_base_url_goes_through_make_and_is_kept_until_given_again(built):
    # `--public-base-url` had no make variable, and a later deploy without it put the API's own
    # URL back: links in mail and share URLs moved off the name they were set to without a word.
    if shutil.which("make"):
        env = {key: value for key, value in os.environ.items() if key != "PUBLIC_BASE_URL"}
        dry = subprocess.run(["make", "-n", "deploy", "STAGE=staging", "PUBLIC_BASE_URL=https://shares.example.com"],
                             cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60, env=env)
        assert dry.returncode == 0, dry.stderr
        assert "--public-base-url='https://shares.example.com'" in dry.stdout
    with mock_aws():
        api_url = deploy_stack(built)["outputs"]["ApiUrl"]
        assert parameters()["PublicBaseUrl"] == api_url
        deploy_stack(built, public_base_url="https://shares.example.com")
        assert parameters()["PublicBaseUrl"] == "https://shares.example.com"
        deploy_stack(built, mail_from=None)  # left out: kept
        assert parameters()["PublicBaseUrl"] == "https://shares.example.com"
        deploy_stack(built, public_base_url="")  # given empty: back to the API's own URL
        assert parameters()["PublicBaseUrl"] == api_url
        with pytest.raises(SystemExit, match="PUBLIC_BASE_URL='shares.example.com'"):
            deploy_stack(built, public_base_url="shares.example.com")  # no scheme: every link would be broken
        assert parameters()["PublicBaseUrl"] == api_url


def test_the_deploy_prints_the_public_base_url_as_the_stages_address(built):
    # PUBLIC_BASE_URL is what every link the functions make starts with, yet the deploy printed the
    # execute-api URL as the API URL, in the webhook and widget URLs and in `make smoke URL=...`.
    with mock_aws():
        first = deploy_stack(built)
        api_url = first["outputs"]["ApiUrl"]
        assert first["outputs"]["PublicUrl"] == api_url and f"make smoke URL={api_url}" in first["log"]
        named = deploy_stack(built, public_base_url="https://feedback.example.com/")
        assert parameters()["PublicBaseUrl"] == "https://feedback.example.com"  # the paths are appended to it
        assert named["outputs"]["PublicUrl"] == "https://feedback.example.com"
        assert named["outputs"]["StripeWebhookUrl"] == "https://feedback.example.com/webhooks/stripe"
        assert named["outputs"]["WidgetScriptUrl"] == "https://feedback.example.com/widget.js"
        assert "API URL:              https://feedback.example.com\n" in named["log"]
        assert "make smoke URL=https://feedback.example.com" in named["log"]
        assert "export SPIKES_API_URL=https://feedback.example.com\n" in named["log"]
        assert api_url not in named["log"]
        cleared = deploy_stack(built, public_base_url="")  # given empty: the API's own URL again
        assert cleared["outputs"]["PublicUrl"] == api_url and f"make smoke URL={api_url}" in cleared["log"]
