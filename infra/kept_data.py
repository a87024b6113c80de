"""What a stage keeps without its stack: the tables and the bucket an earlier stack of it retained
(found, imported into a new stack, or deleted) and, for ``make destroy DELETE_DATA=yes``, its
secrets (infra/deploy.py)."""
from __future__ import annotations

import json
from typing import Any, Callable, Dict, List

from infra import adopt, secrets, stack
from infra.cloudformation import CAPABILITIES, WAIT_ATTEMPTS, stack_name


class KeptData:
    """The kept-data steps of infra.deploy.Deployer, which holds the clients and the stack operations."""
    session: Any
    region: str
    account: str
    cfn: Any
    s3: Any
    ssm: Any
    poll_seconds: float
    say: Callable[[str], None]
    _failure_events: Callable[[str], str]

    def bucket_name(self, stage: str) -> str:
        return f"spikes-{stage}-files-{self.account}-{self.region}"

    def leftovers(self, stage: str) -> Dict[str, bool]:
        """The stage's tables and bucket that exist without its stack, each with whether it holds
        anything: kept by `make destroy`, or by a first creation that failed (tables and bucket
        are retained then too)."""
        from botocore.exceptions import ClientError
        dynamodb = self.session.client("dynamodb", region_name=self.region)
        found: Dict[str, bool] = {}
        for table in stack.table_names(stage).values():
            try:
                found[f"table {table}"] = dynamodb.scan(TableName=table, Limit=1, Select="COUNT")["Count"] > 0
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ResourceNotFoundException":
                    raise
        bucket = self.bucket_name(stage)
        try:
            found[f"bucket {bucket}"] = self.bucket_holds_files(bucket)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "NoSuchBucket":
                raise
        return found

    def bucket_holds_files(self, bucket: str) -> bool:
        """Whether ``bucket`` keeps any file, a deleted file's older version included (with the
        bucket versioning docs/deploy.md suggests, that is what undoes a deletion)."""
        for page in self.s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
            if page.get("Versions"):
                return True
        return False

    def clear_leftovers(self, stage: str, keep: bool = False) -> List[str]:
        """CloudFormation creates no table or bucket whose name exists: a new stack over a stage's
        leftovers fails, and every later deploy with it. With ``keep`` (IMPORT_DATA=yes) they are
        returned, to be imported; else empty ones are deleted and data stops the deploy."""
        found = self.leftovers(stage)
        if keep and found:
            self.say(f"Stage {stage} kept {', '.join(sorted(found))}: importing them into the new stack.")
            return [name.split(" ", 1)[1] for name in sorted(found)]
        if any(found.values()):
            raise SystemExit(
                f"Stage {stage} has no stack, but its data is still here: "
                f"{', '.join(name for name, full in sorted(found.items()) if full)}. CloudFormation cannot create the "
                f"stack over existing tables or a bucket of the same names. Take them into the new stack with "
                f"`make deploy STAGE={stage} IMPORT_DATA=yes` (docs/deploy.md, 'Tearing down'), delete them "
                f"(make destroy STAGE={stage} DELETE_DATA=yes: the data is lost), or deploy another STAGE.")
        if found:
            self.say(f"Deleting what an earlier stack of stage {stage} left, all empty: {', '.join(sorted(found))}")
            self.delete_tables([name.split(" ", 1)[1] for name in found if name.startswith("table ")])
            self.delete_bucket(self.bucket_name(stage))
        return []

    def import_kept(self, stage: str, template: Dict[str, Any], parameters: List[dict], present: List[str]) -> None:
        """A new stack holding the stage's kept tables and bucket (infra/adopt.py), for the
        update that follows to add the rest."""
        from botocore.exceptions import WaiterError
        name = stack_name(stage)
        importing = adopt.resources_to_import(template, present, self.bucket_name(stage))
        body = json.dumps(adopt.import_template(template, importing, self.tables_as_kept(template, importing)),
                          separators=(",", ":"))
        self.cfn.create_change_set(StackName=name, ChangeSetName=adopt.CHANGE_SET, ChangeSetType="IMPORT",
                                   TemplateBody=body, Parameters=parameters, Capabilities=CAPABILITIES,
                                   ResourcesToImport=importing, Tags=[{"Key": "spikes:stage", "Value": stage}])
        waiting = {"StackName": name, "WaiterConfig": {"Delay": self.poll_seconds, "MaxAttempts": WAIT_ATTEMPTS}}
        try:
            self.cfn.get_waiter("change_set_create_complete").wait(ChangeSetName=adopt.CHANGE_SET, **waiting)
            self.cfn.execute_change_set(ChangeSetName=adopt.CHANGE_SET, StackName=name)
            self.say(f"Importing {len(importing)} kept tables and bucket into stack {name} ...")
            self.cfn.get_waiter("stack_import_complete").wait(**waiting)
        except WaiterError as exc:
            self.say(self._failure_events(name))
            raise SystemExit(f"The import into stack {name} did not finish: {exc}. The tables and the bucket are as "
                             "they were (retained); the next `make deploy ... IMPORT_DATA=yes` starts it again "
                             "(docs/deploy.md, 'Tearing down').") from exc

    def tables_as_kept(self, template: Dict[str, Any], importing: List[Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
        """Each imported table as it is (infra/adopt.table_as_kept), for the update to add what it lacks."""
        dynamodb = self.session.client("dynamodb", region_name=self.region)
        kept = {}
        for item in importing:
            name = item["ResourceIdentifier"].get("TableName")
            if name:
                ttl = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
                kept[item["LogicalResourceId"]] = adopt.table_as_kept(
                    template["Resources"][item["LogicalResourceId"]], dynamodb.describe_table(TableName=name)["Table"],
                    ttl.get("TimeToLiveStatus") in ("ENABLED", "ENABLING"))
        return kept

    def delete_tables(self, tables: List[str]) -> None:
        from botocore.exceptions import ClientError
        dynamodb = self.session.client("dynamodb", region_name=self.region)
        for table in tables:
            try:
                dynamodb.update_table(TableName=table, DeletionProtectionEnabled=False)
                dynamodb.get_waiter("table_exists").wait(TableName=table)
                dynamodb.delete_table(TableName=table)
                dynamodb.get_waiter("table_not_exists").wait(TableName=table)
                self.say(f"Deleted table {table}")
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ResourceNotFoundException":
                    raise

    def delete_bucket(self, bucket: str) -> None:
        from botocore.exceptions import ClientError
        try:
            # Every version and delete marker: a versioned bucket with any left is not empty, and
            # S3 refuses to delete it (an unversioned bucket lists each object once, version "null").
            for page in self.s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
                keys = [{"Key": item["Key"], "VersionId": item["VersionId"]}
                        for item in page.get("Versions", []) + page.get("DeleteMarkers", [])]
                if keys:
                    self.s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
            self.s3.delete_bucket(Bucket=bucket)
            self.say(f"Deleted bucket {bucket}")
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "NoSuchBucket":
                raise

    def delete_data(self, stage: str, tables: List[str], bucket: str) -> None:
        self.delete_tables(tables)
        self.delete_bucket(bucket)
        names = [stack.ssm_path(stage) + name for name in secrets.existing_parameters(self.ssm, stage)]
        if names:
            self.ssm.delete_parameters(Names=names)
            self.say(f"Deleted SSM parameters {', '.join(names)}")
