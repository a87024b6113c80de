"""The packaged template: lint-clean, complete, and created by `make deploy`'s code in moto's
CloudFormation with every table, index, TTL and the bucket the code expects."""
from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from pydantic import ValidationError

from chalicelib.limit_settings import MAX_PRESIGN_TTL_SECONDS
from chalicelib.services.presigned_uploads import unfinished_upload_seconds
from chalicelib.settings import Settings
from chalicelib.store.files import ShareFiles
from chalicelib.store.models import ALL_MODELS, configure_models
from chalicelib.store.setup import MODELS_WITH_TTL, TTL_ATTRIBUTE, create_bucket
from infra import policy, stack
from infra.deploy import Deployer
from tests.deploy.conftest import MAIL_FROM, STAGE, deploy_stack, function_environment

pytestmark = pytest.mark.usefixtures("clean_spikes_env")


def resources_of(template: dict, kind: str) -> dict:
    return {key: value for key, value in template["Resources"].items() if value["Type"] == kind}


@pytest.mark.parametrize("name", ["sam.json", "template.json"])
def test_cfn_lint_finds_nothing(built, name):
    path = Path(built["dir"]) / name
    result = subprocess.run([str(Path(sys.executable).with_name("cfn-lint")), str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_template_declares_the_whole_stage(built):
    template = built["template"]
    assert "Transform" not in template  # translated: what moto and `make deploy` create as is
    functions = resources_of(template, "AWS::Lambda::Function")
    assert {f["Properties"]["FunctionName"] for f in functions.values()} == {
        "spikes-prod-api", "spikes-prod-quota-reset", "spikes-prod-share-deletions",
        "spikes-prod-webhook-deliveries", "spikes-prod-usage-report", "spikes-prod-exports"}
    api = functions["APIHandler"]["Properties"]
    assert api["Timeout"] == stack.API_TIMEOUT_SECONDS < 29
    assert functions["QuotaReset"]["Properties"]["Timeout"] == 300
    assert resources_of(template, "AWS::Events::Rule"), "the quota reset schedule"
    tables = resources_of(template, "AWS::DynamoDB::Table")
    assert len(tables) == len(ALL_MODELS)
    for table in tables.values():
        assert table["DeletionPolicy"] == "Retain"
        props = table["Properties"]
        assert props["BillingMode"] == "PAY_PER_REQUEST" and props["DeletionProtectionEnabled"] is True
        assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    bucket = template["Resources"]["ShareBucket"]
    assert bucket["DeletionPolicy"] == "Retain"
    assert bucket["Properties"]["BucketName"] == {"Fn::Sub": "spikes-${Stage}-files-${AWS::AccountId}-${AWS::Region}"}
    assert all(bucket["Properties"]["PublicAccessBlockConfiguration"].values())
    assert bucket["Properties"]["BucketEncryption"]
    assert any("AbortIncompleteMultipartUpload" in rule for rule in bucket["Properties"]["LifecycleConfiguration"]["Rules"])
    groups = resources_of(template, "AWS::Logs::LogGroup")
    assert {g["Properties"]["LogGroupName"] for g in groups.values()} == {
        "/aws/lambda/spikes-prod-api", "/aws/lambda/spikes-prod-quota-reset",
        "/aws/lambda/spikes-prod-share-deletions", "/aws/lambda/spikes-prod-webhook-deliveries",
        "/aws/lambda/spikes-prod-usage-report", "/aws/lambda/spikes-prod-exports", "/spikes/prod/mail-events"}
    assert all(g["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"} for g in groups.values())
    alarms = resources_of(template, "AWS::CloudWatch::Alarm")
    metrics = {(a["Properties"]["MetricName"], json.dumps(a["Properties"]["Dimensions"][0]["Value"]))
               for a in alarms.values() if "Dimensions" in a["Properties"]}
    assert ("5XXError", '"spikes-prod"') in metrics
    for function in ("APIHandler", "QuotaReset"):
        assert ("Errors", json.dumps({"Ref": function})) in metrics
        assert ("Throttles", json.dumps({"Ref": function})) in metrics
    assert ("Errors", json.dumps({"Ref": "ShareDeletions"})) in metrics
    assert ("Errors", json.dumps({"Ref": "UsageReport"})) in metrics
    assert functions["UsageReport"]["Properties"]["Timeout"] == 120
    assert ("Errors", json.dumps({"Ref": "Exports"})) in metrics
    assert functions["Exports"]["Properties"]["Timeout"] == 120


# Indexes read the older way when DynamoDB refuses them (store/new_indexes.not_ready): a denial
# is logged for the operator, as a grant missing for good would otherwise hide behind the fallback.
READ_WITH_A_FALLBACK = {"owner_status_index", "id_owner_index", "open_owner_index", "open_project_index"}


def test_every_function_that_reads_an_index_with_a_fallback_alarms_on_its_denial():
    """The exports job reads the shares' owner_status_index (an owner's deletions left out) and the
    open spikes' indexes with the fallback, and its denials raised no alarm: only the API's did."""
    source = Path("chalicelib/store/new_indexes.py").read_text()
    assert "store.index_access_denied" in source
    for function, tables in policy.INDEX_QUERIES.items():
        queried = {index for names in tables.values() for index in names}
        if queried & READ_WITH_A_FALLBACK:
            assert "store.index_access_denied" in stack.OPERATOR_EVENTS.get(function, ()), function


def test_every_job_that_parks_work_alarms_when_it_does():
    """Every job that works off a queue of pending units parks one after its attempts
    (services/pending_work.Pass) and logs `pending.parked`: the share_deletions job's was counted
    nowhere, so a deletion parked for good (its share `deleting`, its files and feedback kept)
    raised no alarm while the others' did."""
    parking = {policy.QUOTA_RESET_FUNCTION, policy.WEBHOOK_DELIVERIES_FUNCTION, policy.SHARE_DELETIONS_FUNCTION,
               policy.EXPORTS_FUNCTION}
    assert {function for function, events in stack.OPERATOR_EVENTS.items() if "pending.parked" in events} == parking


def test_work_parked_for_an_operator_raises_an_alarm(built):
    """Each event that leaves work for an operator is counted from its function's log group
    into the metric of one alarm, under the name and level the code logs it with."""
    resources = built["template"]["Resources"]
    alarm = resources["OperatorActionAlarm"]["Properties"]
    assert alarm["Threshold"] == 1 and alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    filters = resources_of(built["template"], "AWS::Logs::MetricFilter")
    source = "\n".join(path.read_text() for path in Path("chalicelib").rglob("*.py"))
    assert len(filters) == len(stack.OPERATOR_EVENTS)
    for function, events in stack.OPERATOR_EVENTS.items():
        function_id = policy.LOGICAL_IDS[function]
        properties = filters[f"{function_id}OperatorEvents"]["Properties"]
        assert properties["LogGroupName"] == {"Ref": f"{function_id}LogGroup"}
        (metric,) = properties["MetricTransformations"]
        assert (metric["MetricNamespace"], metric["MetricName"], metric["MetricValue"]) == (
            alarm["Namespace"], alarm["MetricName"], "1")
        for event in events:
            assert f'($.event = "{event}")' in properties["FilterPattern"]
            assert f'log.error("{event}"' in source, event  # the line the filter counts


def test_bounces_and_complaints_reach_a_log_group(built):
    resources = built["template"]["Resources"]
    destination = resources["MailEventsDestination"]["Properties"]
    assert destination["ConfigurationSetName"] == {"Ref": "MailEvents"}
    assert set(destination["EventDestination"]["MatchingEventTypes"]) >= {"bounce", "complaint"}
    rule = resources["MailEventsRule"]["Properties"]
    assert rule["EventPattern"]["detail"]["mail"]["tags"]["ses:configuration-set"] == ["spikes-prod"]
    assert rule["Targets"][0]["Arn"] == {"Fn::GetAtt": ["MailEventsLogGroup", "Arn"]}
    assert resources["MailEventsLogGroup"]["Properties"]["LogGroupName"] == "/spikes/prod/mail-events"
    assert "MailEventsLogGroup.Arn" in resources["MailEventsLogPolicy"]["Properties"]["PolicyDocument"]["Fn::Sub"]
    for function in resources_of(built["template"], "AWS::Lambda::Function").values():
        assert function["Properties"]["Environment"]["Variables"]["SPIKES_MAIL_CONFIGURATION_SET"] == {"Ref": "MailEvents"}


def test_gateway_responses_answer_in_the_envelope(built):
    rest_api = resources_of(built["template"], "AWS::ApiGateway::RestApi")["RestAPI"]["Properties"]
    assert rest_api["Name"] == rest_api["Body"]["info"]["title"] == "spikes-prod"  # the 5xx alarm's ApiName
    responses = rest_api["Body"]["x-amazon-apigateway-gateway-responses"]
    expected = {"DEFAULT_4XX": None, "DEFAULT_5XX": None, "MISSING_AUTHENTICATION_TOKEN": "404",
                "REQUEST_TOO_LARGE": "413", "THROTTLED": "429", "INTEGRATION_TIMEOUT": "503"}
    for kind, status in expected.items():
        response = responses[kind]
        assert response.get("statusCode") == status
        # API Gateway fills $context.requestId; what is left must be the contract's JSON.
        body = json.loads(response["responseTemplates"]["application/json"].replace("$context.requestId", "r-1"))
        assert body["request_id"] == "r-1" and body["error"] and body["code"]
        assert response["responseParameters"]["gatewayresponse.header.Access-Control-Allow-Origin"] == "'*'"
    assert responses["THROTTLED"]["responseParameters"]["gatewayresponse.header.Retry-After"] == "'1'"
    assert json.loads(responses["THROTTLED"]["responseTemplates"]["application/json"])["code"] == "RATE_LIMIT"


def test_policies_name_exactly_this_stages_resources(built):
    roles = resources_of(built["template"], "AWS::IAM::Role")
    assert set(roles) == set(stack.ROLE_IDS.values()), "one role per function, nothing else"
    for role_id, role in roles.items():
        (document,) = [p["PolicyDocument"] for p in role["Properties"]["Policies"]]
        for statement in document["Statement"]:
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            for resource in resources:
                text = json.dumps(resource)
                assert "*" not in text.replace(":*\"", "\"").replace("/*\"", "\""), (role_id, text)
        actions = [action for statement in document["Statement"] for action in statement["Action"]]
        assert ("dynamodb:Scan" in actions) == (role_id == "QuotaResetRole")
    functions = resources_of(built["template"], "AWS::Lambda::Function")
    for function, role in stack.ROLE_IDS.items():
        assert functions[policy.LOGICAL_IDS[function]]["Properties"]["Role"] == {"Fn::GetAtt": [role, "Arn"]}


def test_stripe_calls_fit_inside_the_api_timeout():
    from stripe._http_client import HTTPClient
    settings = Settings()
    retries = settings.stripe_max_network_retries
    backoff = sum(min(HTTPClient.INITIAL_DELAY * 2 ** (n - 1), HTTPClient.MAX_DELAY) for n in range(1, retries + 1))
    one_call = (retries + 1) * settings.stripe_timeout_seconds + backoff
    calls_per_checkout = 2  # customers.create, checkout.sessions.create
    assert calls_per_checkout * one_call + 2 < stack.API_TIMEOUT_SECONDS < 29


def test_stage_names_are_checked():
    for bad in ("Prod", "a" * 21, "1prod", "prod_1", ""):
        with pytest.raises(ValueError):
            stack.check_stage(bad)
    assert stack.check_stage("staging-2") == "staging-2"


# --- the stack in moto ---------------------------------------------------------------------

def code_settings(environment: dict) -> Settings:
    """The settings the deployed function builds from its environment (secrets aside)."""
    values = {key[len("SPIKES_"):].lower(): value for key, value in environment.items() if key.startswith("SPIKES_")}
    values.pop("ssm_parameter_path", None)
    return Settings.model_construct(**{**Settings().model_dump(), **values})


def test_the_stack_holds_every_table_index_ttl_and_the_bucket_the_code_uses(built):
    with mock_aws():
        deployed = deploy_stack(built)
        outputs = deployed["outputs"]
        environment = function_environment("spikes-prod-api")
        assert function_environment("spikes-prod-quota-reset") == environment
        assert function_environment("spikes-prod-share-deletions") == environment
        assert function_environment("spikes-prod-webhook-deliveries") == environment
        assert function_environment("spikes-prod-usage-report") == environment
        assert function_environment("spikes-prod-exports") == environment
        settings = code_settings(environment)
        assert settings.stage == STAGE and settings.mail_mode == "ses"
        assert settings.mail_sender == f"Spikes <{MAIL_FROM}>"
        assert settings.public_base_url == outputs["ApiUrl"]
        assert outputs["StripeWebhookUrl"] == outputs["ApiUrl"] + "/webhooks/stripe"
        dynamodb = boto3.client("dynamodb")
        configure_models(settings)
        for model in ALL_MODELS:
            expected = model._get_schema()
            table = dynamodb.describe_table(TableName=model.Meta.table_name)["Table"]
            # CloudFormation lists the hash key first; PynamoDB lists them by name.
            assert table["KeySchema"] == stack.hash_key_first(expected["key_schema"]), model.__name__
            assert {(a["AttributeName"], a["AttributeType"]) for a in table["AttributeDefinitions"]} == {
                (a["AttributeName"], a["AttributeType"]) for a in expected["attribute_definitions"]}
            assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
            assert table.get("DeletionProtectionEnabled") is True
            indexes = {i["IndexName"]: (i["KeySchema"], i["Projection"]["ProjectionType"])
                       for i in table.get("GlobalSecondaryIndexes", [])}
            assert indexes == {i["index_name"]: (stack.hash_key_first(i["key_schema"]), i["projection"]["ProjectionType"])
                               for i in expected.get("global_secondary_indexes", [])}, model.__name__
            # moto's CloudFormation accepts TimeToLiveSpecification without applying it: read it
            # from the created table's resource in the template.
            (declared,) = [t["Properties"] for t in resources_of(built["template"], "AWS::DynamoDB::Table").values()
                           if t["Properties"]["TableName"] == model.Meta.table_name]
            if model in MODELS_WITH_TTL:
                assert declared["TimeToLiveSpecification"] == {"AttributeName": TTL_ATTRIBUTE, "Enabled": True}
                assert model.get_attributes()[TTL_ATTRIBUTE].attr_type == "N"
            else:
                assert "TimeToLiveSpecification" not in declared
        s3 = boto3.client("s3")
        assert settings.bucket_name == outputs["BucketName"] == "spikes-prod-files-123456789012-us-east-1"
        s3.head_bucket(Bucket=settings.bucket_name)  # its settings: test_template_declares_the_whole_stage
        logs = boto3.client("logs").describe_log_groups(logGroupNamePrefix="/aws/lambda/spikes-prod")["logGroups"]
        assert {(g["logGroupName"], g.get("retentionInDays")) for g in logs} == {
            ("/aws/lambda/spikes-prod-api", 30), ("/aws/lambda/spikes-prod-quota-reset", 30),
            ("/aws/lambda/spikes-prod-share-deletions", 30), ("/aws/lambda/spikes-prod-webhook-deliveries", 30),
            ("/aws/lambda/spikes-prod-usage-report", 30), ("/aws/lambda/spikes-prod-exports", 30)}
        parameters = boto3.client("ssm").get_parameters_by_path(Path="/spikes/prod/")["Parameters"]
        assert {p["Name"] for p in parameters} == {"/spikes/prod/secret_key", "/spikes/prod/token"}
        assert all(p["Type"] == "SecureString" for p in parameters)
        assert "Admin token of stage prod" in deployed["log"]
        assert "Stripe webhook URL:" in deployed["log"] and "<script src=" in deployed["log"]


def test_a_second_deploy_updates_the_same_stack_and_destroy_keeps_the_data(built, monkeypatch):
    from chalicelib.store import spike_ids
    from tests.factories import as_before_migrations
    with mock_aws():
        first = deploy_stack(built)
        stack_id = boto3.client("cloudformation").describe_stacks(StackName="spikes-prod")["Stacks"][0]["StackId"]
        # Spikes stored by a version before owner_project: the upgrade's deploy indexes them.
        dynamodb = boto3.client("dynamodb")
        tables = stack.table_names(STAGE)
        dynamodb.put_item(TableName=tables["spikes"], Item={
            "spike_id": {"S": "spk_old"}, "public_id": {"S": "old"}, "project": {"S": "shr_1"},
            "owner_id": {"S": "usr_1"}, "sort_key": {"S": "2026-01-01T00:00:00.000Z#spk_old"}, "feed": {"S": "all"},
            "type": {"S": "page"}, "project_key": {"S": "shr_1"}, "created_at": {"S": "2026-01-01T00:00:00.000Z"}})
        dynamodb.delete_item(TableName=tables["ledger"], Key={"pk": {"S": spike_ids.BACKFILL_MARKER}})
        as_before_migrations(monkeypatch)  # its marker deleted just above, from the stage's own table
        again = deploy_stack(built, mail_from=None, alarm_email="ops@spikes.example")
        assert "1 spikes indexed; done." in again["log"]
        stored = dynamodb.get_item(TableName=tables["spikes"], Key={"spike_id": {"S": "spk_old"}})["Item"]
        assert stored["owner_project"] == {"S": "usr_1#shr_1"}
        described = boto3.client("cloudformation").describe_stacks(StackName="spikes-prod")["Stacks"]
        assert [s["StackId"] for s in described] == [stack_id]
        assert again["outputs"]["ApiUrl"] == first["outputs"]["ApiUrl"]
        assert "Admin token" not in again["log"], "secrets are generated once"
        values = {p["ParameterKey"]: p["ParameterValue"] for p in described[0]["Parameters"]}
        assert values["MailFrom"] == MAIL_FROM and values["AlarmEmail"] == "ops@spikes.example"

        out = io.StringIO()
        Deployer(out=out).destroy(STAGE)
        assert "Kept (they hold users' data)" in out.getvalue() and "DELETE_DATA=yes" in out.getvalue()
        tables = boto3.client("dynamodb").list_tables()["TableNames"]
        assert set(stack.table_names(STAGE).values()) <= set(tables)
        boto3.client("s3").head_bucket(Bucket=first["outputs"]["BucketName"])

        Deployer(out=out).destroy(STAGE, delete_data=True, confirmed=STAGE)
        assert not set(stack.table_names(STAGE).values()) & set(boto3.client("dynamodb").list_tables()["TableNames"])
        names = [b["Name"] for b in boto3.client("s3").list_buckets()["Buckets"]]
        assert first["outputs"]["BucketName"] not in names
        assert not boto3.client("ssm").get_parameters_by_path(Path="/spikes/prod/")["Parameters"]


def test_a_custom_domain_becomes_the_public_url(built):
    """moto cannot create an API Gateway domain name: checked on the template."""
    template = built["template"]
    domain = {"Fn::Sub": "https://${DomainName}"}
    for function in resources_of(template, "AWS::Lambda::Function").values():
        variables = function["Properties"]["Environment"]["Variables"]
        assert variables["SPIKES_PUBLIC_BASE_URL"] == {"Fn::If": ["HasCustomDomain", domain, {"Ref": "PublicBaseUrl"}]}
    assert template["Outputs"]["PublicUrl"]["Value"]["Fn::If"][:2] == ["HasCustomDomain", domain]
    assert template["Resources"]["CustomDomain"]["Condition"] == "HasCustomDomain"
    assert template["Resources"]["CustomDomain"]["Properties"]["RegionalCertificateArn"] == {"Ref": "CertificateArn"}
    mapping = template["Resources"]["CustomDomainMapping"]["Properties"]
    assert mapping["RestApiId"] == {"Ref": "RestAPI"} and mapping["DomainName"] == {"Ref": "CustomDomain"}


def test_the_first_deploy_needs_a_mail_sender(built):
    with mock_aws():
        with pytest.raises(SystemExit, match="MAIL_FROM"):
            deploy_stack(built, mail_from=None)


def test_policy_renders_for_any_stage():
    document = policy.function_policy("staging", policy.API_FUNCTION, stack.table_names("staging"), "/spikes/staging/")
    text = json.dumps(document)
    assert "spikes-staging-spikes" in text and "spikes-prod" not in text
    assert "parameter/spikes/staging/secret_key" in text


def test_the_deploy_explains_ses_verification_and_the_sandbox(built):
    """Magic links are the only way in: the deploy asks SES to verify an unknown sender, says
    so, and says when the account is still in the SES sandbox; a verified sender is not asked again."""
    with mock_aws():
        first = deploy_stack(built)["log"]
        assert f"SES: a verification mail was sent to {MAIL_FROM}" in first
        assert "sandbox" in first and "docs/deploy.md" in first
        ses = boto3.client("ses")
        assert MAIL_FROM in ses.list_identities()["Identities"]
        again = deploy_stack(built, mail_from=None)["log"]
        assert "verification mail" not in again  # moto verifies at once; AWS would say "Pending"


def test_the_agent_tier_and_signup_are_options_of_the_deploy(built):
    """An AWS stage turns on the metered agent tier and the open key signup by deploy options,
    kept between deploys like every parameter; left out, the functions get neither."""
    with mock_aws():
        first = deploy_stack(built)
        # Signup off: the printed smoke command says it needs a credential (else it stops there).
        assert "make smoke URL=" in first["log"] and "TOKEN=<a bearer token from `spikes login`" in first["log"]
        plain = function_environment("spikes-prod-api")
        assert not {"SPIKES_STRIPE_AGENT_SPIKE_PRICE_ID", "SPIKES_STRIPE_AGENT_SHARE_PRICE_ID",
                    "SPIKES_AGENT_SIGNUP"} & set(plain)
        deploy_stack(built, stripe_agent_spike_price_id="price_spike", stripe_agent_share_price_id="price_share",
                     agent_signup="true")
        assert "TOKEN=" not in deploy_stack(built, mail_from=None)["log"], "signup on: the smoke signs up itself"
        environment = function_environment("spikes-prod-api")
        assert (environment["SPIKES_STRIPE_AGENT_SPIKE_PRICE_ID"], environment["SPIKES_STRIPE_AGENT_SHARE_PRICE_ID"],
                environment["SPIKES_AGENT_SIGNUP"]) == ("price_spike", "price_share", "true")


def test_the_artifact_bucket_refuses_anything_but_tls(built):
    """The function code CloudFormation deploys is read from the artifact bucket: like the share
    bucket it refuses plain HTTP, also when an earlier version created it without the policy."""
    with mock_aws():
        s3 = boto3.client("s3")
        artifacts = "spikes-deploy-123456789012-us-east-1"
        s3.create_bucket(Bucket=artifacts)  # as an earlier version left it: no policy
        deploy_stack(built)
        statement, = json.loads(s3.get_bucket_policy(Bucket=artifacts)["Policy"])["Statement"]
        assert (statement["Effect"], statement["Action"], statement["Condition"]) == \
            ("Deny", "s3:*", {"Bool": {"aws:SecureTransport": "false"}})
        assert set(statement["Resource"]) == {f"arn:aws:s3:::{artifacts}", f"arn:aws:s3:::{artifacts}/*"}


def test_a_deletions_kept_export_expires_even_when_its_deletion_never_started(built):
    """A DELETE keeps the share's export (its feedback) under ``deletions/`` before its
    tombstone, for a retry to answer; one that died in between (a timeout, a throttled write)
    left that copy for good, though the share was not deleted, and kept any of its spikes
    deleted later. The bucket now expires that prefix after a day, in AWS and locally
    (docs/security.md, 247); a deletion that goes on drops it itself within minutes."""
    rules = {rule["Id"]: rule for rule in
             built["template"]["Resources"]["ShareBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]}
    kept = rules["expire-kept-exports"]
    assert (kept["Status"], kept["Prefix"], kept["ExpirationInDays"]) == ("Enabled", "deletions/", 1)
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        create_bucket(Settings(), s3)
        ShareFiles(s3, Settings().bucket_name).keep_export("sh_x", b"[]")
        written = [item["Key"] for item in s3.list_objects_v2(Bucket=Settings().bucket_name)["Contents"]]
        local = s3.get_bucket_lifecycle_configuration(Bucket=Settings().bucket_name)["Rules"]
    assert written == ["deletions/sh_x.json"]
    assert {"ID": "expire-kept-exports", "Status": "Enabled", "Filter": {"Prefix": "deletions/"},
            "Expiration": {"Days": 1}} in local


def test_staged_uploads_expire_but_outlive_any_upload_that_may_still_complete(built):
    """A presigned URL still valid after its share was completed or deleted writes to a staging
    area no job reads again: the bucket expires it, in AWS and locally, but never before a
    completion could still need it (docs/security.md, finding 5)."""
    rules = {rule["Id"]: rule for rule in
             built["template"]["Resources"]["ShareBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]}
    staged = rules["expire-staged-uploads"]
    assert staged["Prefix"] == "uploads/" and ShareFiles.staging_key("sh_x", "index.html").startswith("uploads/")
    longest = Settings(presign_ttl_seconds=MAX_PRESIGN_TTL_SECONDS).presign_ttl_seconds
    assert staged["ExpirationInDays"] * 24 * 3600 > unfinished_upload_seconds(longest)
    with pytest.raises(ValidationError):
        Settings(presign_ttl_seconds=MAX_PRESIGN_TTL_SECONDS + 1)
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        create_bucket(Settings(), s3)
        local = s3.get_bucket_lifecycle_configuration(Bucket=Settings().bucket_name)["Rules"]
    assert {"ID": "expire-staged-uploads", "Status": "Enabled", "Filter": {"Prefix": "uploads/"},
            "Expiration": {"Days": staged["ExpirationInDays"]}} in local
