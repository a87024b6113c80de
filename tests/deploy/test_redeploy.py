"""A stage deployed again after its stack is gone: CloudFormation creates no table or bucket
whose name exists, and `make destroy` keeps them (so does a first creation that failed), so a
new stack over them failed, and so did every later `make deploy`."""
from __future__ import annotations

import io

import boto3
import pytest
from moto import mock_aws

from infra import stack
from infra.deploy import Deployer
from tests.deploy.conftest import STAGE, deploy_stack

pytestmark = pytest.mark.usefixtures("clean_spikes_env")


def test_a_stage_destroyed_with_its_data_kept_is_not_deployed_over_it(built):
    with mock_aws():
        first = deploy_stack(built)
        Deployer(out=io.StringIO()).destroy(STAGE)
        with pytest.raises(SystemExit, match="its data is still here") as refused:
            deploy_stack(built)
        assert f"table {stack.table_names(STAGE)['ledger']}" in str(refused.value)  # the deploy's own markers
        assert "DELETE_DATA=yes" in str(refused.value)
        assert boto3.client("dynamodb").scan(TableName=stack.table_names(STAGE)["ledger"])["Count"], "kept as it was"
        boto3.client("s3").head_bucket(Bucket=first["outputs"]["BucketName"])


def test_empty_leftovers_of_a_failed_first_creation_are_cleared(built):
    """A first creation that failed keeps its (empty) tables and bucket: the next deploy
    deletes them and creates the stack."""
    with mock_aws():
        dynamodb, s3 = boto3.client("dynamodb"), boto3.client("s3")
        table = stack.table_names(STAGE)["users"]
        dynamodb.create_table(TableName=table, BillingMode="PAY_PER_REQUEST", DeletionProtectionEnabled=True,
                              KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                              AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
        bucket = "spikes-prod-files-123456789012-us-east-1"
        s3.create_bucket(Bucket=bucket)
        deployed = deploy_stack(built)
        assert f"all empty: bucket {bucket}, table {table}" in deployed["log"]
        assert deployed["outputs"]["BucketName"] == bucket
        status = boto3.client("cloudformation").describe_stacks(StackName="spikes-prod")["Stacks"][0]["StackStatus"]
        assert status in ("CREATE_COMPLETE", "UPDATE_COMPLETE")


def test_a_versioned_bucket_is_deleted_with_every_version(built):
    """With versioning on (docs/deploy.md suggests it to undo deletions), a bucket keeps every
    older version and delete marker; S3 refuses to delete it until they are gone too."""
    with mock_aws():
        bucket = deploy_stack(built)["outputs"]["BucketName"]
        s3 = boto3.client("s3")
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        s3.put_object(Bucket=bucket, Key="shares/shr_1/index.html", Body=b"<p>one</p>")
        s3.put_object(Bucket=bucket, Key="shares/shr_1/index.html", Body=b"<p>two</p>")
        s3.delete_object(Bucket=bucket, Key="shares/shr_1/index.html")  # a delete marker on top
        out = io.StringIO()
        Deployer(out=out).destroy(STAGE, delete_data=True, confirmed=STAGE)
        assert f"Deleted bucket {bucket}" in out.getvalue()
        assert bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_a_leftover_bucket_holding_only_older_versions_is_data(built):
    """A deleted share's file kept as an older version can still be restored: the deploy must
    not delete that bucket as an empty leftover."""
    with mock_aws():
        s3 = boto3.client("s3")
        bucket = "spikes-prod-files-123456789012-us-east-1"
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        s3.put_object(Bucket=bucket, Key="shares/shr_1/index.html", Body=b"<p>kept</p>")
        s3.delete_object(Bucket=bucket, Key="shares/shr_1/index.html")
        with pytest.raises(SystemExit, match=f"its data is still here: bucket {bucket}"):
            deploy_stack(built)
        assert s3.list_object_versions(Bucket=bucket)["Versions"], "the older version is kept"
