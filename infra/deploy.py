"""``make deploy`` / ``make destroy``: the stage as a CloudFormation stack named ``spikes-<stage>``.

Deploy state lives in AWS (the stack), so any machine with credentials updates the same stage.
The packaged template is over CloudFormation's 51,200-byte inline limit: code and template go
to an artifact bucket (``spikes-deploy-<account>-<region>``) first. Works with boto3 alone;
``AWS_ENDPOINT_URL`` points it at an emulator (the tests use moto).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Set

from infra import adopt, package, secrets, stack, staged
from infra.options import issued_certificate_problems, problems as option_problems
from infra.region import operator_region

ROOT = Path(__file__).resolve().parent.parent
CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"]
POLL_SECONDS = 5
WAIT_ATTEMPTS = 360  # half an hour at POLL_SECONDS: the longest a stack operation is waited for
# Deploy options -> template parameters. Unset options keep the stack's previous value.
OPTION_PARAMETERS = {"mail_from": "MailFrom", "mail_from_name": "MailFromName", "domain_name": "DomainName",
                     "certificate_arn": "CertificateArn", "stripe_price_id": "StripePriceId",
                     "stripe_agent_spike_price_id": "StripeAgentSpikePriceId",
                     "stripe_agent_share_price_id": "StripeAgentSharePriceId", "agent_signup": "AgentSignup",
                     "alarm_email": "AlarmEmail", "log_retention_days": "LogRetentionDays",
                     "public_base_url": "PublicBaseUrl"}
# A stack in one of these holds nothing to update: it is created again (after a look at what it holds).
CREATED_AGAIN = ("ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "REVIEW_IN_PROGRESS", "IMPORT_ROLLBACK_COMPLETE")


def stack_name(stage: str) -> str:
    return f"spikes-{stage}"


class Deployer:
    def __init__(self, session: Any = None, out=sys.stdout):
        import boto3
        self.session = session or boto3.session.Session()
        self.out = out
        self.poll_seconds = POLL_SECONDS
        self.region = operator_region(self.session)
        self.cfn = self.session.client("cloudformation", region_name=self.region)
        self.s3 = self.session.client("s3", region_name=self.region)
        self.ssm = self.session.client("ssm", region_name=self.region)
        self.ses = self.session.client("ses", region_name=self.region)
        self.account = self.session.client("sts", region_name=self.region).get_caller_identity()["Account"]

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    # --- stack state --------------------------------------------------------------------------

    def describe(self, stage: str) -> Optional[Dict[str, Any]]:
        from botocore.exceptions import ClientError
        try:
            stacks = self.cfn.describe_stacks(StackName=stack_name(stage))["Stacks"]
        except ClientError as exc:
            if "does not exist" in str(exc):
                return None
            raise
        return stacks[0] if stacks and stacks[0]["StackStatus"] != "DELETE_COMPLETE" else None

    def wait_while_in_progress(self, stage: str) -> Optional[Dict[str, Any]]:
        """The stack once no operation runs on it (an earlier deploy interrupted by Ctrl-C goes
        on in AWS), bounded as the deploy's own waits are; None once it is gone."""
        described = self.describe(stage)
        for _ in range(WAIT_ATTEMPTS):
            # REVIEW_IN_PROGRESS is a change set never executed: nothing runs, nothing will.
            if not described or not described["StackStatus"].endswith("_IN_PROGRESS") \
                    or described["StackStatus"] == "REVIEW_IN_PROGRESS":
                return described
            self.say(f"Stack {stack_name(stage)} is {described['StackStatus']} (an earlier deploy or destroy is "
                     "still running in AWS); waiting for it to finish ...")
            time.sleep(self.poll_seconds)
            described = self.describe(stage)
        raise SystemExit(f"Stack {stack_name(stage)} is still {described['StackStatus']}: try again later.")

    def settled(self, stage: str) -> Optional[Dict[str, Any]]:
        """The stack in a state an update starts from, or None when a creation is needed. The
        states a failed deploy or destroy leaves refuse updates: each is brought back, or the
        operator is told what to do, rather than failing every later deploy with AWS's error."""
        name = stack_name(stage)
        existing = self.wait_while_in_progress(stage)
        status = existing["StackStatus"] if existing else None
        if status in ("ROLLBACK_COMPLETE", "ROLLBACK_FAILED"):
            # A first creation that failed: nothing to update; its retained tables and bucket
            # are checked as leftovers before the new creation.
            self.say(f"Stack {name} failed its first creation ({status}); deleting it before trying again.")
            self.delete_stack(stage)
            return None
        if status in ("REVIEW_IN_PROGRESS", "IMPORT_ROLLBACK_COMPLETE") and not self.holds_resources(name):
            # An import of kept data (IMPORT_DATA=yes) that did not finish: the stack holds
            # nothing (the tables and the bucket are retained); it is created again.
            self.say(f"Stack {name} holds nothing ({status}: an import that did not finish); deleting it before "
                     "trying again.")
            self.delete_stack(stage)
            return None
        if status == "UPDATE_ROLLBACK_FAILED":
            # An update failed and so did its rollback: the stack takes no update until the
            # rollback is finished.
            self.say(f"Stack {name} is {status}: an earlier update failed and so did its rollback; finishing the "
                     "rollback ...")
            self.cfn.continue_update_rollback(StackName=name)
            existing = self.wait_while_in_progress(stage)
            if not existing or existing["StackStatus"] != "UPDATE_ROLLBACK_COMPLETE":
                self.say(self._failure_events(name))
                raise SystemExit(
                    f"Stack {name} could not finish its rollback ({existing and existing['StackStatus']}). Fix or "
                    "delete the failed resources listed above, or continue the rollback skipping them (CloudFormation "
                    "console: Stack actions, Continue update rollback), then deploy again (docs/deploy.md, "
                    "'Upgrading').")
            return existing
        if status == "DELETE_FAILED":
            self.say(self._failure_events(name))
            raise SystemExit(f"Stack {name} is {status}: an earlier `make destroy` did not finish. Run "
                             f"`make destroy STAGE={stage}` again (it retries the deletion), then deploy.")
        return existing

    def holds_resources(self, name: str) -> bool:
        return bool(self.cfn.list_stack_resources(StackName=name)["StackResourceSummaries"])

    def delete_stack(self, stage: str) -> None:
        from botocore.exceptions import WaiterError
        name = stack_name(stage)
        self.cfn.delete_stack(StackName=name)
        try:
            self.cfn.get_waiter("stack_delete_complete").wait(
                StackName=name, WaiterConfig={"Delay": self.poll_seconds, "MaxAttempts": WAIT_ATTEMPTS})
        except WaiterError as exc:
            self.say(self._failure_events(name))
            raise SystemExit(f"Stack {name} was not deleted: {exc}. Fix or delete the failed resources listed "
                             f"above, then `make destroy STAGE={stage}` again.") from exc

    @staticmethod
    def outputs(described: Dict[str, Any]) -> Dict[str, str]:
        return {item["OutputKey"]: item["OutputValue"] for item in described.get("Outputs", [])}

    # --- artifacts ----------------------------------------------------------------------------

    def artifact_bucket(self) -> str:
        from botocore.exceptions import ClientError
        name = f"spikes-deploy-{self.account}-{self.region}"
        try:
            self.s3.head_bucket(Bucket=name)
            self.require_tls(name)  # on a bucket an earlier version created without it, too
            return name
        except ClientError:
            pass
        config = {} if self.region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": self.region}}
        self.s3.create_bucket(Bucket=name, **config)
        self.s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration={
            "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True})
        self.s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
        self.s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={"Rules": [
            {"ID": "old-artifacts", "Status": "Enabled", "Filter": {"Prefix": ""}, "Expiration": {"Days": 90}}]})
        self.require_tls(name)
        self.say(f"Created artifact bucket s3://{name}")
        return name

    def require_tls(self, bucket: str) -> None:
        """The function code CloudFormation deploys is read from here: refuse anything but TLS,
        as the share bucket does (infra/stack.py)."""
        arn = f"arn:{self.session.get_partition_for_region(self.region)}:s3:::{bucket}"
        self.s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(stack.tls_only_policy(arn, f"{arn}/*")))

    def upload(self, bucket: str, key: str, path: Path) -> str:
        self.s3.upload_file(str(path), bucket, key)
        return key

    # --- deploy -------------------------------------------------------------------------------

    def deploy(self, stage: str, build_dir: Path, options: Dict[str, Any], interactive: bool = False) -> Dict[str, str]:
        stack.check_stage(stage)
        built = build_dir / stage
        if not (built / "template.json").exists():
            raise SystemExit(f"{built}/template.json is missing: run `make package STAGE={stage}` first")
        given = {parameter: self._option_value(option, parameter, str(options[option]))
                 for option, parameter in OPTION_PARAMETERS.items() if options.get(option) is not None}
        self.check_options(stage, given)
        existing = self.settled(stage)
        previous = {p["ParameterKey"]: p.get("ParameterValue", "") for p in (existing or {}).get("Parameters", [])}
        importing = self.clear_leftovers(stage, keep=bool(options.get("import_data"))) if not existing else []

        secrets.ensure_secrets(self.ssm, stage, ask=secrets.prompt_if_interactive() if interactive else None,
                               out=self.out)

        bucket = self.artifact_bucket()
        digest = hashlib.sha256((built / "deployment.zip").read_bytes()).hexdigest()[:20]
        code_key = self.upload(bucket, f"{stage}/code-{digest}.zip", built / "deployment.zip")
        template_bytes = (built / "template.json").read_bytes()
        template_key = self.upload(bucket, f"{stage}/template-{hashlib.sha256(template_bytes).hexdigest()[:20]}.json",
                                   built / "template.json")
        template_url = f"https://{bucket}.s3.{self.region}.amazonaws.com/{template_key}"

        values: Dict[str, Optional[str]] = {"Stage": stage, "CodeBucket": bucket, "CodeKey": code_key, **given}
        # Links in mail and share URLs: the custom domain (the template uses it), else the URL
        # given, else (left out) the one deployed, else (or given empty) the API's own URL, which
        # exists only once the stack does (then a second, quick update).
        known_url = self.outputs(existing).get("ApiUrl") if existing else None
        kept = "" if "PublicBaseUrl" in given else previous.get("PublicBaseUrl", "")
        values["PublicBaseUrl"] = given.get("PublicBaseUrl") or kept or known_url or ""
        declared = set(json.loads(template_bytes).get("Parameters", {}))
        parameters = self._parameters(values, previous, declared)
        if importing:
            self.import_kept(stage, json.loads(template_bytes), parameters, importing)
        if existing is not None or importing:
            # A stack a version or more behind may lack two indexes of a table: one per update.
            staged.add_indexes_in_steps(self, stage, stack_name(stage), json.loads(template_bytes), bucket,
                                        WAIT_ATTEMPTS)
        self._create_or_update(stage, template_url, parameters, update=existing is not None or bool(importing))
        described = self.describe(stage)
        outputs = self.outputs(described)
        uses_domain = any(p["ParameterKey"] == "DomainName" and p.get("ParameterValue") for p in described["Parameters"])
        if not uses_domain and not values["PublicBaseUrl"]:
            self.say("Setting the public base URL to the new API's URL ...")
            values["PublicBaseUrl"] = outputs["ApiUrl"]
            current = {p["ParameterKey"]: p.get("ParameterValue", "") for p in described["Parameters"]}
            self._create_or_update(stage, template_url, self._parameters(values, current, declared), update=True)
            outputs = self.outputs(self.describe(stage))
        self.migrate(stage)
        self.report(stage, outputs, described)
        return outputs

    def check_options(self, stage: str, given: Dict[str, str]) -> None:
        """Refuse, before anything is created or changed, options the stack would fail on late
        (infra/options.py), read against the parameters the stack keeps (a stack whose first
        creation failed is created again: it keeps none)."""
        current = self.wait_while_in_progress(stage)
        creating = not current or current["StackStatus"] in CREATED_AGAIN
        previous = {} if creating else {p["ParameterKey"]: p.get("ParameterValue", "") for p in current["Parameters"]}
        found = option_problems(given, previous, self.region, self.session.get_partition_for_region(self.region),
                                creating)
        merged = {**previous, **given}
        if not found and merged.get("DomainName") and ({"DomainName", "CertificateArn"} & set(given) or creating):
            found = self.certificate_problems(merged["CertificateArn"], merged["DomainName"])
        if found:
            raise SystemExit("Nothing was deployed or changed:\n" + "\n".join(f"  - {item}" for item in found))

    def certificate_problems(self, arn: str, domain: str) -> List[str]:
        """The certificate as ACM has it, when the deploy may read it (else CloudFormation tells)."""
        from botocore.exceptions import ClientError
        try:
            certificate = self.session.client("acm", region_name=self.region).describe_certificate(
                CertificateArn=arn)["Certificate"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ResourceNotFoundException":
                return [f"CERTIFICATE_ARN {arn} is not in ACM in {self.region} of account {self.account}"]
            self.say(f"Could not read the certificate in ACM ({exc.response['Error']['Code']}); deploying with it.")
            return []
        return issued_certificate_problems(certificate, domain)

    def migrate(self, stage: str) -> None:
        """What this version changes in items already stored, once its tables and code are
        in place. Each step is idempotent and resumable: a failed or interrupted deploy is
        finished by the next one, and the code reads both forms meanwhile."""
        import os

        from chalicelib import clock
        from chalicelib.store import deliveries, open_spikes, spike_ids
        from chalicelib.store.models import configure_models
        settings = stack.stage_settings(stage).model_copy(
            update={"region": self.region, "aws_endpoint_url": os.environ.get("AWS_ENDPOINT_URL")})
        configure_models(settings)
        # CloudFormation ends an update while DynamoDB still builds an index it added; the steps
        # below mark an index of open spikes usable only once it is ACTIVE.
        staged.wait_for_indexes(self, [stack.table_names(stage)["spikes"]], WAIT_ATTEMPTS, stop=False)
        # Each deploy looks again (a Scan each): an earlier version may have written the old form
        # since the step was done (its last invocations, or it was deployed again meanwhile).
        self.say("Checking stored spikes and held webhook events for an earlier version's form ...")
        updated = spike_ids.backfill()
        if updated or not spike_ids.backfilled():
            done = "done" if spike_ids.backfilled() else "not finished (spikes kept changing): deploy again to finish"
            self.say(f"  {updated} spikes indexed; {done}.")
        opened = open_spikes.backfill()
        if opened or not open_spikes.backfilled():
            done = "done" if open_spikes.backfilled() else ("not finished (spikes kept changing, or the index "
                                                             "is still building): deploy again to finish")
            self.say(f"  {opened} open spikes indexed; {done}.")
        moved = deliveries.upgrade_held(clock.epoch(), settings.webhook_max_event_age_seconds)
        if moved:
            self.say(f"  {moved} held events indexed; the delivery job ends those no longer paused.")

    @staticmethod
    def _option_value(option: str, parameter: str, value: str) -> str:
        """An option given empty (``make deploy DOMAIN_NAME=``) clears it: the template's default."""
        if value.strip():
            return value.strip()
        if "Default" not in stack.PARAMETERS[parameter]:
            raise SystemExit(f"{option.upper()} cannot be cleared: the stage needs one.")
        return str(stack.PARAMETERS[parameter]["Default"])

    @staticmethod
    def _parameters(values: Dict[str, Optional[str]], previous: Dict[str, str],
                    declared: Set[str]) -> List[Dict[str, Any]]:
        """Given values, else the stack's current ones (explicitly: a template may add parameters),
        of those the template declares: CloudFormation refuses an update naming one a newer
        version of the template dropped."""
        merged = {**previous, **{key: value for key, value in values.items() if value is not None}}
        return [{"ParameterKey": key, "ParameterValue": value} for key, value in sorted(merged.items())
                if key in declared]

    def _create_or_update(self, stage: str, template_url: str, parameters: List[dict], update: bool) -> None:
        from botocore.exceptions import ClientError
        name = stack_name(stage)
        common = dict(StackName=name, TemplateURL=template_url, Parameters=parameters, Capabilities=CAPABILITIES,
                      Tags=[{"Key": "spikes:stage", "Value": stage}])
        if update:
            try:
                self.cfn.update_stack(**common)
            except ClientError as exc:
                if "No updates are to be performed" in str(exc):
                    self.say(f"Stack {name} is already up to date.")
                    return
                raise
            self.say(f"Updating stack {name} ...")
            waiter = "stack_update_complete"
        else:
            self.cfn.create_stack(**common, OnFailure="ROLLBACK", EnableTerminationProtection=False)
            self.say(f"Creating stack {name} ...")
            waiter = "stack_create_complete"
        from botocore.exceptions import WaiterError
        try:
            self.cfn.get_waiter(waiter).wait(StackName=name, WaiterConfig={"Delay": self.poll_seconds,
                                                                           "MaxAttempts": WAIT_ATTEMPTS})
        except WaiterError as exc:
            self.say(self._failure_events(name))
            raise SystemExit(f"Stack {name} did not finish: {exc}") from exc

    def _failure_events(self, name: str) -> str:
        events = self.cfn.describe_stack_events(StackName=name)["StackEvents"][:30]
        failed = [f"  {e['LogicalResourceId']}: {e.get('ResourceStatusReason', '')}" for e in events
                  if e["ResourceStatus"].endswith("FAILED")]
        return "Failed resources:\n" + "\n".join(failed) if failed else "No failed resource reported."

    # --- what is left to do ------------------------------------------------------------------

    def mail_status(self, mail_from: str) -> List[str]:
        """SES: is the sender (or its domain) verified, is the account still in the sandbox."""
        domain = mail_from.split("@", 1)[1]
        attributes = self.ses.get_identity_verification_attributes(Identities=[mail_from, domain])
        states = {name: value["VerificationStatus"] for name, value in attributes["VerificationAttributes"].items()}
        todo = []
        if "Success" not in states.values():
            if not states:
                self.ses.verify_email_identity(EmailAddress=mail_from)
                todo.append(f"SES: a verification mail was sent to {mail_from}; click its link (or verify the domain "
                            f"{domain} in the SES console, see docs/deploy.md). Until then no magic link is sent.")
            else:
                todo.append(f"SES: {mail_from} / {domain} is not verified yet ({', '.join(sorted(set(states.values())))}).")
        try:
            quota = self.ses.get_send_quota()
            if quota.get("Max24HourSend", 0) <= 200:
                todo.append("SES: the account is in the sandbox (mail only to verified addresses, 200 a day); "
                            "request production access (docs/deploy.md, 'Mail (SES)', step 2).")
        except Exception:  # noqa: BLE001 - informational only
            pass
        return todo

    def report(self, stage: str, outputs: Dict[str, str], described: Dict[str, Any]) -> None:
        parameters = {p["ParameterKey"]: p.get("ParameterValue", "") for p in described["Parameters"]}
        url = outputs.get("PublicUrl") or outputs["ApiUrl"]
        todo = self.mail_status(parameters["MailFrom"])
        present = secrets.existing_parameters(self.ssm, stage)
        if "stripe_secret_key" not in present or not parameters.get("StripePriceId"):
            todo.append(f"Stripe: set the keys with `make secrets STAGE={stage}` and the price with "
                        f"`make deploy STAGE={stage} STRIPE_PRICE_ID=price_...` (billing answers 503 until then).")
        if outputs.get("CustomDomainTarget"):
            todo.append(f"DNS: point {parameters['DomainName']} (CNAME or alias) at {outputs['CustomDomainTarget']}.")
        self.say("")
        self.say(f"Stage {stage} is deployed (stack {stack_name(stage)}, region {self.region}).")
        self.say(f"  API URL:              {url}")
        self.say(f"  Stripe webhook URL:   {outputs['StripeWebhookUrl']}  (events: checkout.session.completed, "
                 "customer.subscription.*, invoice.payment_failed)")
        self.say(f"  Widget:               <script src=\"{outputs['WidgetScriptUrl']}\" data-project=\"my-project\" "
                 f"data-endpoint=\"{url}/spikes\"></script>")
        self.say(f"  CLI:                  export SPIKES_API_URL={url}")
        # Without agent signup (off in AWS unless enabled) the smoke needs someone's credential.
        credential = "" if parameters.get("AgentSignup") == "true" else \
            " TOKEN=<a bearer token from `spikes login`, or an API key>"
        self.say(f"  Check it:             make smoke URL={url}{credential}")
        if todo:
            self.say("Still to do by hand:")
            for item in todo:
                self.say(f"  - {item}")
        else:
            self.say("Nothing left to do by hand.")

    # --- destroy ------------------------------------------------------------------------------

    def destroy(self, stage: str, delete_data: bool = False, confirm: Optional[Callable[[str], str]] = None,
                confirmed: Optional[str] = None) -> None:
        """Deleting the stage's data needs its name: ``confirmed`` (``CONFIRM=<stage>``, what a
        script or an agent gives), else the answer to ``confirm`` (a prompt, at a terminal)."""
        stack.check_stage(stage, deploying=False)
        if delete_data:
            self.confirm_data_deletion(stage, confirm, confirmed)
        described = self.wait_while_in_progress(stage)
        bucket = self.outputs(described).get("BucketName") if described else None
        bucket = bucket or self.bucket_name(stage)
        tables = list(stack.table_names(stage).values())
        if described:
            self.say(f"Deleting stack {stack_name(stage)} ...")
            self.delete_stack(stage)
        else:
            self.say(f"No stack {stack_name(stage)} in {self.region}.")
        if not delete_data:
            self.say("Kept (they hold users' data): tables " + ", ".join(tables) + f"; bucket {bucket}; "
                     f"SSM parameters under {stack.ssm_path(stage)}.")
            self.say(f"To delete them too: make destroy STAGE={stage} DELETE_DATA=yes. To deploy the stage again "
                     f"with them: make deploy STAGE={stage} IMPORT_DATA=yes MAIL_FROM=... (docs/deploy.md, 'Tearing down')")
            return
        self.delete_data(stage, tables, bucket)

    def confirm_data_deletion(self, stage: str, confirm: Optional[Callable[[str], str]],
                              confirmed: Optional[str]) -> None:
        """Never a blanket yes: the name must be the stage's own, so a CONFIRM copied with the
        wrong STAGE deletes nothing. Without a terminal and without CONFIRM nothing is deleted."""
        if confirmed is None and confirm is None:
            raise SystemExit(f"Nothing deleted: deleting stage {stage}'s data needs its name confirmed. There is no "
                             f"terminal to ask at: run `make destroy STAGE={stage} DELETE_DATA=yes CONFIRM={stage}`.")
        if confirmed is None:
            confirmed = confirm(f"This deletes stage {stage}'s tables (their point-in-time recovery with them), share "
                                f"bucket and secrets in {self.region}, for good. Type the stage name to go on: ")
        if confirmed.strip() != stage:
            raise SystemExit(f"Nothing deleted: {confirmed.strip()!r} is not {stage!r}.")

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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("deploy")
    up.add_argument("--stage", default="prod", type=stack.stage_argument)
    up.add_argument("--build-dir", default=str(ROOT / "build"))
    up.add_argument("--package", action="store_true", help="package first (make deploy does)")
    for option in OPTION_PARAMETERS:
        up.add_argument("--" + option.replace("_", "-"), default=None)
    up.add_argument("--import-data", action="store_true",
                    help="a new stack takes the tables and the bucket an earlier one of the stage kept")
    down = commands.add_parser("destroy")
    down.add_argument("--stage", default="prod", type=stack.destroyed_stage_argument)
    down.add_argument("--delete-data", action="store_true", help="also delete the tables, the bucket and the secrets")
    down.add_argument("--confirm", default=None, help="the stage's name: confirms --delete-data without a prompt")
    args = parser.parse_args(argv)
    deployer = Deployer()
    if args.command == "destroy":
        deployer.destroy(args.stage, args.delete_data, confirm=input if sys.stdin.isatty() else None,
                         confirmed=args.confirm)
        return 0
    if args.package:
        package.build(args.stage, Path(args.build_dir))
    # An option given empty is kept as such: it clears the parameter (None leaves it as deployed).
    options = {option: getattr(args, option) for option in OPTION_PARAMETERS}
    options["import_data"] = args.import_data
    deployer.deploy(args.stage, Path(args.build_dir), options, interactive=sys.stdin.isatty())
    return 0


if __name__ == "__main__":
    sys.exit(main())
