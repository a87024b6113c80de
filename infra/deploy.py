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
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from infra import package, secrets, stack, staged
from infra.cloudformation import CREATED_AGAIN, POLL_SECONDS, WAIT_ATTEMPTS, StackOperations, stack_name
from infra.kept_data import KeptData
from infra.options import issued_certificate_problems, problems as option_problems
from infra.region import operator_region
from infra.report import DeployReport

ROOT = Path(__file__).resolve().parent.parent
# Deploy options -> template parameters. Unset options keep the stack's previous value.
OPTION_PARAMETERS = {"mail_from": "MailFrom", "mail_from_name": "MailFromName", "domain_name": "DomainName",
                     "certificate_arn": "CertificateArn", "stripe_price_id": "StripePriceId",
                     "stripe_agent_spike_price_id": "StripeAgentSpikePriceId",
                     "stripe_agent_share_price_id": "StripeAgentSharePriceId", "agent_signup": "AgentSignup",
                     "alarm_email": "AlarmEmail", "log_retention_days": "LogRetentionDays",
                     "public_base_url": "PublicBaseUrl"}


class Deployer(StackOperations, KeptData, DeployReport):
    """One operator's deploy or destroy of a stage: the AWS clients of the operator's region and
    account, the stack operations (infra/cloudformation.py), the kept tables and bucket
    (infra/kept_data.py) and the closing report (infra/report.py)."""

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
        # Without a trailing slash: the printed webhook and widget URLs append their paths to it.
        values["PublicBaseUrl"] = (given.get("PublicBaseUrl") or kept or known_url or "").rstrip("/")
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
        from chalicelib.store import deliveries, open_spikes, pending_claims, spike_ids
        from chalicelib.store.models import configure_models
        settings = stack.stage_settings(stage).model_copy(
            update={"region": self.region, "aws_endpoint_url": os.environ.get("AWS_ENDPOINT_URL")})
        configure_models(settings)
        # CloudFormation ends an update while DynamoDB still builds an index it added; the steps
        # below mark an index of open spikes usable only once it is ACTIVE.
        staged.wait_for_indexes(self, [stack.table_names(stage)["spikes"]], WAIT_ATTEMPTS, stop=False)
        # Each deploy looks again (a Scan each): an earlier version may have written the old form
        # since the step was done (its last invocations, or it was deployed again meanwhile).
        self.say("Checking stored spikes, held webhook events and claims for an earlier version's form ...")
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
        claims = pending_claims.record_unfinished(clock.epoch())  # a Scan of the claimed accounts' index
        if claims:
            self.say(f"  {claims} incomplete claims recorded; the share_deletions job finishes them.")

    @staticmethod
    def _option_value(option: str, parameter: str, value: str) -> str:
        """An option given empty (``make deploy DOMAIN_NAME=``) clears it: the template's default."""
        if value.strip():
            return value.strip()
        if "Default" not in stack.PARAMETERS[parameter]:
            raise SystemExit(f"{option.upper()} cannot be cleared: the stage needs one.")
        return str(stack.PARAMETERS[parameter]["Default"])

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
