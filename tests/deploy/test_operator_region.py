"""`make deploy`, `destroy`, `secrets` and the operator tools act in the region the operator
set: AWS_DEFAULT_REGION, else AWS_REGION, else the profile's (docs/deploy.md, Prerequisites).
boto3 ignored AWS_REGION (a stack went to the profile's region, or to us-east-1 without one)
and the tools' settings ignored the profile (their tables were looked up in us-east-1)."""
from __future__ import annotations

import pytest
from moto import mock_aws

from chalicelib.settings import Settings
from infra import secrets
from infra.deploy import Deployer
from tools import usage_events


@pytest.fixture
def profile(tmp_path, monkeypatch):
    """An AWS config file whose default profile names a region, and no region variable."""
    def with_region(region):
        config = tmp_path / "config"
        config.write_text("[default]\n" + (f"region = {region}\n" if region else ""))
        monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    for name in ("AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    return with_region


def test_aws_region_is_where_the_stage_is_deployed(profile, monkeypatch):
    profile("eu-central-1")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    with mock_aws():
        assert Deployer().region == "eu-west-1"
    profile(None)
    with mock_aws():
        assert Deployer().region == "eu-west-1"  # not us-east-1


def test_the_operator_tools_read_the_tables_of_the_profiles_region(profile, monkeypatch):
    profile("eu-central-1")
    environment = usage_events.stage_environment("prod")
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert Settings(stage="local").region == "eu-central-1"  # the region the tools' models connect to
    with mock_aws():
        assert Deployer().region == "eu-central-1"


def test_without_a_region_the_commands_stop_and_say_so(profile):
    profile(None)
    with mock_aws():
        with pytest.raises(SystemExit, match="No AWS region"):
            Deployer()
        with pytest.raises(SystemExit, match="No AWS region"):
            secrets.main(["--stage", "prod"])
    with pytest.raises(SystemExit, match="No AWS region"):
        usage_events.stage_environment("prod")
