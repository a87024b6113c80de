"""After `make destroy` without DELETE_DATA, the stage could not be deployed again: CloudFormation
creates no table or bucket whose name exists, and the only way back was a CloudFormation import
by hand. `make deploy IMPORT_DATA=yes` imports them. moto has no import: its calls are recorded
here, and everything around them runs on moto."""
from __future__ import annotations

import io
import json
from typing import Any, Dict, List

import boto3
import pytest
from moto import mock_aws

from infra import adopt, stack
from infra.deploy import Deployer
from tests.deploy.conftest import BUILD_ROOT, MAIL_FROM, STAGE, deploy_stack

pytestmark = pytest.mark.usefixtures("clean_spikes_env")


class Updated(Exception):
    """The deploy reached the update that follows the import."""


class RecordedImport:
    """CloudFormation as the deploy's client sees it, with the import's calls recorded (and
    answered as done) and every other call passed to moto."""

    def __init__(self, real: Any):
        self.real, self.calls = real, []  # type: Any, List[tuple]

    def create_change_set(self, **kwargs):
        self.calls.append(("create_change_set", kwargs))
        return {"Id": "change-set", "StackId": "stack"}

    def execute_change_set(self, **kwargs):
        self.calls.append(("execute_change_set", kwargs))

    def get_template(self, **kwargs):
        """The imported stack's template: the import's own (the deploy compares its indexes)."""
        return {"TemplateBody": json.loads(self.calls[0][1]["TemplateBody"])}

    def get_waiter(self, name):
        recorded = self

        class Waiter:
            def wait(self, **kwargs):
                recorded.calls.append((name, kwargs))
        return Waiter() if name in ("change_set_create_complete", "stack_import_complete") else self.real.get_waiter(name)

    def __getattr__(self, name):
        return getattr(self.real, name)


def test_the_import_holds_the_kept_tables_and_bucket_as_the_template_declares_them(built):
    template = built["template"]
    tables = list(stack.table_names(STAGE).values())
    bucket = "spikes-prod-files-123456789012-us-east-1"
    importing = adopt.resources_to_import(template, tables + [bucket], bucket)
    names = sorted(next(iter(item["ResourceIdentifier"].values())) for item in importing)
    assert names == sorted(tables + [bucket])
    body = adopt.import_template(template, importing)
    assert set(body["Resources"]) == {item["LogicalResourceId"] for item in importing}
    for logical, resource in body["Resources"].items():
        assert resource == template["Resources"][logical] and resource["DeletionPolicy"] == "Retain"
    assert "Outputs" not in body and body["Parameters"] == template["Parameters"]
    assert len(json.dumps(body, separators=(",", ":"))) < 51_200  # inline, no upload needed
    # A table a newer version added is not there yet: the update that follows creates it.
    assert len(adopt.resources_to_import(template, tables[1:], bucket)) == len(importing) - 2


def test_a_redeploy_over_kept_data_imports_it_before_the_update(built):
    with mock_aws():
        deploy_stack(built)
        users = stack.table_names(STAGE)["users"]
        dynamodb = boto3.client("dynamodb")
        dynamodb.put_item(TableName=users, Item={"user_id": {"S": "u_kept"}})
        destroyed = io.StringIO()
        Deployer(out=destroyed).destroy(STAGE)
        assert f"make deploy STAGE={STAGE} IMPORT_DATA=yes" in destroyed.getvalue()  # the way back, named
        with pytest.raises(SystemExit, match=f"make deploy STAGE={STAGE} IMPORT_DATA=yes"):
            Deployer(out=io.StringIO()).deploy(STAGE, BUILD_ROOT, {"mail_from": MAIL_FROM})

        deployer = Deployer(out=io.StringIO())
        deployer.cfn = recorded = RecordedImport(deployer.cfn)
        updates: List[Dict[str, Any]] = []

        def update(stage, template_url, parameters, update):
            updates.append({"update": update, "parameters": parameters})
            raise Updated()
        deployer._create_or_update = update
        with pytest.raises(Updated):
            deployer.deploy(STAGE, BUILD_ROOT, {"mail_from": MAIL_FROM, "import_data": True})
        assert [call[0] for call in recorded.calls] == ["create_change_set", "change_set_create_complete",
                                                        "execute_change_set", "stack_import_complete"]
        asked = recorded.calls[0][1]
        assert asked["ChangeSetType"] == "IMPORT" and asked["StackName"] == f"spikes-{STAGE}"
        assert len(asked["ResourcesToImport"]) == len(stack.table_names(STAGE)) + 1
        assert asked["Parameters"] == updates[0]["parameters"]  # the same values as the update
        assert updates[0]["update"] is True  # the imported stack is updated, not created
        assert dynamodb.get_item(TableName=users, Key={"user_id": {"S": "u_kept"}})["Item"]


