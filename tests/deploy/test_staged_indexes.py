"""A stack deployed by a version two or more behind: the template may add two indexes to one
table, and CloudFormation refuses an update that creates or deletes more than one index of a
table ("Cannot perform more than one GSI creation or deletion in a single update"); nor does it
wait for DynamoDB to build a new index, and a table takes no other index change meanwhile.
`make deploy` adds them one per table per update by itself. moto's CloudFormation leaves tables
as they are on an update: here it changes their indexes as AWS does, refusing what AWS refuses,
and a new index is reported CREATING for a few reads before it is ACTIVE."""
from __future__ import annotations

import copy
import io
import json
import shutil
from pathlib import Path
from typing import Any, Dict, List

import boto3
import pytest
from moto import mock_aws

from infra import deploy as deploy_module, stack, staged
from infra.deploy import Deployer, stack_name
from tests.deploy.conftest import BUILD_ROOT, MAIL_FROM, STAGE, emulate_api_gateway_body, emulate_tls_requests

pytestmark = pytest.mark.usefixtures("clean_spikes_env")
SPIKES = "SpikesTable"
SHARES = "SharesTable"
LEFT_OUT = {SPIKES: ["open_owner_index", "owner_index"], SHARES: ["owner_status_index"]}
READS_WHILE_BUILDING = 3


class Refused(Exception):
    """What CloudFormation answers an update DynamoDB cannot make."""


def emulate_index_updates(monkeypatch) -> None:
    from moto.dynamodb.models.table import GlobalSecondaryIndex, Table

    def update(cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name):
        table = original_resource
        want = {index["IndexName"]: index for index in cloudformation_json["Properties"].get("GlobalSecondaryIndexes", [])}
        have = {index.name: index for index in table.global_indexes}
        created, deleted = [name for name in want if name not in have], [name for name in have if name not in want]
        if len(created) + len(deleted) > 1:
            raise Refused("Cannot perform more than one GSI creation or deletion in a single update")
        if (created or deleted) and any(index.status != "ACTIVE" for index in table.global_indexes):
            raise Refused("Subscriber limit exceeded: Only 1 online index can be created or deleted simultaneously "
                          "per table")
        for name in deleted:
            table.global_indexes.remove(have[name])
        for name in created:
            index = GlobalSecondaryIndex.create(want[name], table.table_key_attrs)
            index.status, index.reads_left = "CREATING", READS_WHILE_BUILDING
            table.global_indexes.append(index)
        return table

    original_describe = GlobalSecondaryIndex.describe

    def describe(self):
        if self.status == "CREATING":
            self.reads_left -= 1
            if self.reads_left < 0:
                self.status = "ACTIVE"
        return original_describe(self)

    monkeypatch.setattr(Table, "update_from_cloudformation_json", classmethod(update), raising=False)
    monkeypatch.setattr(GlobalSecondaryIndex, "describe", describe)


