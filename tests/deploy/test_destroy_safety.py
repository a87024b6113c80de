"""`make destroy` acts on the stage it is given only: STAGE defaults to prod for the other
commands, so a destroy meant for a test stage that forgot STAGE= deleted production's stack (and
with DELETE_DATA=yes its tables, point-in-time recovery included, its files and its secrets)."""
from __future__ import annotations

import io
import os
import shutil
import subprocess
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from infra import stack
from infra.deploy import Deployer
from tests.deploy.conftest import STAGE, deploy_stack

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.usefixtures("clean_spikes_env")


def make_dry_run(*arguments: str) -> subprocess.CompletedProcess:
    """`make -n`: the recipe as it would run, nothing run."""
    env = {key: value for key, value in os.environ.items() if key != "STAGE"}
    return subprocess.run(["make", "-n", *arguments], cwd=ROOT, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=60, env=env)


def test_make_destroy_needs_the_stage_named():
    if not shutil.which("make"):
        pytest.skip("make is not installed")
    for arguments in (["destroy"], ["destroy", "DELETE_DATA=yes"]):
        refused = make_dry_run(*arguments)
        assert refused.returncode != 0
        assert "make destroy STAGE=<stage>" in refused.stderr
        assert "infra.deploy destroy" not in refused.stdout
    named = make_dry_run("destroy", "STAGE=staging", "DELETE_DATA=yes")
    assert named.returncode == 0, named.stderr
    assert "infra.deploy destroy --stage='staging' --delete-data" in named.stdout


def test_deleting_a_stages_data_at_a_terminal_asks_for_its_name(built):
    with mock_aws():
        deploy_stack(built)
        asked = []
        with pytest.raises(SystemExit, match="Nothing deleted"):
            Deployer(out=io.StringIO()).destroy(STAGE, delete_data=True,
                                                confirm=lambda prompt: asked.append(prompt) or "staging")
        assert "point-in-time recovery" in asked[0]
        assert boto3.client("cloudformation").describe_stacks(StackName=f"spikes-{STAGE}")["Stacks"]
        boto3.client("dynamodb").describe_table(TableName=stack.table_names(STAGE)["users"])
        out = io.StringIO()
        Deployer(out=out).destroy(STAGE, delete_data=True, confirm=lambda prompt: f"{STAGE}\n")
        assert f"Deleted table {stack.table_names(STAGE)['users']}" in out.getvalue()


def test_deleting_a_stages_data_outside_a_terminal_needs_its_name_confirmed(built):
    # Finding 190: without a terminal (CI, a script, an agent's shell) nothing asked, and
    # DELETE_DATA=yes deleted the tables, files and secrets of whatever STAGE said.
    with mock_aws():
        deploy_stack(built)
        users = stack.table_names(STAGE)["users"]
        for confirmed, refusal in ((None, f"CONFIRM={STAGE}"), ("staging", "Nothing deleted: 'staging'"),
                                   ("", "Nothing deleted: ''")):
            with pytest.raises(SystemExit, match=refusal):
                Deployer(out=io.StringIO()).destroy(STAGE, delete_data=True, confirmed=confirmed)
            assert boto3.client("cloudformation").describe_stacks(StackName=f"spikes-{STAGE}")["Stacks"]
            boto3.client("dynamodb").describe_table(TableName=users)
        asked = []  # the stage named, a terminal is not asked again (an agent in a pty)
        out = io.StringIO()
        Deployer(out=out).destroy(STAGE, delete_data=True, confirm=asked.append, confirmed=STAGE)
        assert asked == [] and f"Deleted table {users}" in out.getvalue()


def test_make_destroy_passes_the_confirmation_and_the_command_takes_it(monkeypatch):
    if shutil.which("make"):
        named = make_dry_run("destroy", "STAGE=staging", "DELETE_DATA=yes", "CONFIRM=staging")
        assert named.returncode == 0, named.stderr
        assert "--delete-data" in named.stdout and "--confirm='staging'" in named.stdout
    from infra import deploy
    seen = {}

    class Recorder:
        def destroy(self, stage, delete_data=False, confirm=None, confirmed=None):
            seen.update(stage=stage, delete_data=delete_data, confirmed=confirmed)

    monkeypatch.setattr(deploy, "Deployer", Recorder)
    deploy.main(["destroy", "--stage=staging", "--delete-data", "--confirm=staging"])
    assert seen == {"stage": "staging", "delete_data": True, "confirmed": "staging"}