def test_a_table_an_older_version_kept_is_imported_as_it_is_so_the_update_adds_what_it_lacks(built):
    """CloudFormation takes an import's template as the truth and the update after it changes
    what differs from that: tables kept by an older version (an index and TTL it did not have),
    imported as this version declares them, never got that index (every query on it failing)
    nor their TTL (security finding 198)."""
    with mock_aws():
        deploy_stack(built)
        Deployer(out=io.StringIO()).destroy(STAGE)
        spikes_table, sessions_table = stack.table_names(STAGE)["spikes"], stack.table_names(STAGE)["auth"]
        dynamodb = boto3.client("dynamodb")
        dynamodb.update_table(TableName=spikes_table,
                              GlobalSecondaryIndexUpdates=[{"Delete": {"IndexName": "id_owner_index"}}])
        dynamodb.update_time_to_live(TableName=sessions_table,
                                     TimeToLiveSpecification={"AttributeName": "expires_at", "Enabled": False})
        deployer = Deployer(out=io.StringIO())
        deployer.cfn = recorded = RecordedImport(deployer.cfn)
        deployer._create_or_update = lambda *args, **kwargs: (_ for _ in ()).throw(Updated())
        with pytest.raises(Updated):
            deployer.deploy(STAGE, BUILD_ROOT, {"mail_from": MAIL_FROM, "import_data": True})
        imported = json.loads(recorded.calls[0][1]["TemplateBody"])["Resources"]
        declared = built["template"]["Resources"]
        by_name = {resource["Properties"].get("TableName"): logical for logical, resource in imported.items()}
        spikes_indexes = [index["IndexName"] for index in imported[by_name[spikes_table]]["Properties"]["GlobalSecondaryIndexes"]]
        assert "id_owner_index" not in spikes_indexes and spikes_indexes  # the update adds it
        assert "id_owner_index" in json.dumps(declared[by_name[spikes_table]])
        assert "TimeToLiveSpecification" not in imported[by_name[sessions_table]]["Properties"]
        assert "TimeToLiveSpecification" in declared[by_name[sessions_table]]["Properties"]
        untouched = by_name[stack.table_names(STAGE)["users"]]
        assert imported[untouched] == declared[untouched]


def test_an_import_that_did_not_finish_is_started_again(built):
    with mock_aws():
        cfn = boto3.client("cloudformation")
        cfn.create_change_set(StackName=f"spikes-{STAGE}", ChangeSetName=adopt.CHANGE_SET, ChangeSetType="CREATE",
                              TemplateBody=json.dumps({"Resources": {"Nothing": {"Type": "AWS::SNS::Topic"}}}))
        assert cfn.describe_stacks(StackName=f"spikes-{STAGE}")["Stacks"][0]["StackStatus"] == "REVIEW_IN_PROGRESS"
        out = io.StringIO()
        deployer = Deployer(out=out)
        deployer.poll_seconds = 0
        assert deployer.settled(STAGE) is None
        assert "holds nothing" in out.getvalue() and "waiting" not in out.getvalue()
        assert deployer.describe(STAGE) is None