class RecordedUpdates:
    """moto's CloudFormation client, with each update's template recorded (read back from S3)."""

    def __init__(self, real: Any):
        self.real, self.templates = real, []  # type: Any, List[Dict[str, Any]]

    def update_stack(self, **kwargs: Any) -> dict:
        bucket, key = kwargs["TemplateURL"].split("https://", 1)[1].split(".s3.", 1)[0], \
            kwargs["TemplateURL"].split(".amazonaws.com/", 1)[1]
        self.templates.append(json.loads(boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()))
        return self.real.update_stack(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def older_template(template: Dict[str, Any]) -> Dict[str, Any]:
    """The template as a version from before LEFT_OUT's indexes declared it."""
    older = copy.deepcopy(template)
    for logical, names in LEFT_OUT.items():
        properties = older["Resources"][logical]["Properties"]
        properties["GlobalSecondaryIndexes"] = [index for index in properties["GlobalSecondaryIndexes"]
                                                if index["IndexName"] not in names]
        properties["AttributeDefinitions"] = staged.key_attributes(
            older["Resources"][logical], older["Resources"][logical], properties)
    return older


def deploy(build_root: Path, **options: Any) -> tuple[RecordedUpdates, str]:
    emulate_api_gateway_body()
    emulate_tls_requests()
    out = io.StringIO()
    deployer = Deployer(out=out)
    deployer.poll_seconds = 0
    deployer.cfn = RecordedUpdates(deployer.cfn)
    deployer.deploy(STAGE, build_root, {"mail_from": MAIL_FROM, **options})
    return deployer.cfn, out.getvalue()


def deploy_older(built: Dict[str, Any], tmp_path: Path) -> Dict[str, Any]:
    older = older_template(built["template"])
    (tmp_path / STAGE).mkdir()
    shutil.copy(BUILD_ROOT / STAGE / "deployment.zip", tmp_path / STAGE / "deployment.zip")
    (tmp_path / STAGE / "template.json").write_text(json.dumps(older))
    deploy(tmp_path)
    return older


def assert_one_index_change_per_table_per_update(deployed: Dict[str, Any], updates: List[Dict[str, Any]]) -> None:
    for template in updates:
        changes = staged.index_changes(deployed, template)
        assert not staged.needs_steps(changes), changes
        deployed = template


def index_states(table: str) -> Dict[str, str]:
    described = boto3.client("dynamodb").describe_table(TableName=table)["Table"]
    return {index["IndexName"]: index["IndexStatus"] for index in described.get("GlobalSecondaryIndexes", [])}


def declared(template: Dict[str, Any], logical: str) -> List[str]:
    return sorted(staged.table_indexes(template["Resources"][logical]))


def test_a_stack_two_indexes_behind_on_a_table_is_updated_one_index_at_a_time(built, tmp_path, monkeypatch):
    emulate_index_updates(monkeypatch)
    with mock_aws():
        older = deploy_older(built, tmp_path)
        tables = stack.table_names(STAGE)
        assert "open_owner_index" not in index_states(tables["spikes"])
        cfn, log = deploy(BUILD_ROOT, mail_from_name="Upgraded")
        assert len(cfn.templates) == 2, "one step, then the whole template"
        assert_one_index_change_per_table_per_update(older, cfn.templates)
        assert cfn.templates[-1] == built["template"]
        assert f"step 1 before the whole template, add open_owner_index to {tables['spikes']} ..." in log
        assert f"waiting for table {tables['spikes']} (ACTIVE; open_owner_index building" in log
        for logical, name in ((SPIKES, tables["spikes"]), (SHARES, tables["shares"])):
            assert sorted(index_states(name)) == declared(built["template"], logical)
        # The step changed indexes only: the code and the options stayed as deployed until the last update.
        step = cfn.templates[0]
        assert {logical for logical in older["Resources"] if step["Resources"][logical] != older["Resources"][logical]} \
            == {SPIKES}, "the shares table's one new index waits for the whole template"
        assert {key: value for key, value in step.items() if key != "Resources"} == \
            {key: value for key, value in older.items() if key != "Resources"}
        described = boto3.client("cloudformation").describe_stacks(StackName=stack_name(STAGE))["Stacks"][0]
        assert {p["ParameterKey"]: p["ParameterValue"] for p in described["Parameters"]}["MailFromName"] == "Upgraded"
        # Nothing left to stage: a deploy again changes nothing.
        cfn, log = deploy(BUILD_ROOT, mail_from_name="Upgraded")
        assert "index change per table" not in log and "waiting" not in log
        assert cfn.templates == [built["template"]]


def test_a_staged_deploy_stopped_while_an_index_builds_continues_when_run_again(built, tmp_path, monkeypatch):
    emulate_index_updates(monkeypatch)
    with mock_aws():
        older = deploy_older(built, tmp_path)
        tables = stack.table_names(STAGE)
        monkeypatch.setattr(deploy_module, "WAIT_ATTEMPTS", 1)
        with pytest.raises(SystemExit, match=f"Table {tables['spikes']} is still building an index"):
            deploy(BUILD_ROOT)
        assert index_states(tables["spikes"])["open_owner_index"] == "CREATING"
        monkeypatch.undo()
        emulate_index_updates(monkeypatch)
        cfn, log = deploy(BUILD_ROOT)
        assert "index change per table" not in log, "the step was made by the run that stopped"
        assert f"waiting for table {tables['spikes']}" in log, "the index it added is waited for first"
        assert len(cfn.templates) == 1 and cfn.templates[0] == built["template"]
        assert_one_index_change_per_table_per_update(staged.next_step(older, built["template"])[0], cfn.templates)
        assert sorted(index_states(tables["spikes"])) == declared(built["template"], SPIKES)


def test_the_emulation_refuses_two_index_creations_in_one_update(built, tmp_path, monkeypatch):
    """What the deploy avoids, as the emulated CloudFormation answers it (AWS rolls the update back)."""
    emulate_index_updates(monkeypatch)
    monkeypatch.setattr(staged, "add_indexes_in_steps", lambda *args, **kwargs: None)
    with mock_aws():
        deploy_older(built, tmp_path)
        with pytest.raises(Exception, match="more than one GSI creation or deletion"):
            deploy(BUILD_ROOT)


def test_steps_remove_an_index_too_and_leave_one_change_per_table_to_the_last_update():
    def table(*names: str) -> Dict[str, Any]:
        return {"Type": staged.TABLE, "Properties": {
            "TableName": "t", "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": a, "AttributeType": "S"} for a in ("pk",) + names],
            "GlobalSecondaryIndexes": [{"IndexName": f"{n}_index", "Projection": {"ProjectionType": "ALL"},
                                        "KeySchema": [{"AttributeName": n, "KeyType": "HASH"}]} for n in names]}}

    deployed = {"Parameters": {}, "Resources": {"T": table("a", "b")}}
    target = {"Parameters": {}, "Resources": {"T": table("c", "d")}}
    steps = []
    while (step := staged.next_step(deployed, target)) is not None:
        steps.append(step[1])
        assert not staged.needs_steps(staged.index_changes(deployed, step[0]))
        deployed = step[0]
    assert steps == [["add c_index to t"], ["add d_index to t"], ["remove a_index from t"]]
    assert staged.index_changes(deployed, target) == {"T": ([], ["b_index"])}
    assert [a["AttributeName"] for a in deployed["Resources"]["T"]["Properties"]["AttributeDefinitions"]] == \
        ["b", "c", "d", "pk"]


def test_the_upgrade_steps_wait_for_an_index_still_building_and_go_on_without_it_in_time():
    """After the update, ``make deploy`` waits for DynamoDB to build the spikes table's new
    index before the upgrade step that marks it usable; past the wait it goes on and says so."""
    class Building:
        def describe_table(self, TableName):
            return {"Table": {"TableStatus": "ACTIVE", "GlobalSecondaryIndexes": [
                {"IndexName": "open_project_index", "IndexStatus": "CREATING"}]}}

    class Deployer:
        region, poll_seconds, said = "us-east-1", 0, []

        class session:
            @staticmethod
            def client(name, region_name):
                return Building()

        def say(self, text):
            self.said.append(text)

    deployer = Deployer()
    assert staged.wait_for_indexes(deployer, ["spikes-prod-spikes"], 3, stop=False) is False
    assert len([line for line in deployer.said if "open_project_index building" in line]) == 3
    assert "filter as before until a later deploy" in deployer.said[-1]
    with pytest.raises(SystemExit, match="still building an index"):
        staged.wait_for_indexes(deployer, ["spikes-prod-spikes"], 2)
