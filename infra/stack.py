"""Everything the stage needs besides what Chalice generates (the API, the two functions,
the schedule): tables, bucket, roles, log groups, alarms, gateway responses, custom domain,
parameters and outputs. ``merge_into`` deep-merges it into Chalice's SAM template.

Tables come from the PynamoDB models (keys, indexes, projections), names from
``chalicelib.store.tables``: the code and the template read one declaration.
"""
from __future__ import annotations

import copy
import json
import re
from typing import Any, Dict, List, Tuple

from pydantic import SecretStr

from chalicelib.errors import NO_SUCH_ROUTE
from chalicelib.settings import API_TIMEOUT_SECONDS, LOCAL_STAGES, SSM_PATH_VARIABLE, Settings
from chalicelib.store.files import (EXPORTS_PREFIX, KEPT_EXPORT_DAYS, KEPT_EXPORTS_PREFIX, STAGED_UPLOAD_DAYS,
                                    STAGING_PREFIX)
from chalicelib.store.models import ALL_MODELS, LOGICAL_NAMES
from chalicelib.store.setup import MODELS_WITH_TTL, TTL_ATTRIBUTE
from chalicelib.store.tables import table_name
from infra import policy

# Bucket names are global: the stage, account and region make it unique (≤ 63 characters).
STAGE_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,19}$")
API_STAGE = "api"
# The API function's timeout is API_TIMEOUT_SECONDS, which the code it runs reads too (settings.py).
QUOTA_RESET_TIMEOUT_SECONDS = 300
MEMORY_MB = 512
ROLE_IDS = {policy.API_FUNCTION: "ApiHandlerRole", policy.QUOTA_RESET_FUNCTION: "QuotaResetRole",
            policy.SHARE_DELETIONS_FUNCTION: "ShareDeletionsRole",
            policy.WEBHOOK_DELIVERIES_FUNCTION: "WebhookDeliveriesRole",
            policy.USAGE_REPORT_FUNCTION: "UsageReportRole", policy.EXPORTS_FUNCTION: "ExportsRole"}
# Scheduled functions' timeouts: the deliveries run every minute, so one run ends before the next;
# the usage report (every 5 minutes) pauses before its time runs out and the next run goes on.
SCHEDULED_TIMEOUT_SECONDS = {policy.QUOTA_RESET_FUNCTION: 300, policy.SHARE_DELETIONS_FUNCTION: 300,
                             policy.WEBHOOK_DELIVERIES_FUNCTION: 60, policy.USAGE_REPORT_FUNCTION: 120,
                             policy.EXPORTS_FUNCTION: 120}
BUCKET_NAME = "spikes-${Stage}-files-${AWS::AccountId}-${AWS::Region}"
ABANDONED_UPLOAD_DAYS = 1


def check_stage(stage: str, deploying: bool = True) -> str:
    """A stage name a deploy may use. ``deploying`` False (a destroy): also one of the local
    stages' names, so that a stage deployed under one before they were refused can be removed."""
    if not STAGE_PATTERN.match(stage):
        raise ValueError(f"stage {stage!r}: use 1-20 lower-case letters, digits or '-', starting with a letter")
    if deploying and stage in LOCAL_STAGES:
        # The functions would take themselves for make dev or the tests: agent sign-up on
        # unless AGENT_SIGNUP=no, a missing secret or SSM parameter not refused (security finding 197).
        raise ValueError(f"stage {stage!r} is the name make dev and the tests run as, and deployed functions would "
                         "act as the local server (agent sign-up open to anyone, for one): use another name, e.g. "
                         "STAGE=staging")
    return stage


def stage_argument(stage: str, deploying: bool = True) -> str:
    """``--stage`` of the make commands: a wrong name is a usage error that says what a stage
    name is, not a traceback after packaging started."""
    import argparse
    try:
        return check_stage(stage, deploying)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def destroyed_stage_argument(stage: str) -> str:
    """``--stage`` of ``make destroy``: any name a deploy ever took (``check_stage``)."""
    return stage_argument(stage, deploying=False)


def stage_settings(stage: str) -> Settings:
    """The settings a stage's functions run with, for deriving names (no validation: the
    secrets live in SSM, not here)."""
    return Settings.model_construct(stage=check_stage(stage, deploying=False), secret_key=SecretStr("unused"))


def ssm_path(stage: str) -> str:
    return f"/spikes/{stage}/"


def table_names(stage: str) -> Dict[str, str]:
    settings = stage_settings(stage)
    return {logical: table_name(settings, logical) for logical in LOGICAL_NAMES.values()}


def logical_id(name: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[^a-zA-Z0-9]", name) if part)


def table_resource_id(logical: str) -> str:
    return f"{logical_id(logical)}Table"


def hash_key_first(key_schema: List[Dict[str, str]]) -> List[Dict[str, str]]:
    """CloudFormation wants the HASH key before the RANGE key; PynamoDB lists them by name."""
    return sorted(key_schema, key=lambda key: key["KeyType"] != "HASH")


def table_resource(model: Any, physical_name: str) -> Dict[str, Any]:
    """An AWS::DynamoDB::Table from a PynamoDB model's own schema."""
    schema = model._get_schema()
    attributes = {a["AttributeName"]: a["AttributeType"] for a in schema["attribute_definitions"]}
    properties: Dict[str, Any] = {
        "TableName": physical_name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": name, "AttributeType": kind}
                                 for name, kind in sorted(attributes.items())],
        "KeySchema": hash_key_first(schema["key_schema"]),
        "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
        "DeletionProtectionEnabled": True,
        "SSESpecification": {"SSEEnabled": True},
    }
    indexes = [{"IndexName": index["index_name"], "KeySchema": hash_key_first(index["key_schema"]),
                "Projection": index["projection"]} for index in schema.get("global_secondary_indexes", [])]
    if indexes:
        properties["GlobalSecondaryIndexes"] = sorted(indexes, key=lambda index: index["IndexName"])
    if model in MODELS_WITH_TTL:
        properties["TimeToLiveSpecification"] = {"AttributeName": TTL_ATTRIBUTE, "Enabled": True}
    # Users' data outlives the stack: `make destroy` leaves tables unless told otherwise.
    return {"Type": "AWS::DynamoDB::Table", "DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain",
            "Properties": properties}


# What crosses origins to the bucket, and nothing more: the dashboard PUTs share files to
# presigned upload URLs (with the Content-Type the upload target names; the browser sets
# Content-Length itself), and fetches an export over 5 MB by following the API's redirect to a
# presigned GET, reading the file name from Content-Disposition. Share files are served
# through the API or by a top-level redirect, which CORS does not govern.
CORS_RULES = [
    {"Id": "presigned-upload", "AllowedMethods": ["PUT"], "AllowedOrigins": ["*"],
     "AllowedHeaders": ["content-type"], "MaxAge": 3000},
    {"Id": "presigned-export", "AllowedMethods": ["GET"], "AllowedOrigins": ["*"],
     "ExposedHeaders": ["Content-Disposition"], "MaxAge": 3000},
]


def bucket_resource() -> Dict[str, Any]:
    return {
        "Type": "AWS::S3::Bucket",
        "DeletionPolicy": "Retain",
        "UpdateReplacePolicy": "Retain",
        "Properties": {
            "BucketName": {"Fn::Sub": BUCKET_NAME},
            "PublicAccessBlockConfiguration": {"BlockPublicAcls": True, "IgnorePublicAcls": True,
                                               "BlockPublicPolicy": True, "RestrictPublicBuckets": True},
            "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
            "BucketEncryption": {"ServerSideEncryptionConfiguration": [
                {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]},
            "LifecycleConfiguration": {"Rules": [
                {"Id": "abort-abandoned-uploads", "Status": "Enabled",
                 "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": ABANDONED_UPLOAD_DAYS}},
                {"Id": "expire-exports", "Status": "Enabled", "Prefix": EXPORTS_PREFIX, "ExpirationInDays": 1},
                {"Id": "expire-staged-uploads", "Status": "Enabled", "Prefix": STAGING_PREFIX,
                 "ExpirationInDays": STAGED_UPLOAD_DAYS},
                {"Id": "expire-kept-exports", "Status": "Enabled", "Prefix": KEPT_EXPORTS_PREFIX,
                 "ExpirationInDays": KEPT_EXPORT_DAYS},
            ]},
            "CorsConfiguration": {"CorsRules": CORS_RULES},
        },
    }


def tls_only_policy(bucket_arn: Any, objects_arn: Any) -> Dict[str, Any]:
    """A bucket policy refusing anything but TLS (the share bucket's, and the artifact bucket's
    that infra/deploy.py creates)."""
    return {"Version": "2012-10-17", "Statement": [{
        "Sid": "TlsOnly", "Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": [bucket_arn, objects_arn],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}


def bucket_policy_resource() -> Dict[str, Any]:
    """Refuse anything but TLS."""
    return {"Type": "AWS::S3::BucketPolicy", "Properties": {
        "Bucket": {"Ref": "ShareBucket"},
        "PolicyDocument": tls_only_policy({"Fn::Sub": "arn:${AWS::Partition}:s3:::${ShareBucket}"},
                                          {"Fn::Sub": "arn:${AWS::Partition}:s3:::${ShareBucket}/*"})}}


def role_resource(stage: str, function: str) -> Dict[str, Any]:
    document = policy.function_policy(stage, function, table_names(stage), ssm_path(stage))
    return {"Type": "AWS::IAM::Role", "Properties": {
        "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]},
        "Policies": [{"PolicyName": f"{policy.NAME_SUFFIX[function]}", "PolicyDocument": _sub_strings(document)}],
    }}


def _sub_strings(value: Any) -> Any:
    """Wrap every string holding a ``${...}`` placeholder in Fn::Sub (MailDomain comes from
    MailFrom, so it is given as a variable of the Sub)."""
    if isinstance(value, dict):
        return {key: _sub_strings(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_sub_strings(item) for item in value]
    if isinstance(value, str) and "${" in value:
        if "${MailDomain}" in value:
            return {"Fn::Sub": [value, {"MailDomain": {"Fn::Select": [1, {"Fn::Split": ["@", {"Ref": "MailFrom"}]}]}}]}
        return {"Fn::Sub": value}
    return value


def log_group_resource(stage: str, function: str) -> Dict[str, Any]:
    return {"Type": "AWS::Logs::LogGroup", "DeletionPolicy": "Delete", "Properties": {
        "LogGroupName": f"/aws/lambda/{policy.function_name(stage, function)}",
        "RetentionInDays": {"Ref": "LogRetentionDays"}}}


def _alarm(description: str, namespace: str, metric: str, dimensions: List[dict], threshold: float,
           periods: int = 1, period: int = 300) -> Dict[str, Any]:
    properties = {
        "AlarmDescription": description, "Namespace": namespace, "MetricName": metric,
        "Statistic": "Sum", "Period": period, "EvaluationPeriods": periods, "Threshold": threshold,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold", "TreatMissingData": "notBreaching",
        "AlarmActions": [{"Ref": "AlarmTopic"}], "OKActions": [{"Ref": "AlarmTopic"}]}
    if dimensions:  # a metric of our own (a log metric filter's) has none
        properties["Dimensions"] = dimensions
    return {"Type": "AWS::CloudWatch::Alarm", "Properties": properties}


def _function_alarm(description: str, function: str, metric: str, threshold: float) -> Dict[str, Any]:
    """An alarm on one Lambda function's ``Errors`` or ``Throttles`` over 5 minutes."""
    return _alarm(description, "AWS/Lambda", metric, [{"Name": "FunctionName", "Value": {"Ref": function}}], threshold)


# Log events that leave work for an operator (`make usage-events`, `make parked-work`,
# docs/deploy.md "Alarms"): each is one line at error level in its function's log group, where a
# metric filter counts it into one metric with one alarm. Nothing else would tell anyone.
OPERATOR_EVENTS: Dict[str, Tuple[str, ...]] = {
    # Stripe found sent events invalid; a new index's grant not in force (store/new_indexes.py)
    policy.API_FUNCTION: ("usage.meter_errors_reported", "store.index_access_denied"),
    policy.USAGE_REPORT_FUNCTION: ("usage.report_refused", "usage.report_unknown"),  # parked usage events
    policy.QUOTA_RESET_FUNCTION: ("pending.parked",),  # a Stripe event's run parked after its attempts
    policy.WEBHOOK_DELIVERIES_FUNCTION: ("pending.parked",),  # a webhook release parked likewise
    policy.SHARE_DELETIONS_FUNCTION: ("pending.parked",),  # a share deletion or unfinished upload likewise
    # A background export whose runs kept failing; an index it reads the older way when denied
    # (store/new_indexes.py: the shares' owner_status_index, the open spikes' indexes).
    policy.EXPORTS_FUNCTION: ("pending.parked", "store.index_access_denied"),
}
OPERATOR_METRIC = "OperatorActionNeeded"


def operator_metric_namespace(stage: str) -> str:
    return f"Spikes/{stage}"


def operator_event_resources(stage: str) -> Dict[str, Any]:
    """A metric filter per function log group with operator events, and the alarm on their metric."""
    resources: Dict[str, Any] = {}
    for function, events in OPERATOR_EVENTS.items():
        function_id = policy.LOGICAL_IDS[function]
        pattern = " || ".join(f'($.event = "{event}")' for event in events)
        resources[f"{function_id}OperatorEvents"] = {"Type": "AWS::Logs::MetricFilter", "Properties": {
            "LogGroupName": {"Ref": f"{function_id}LogGroup"}, "FilterPattern": "{ %s }" % pattern,
            "MetricTransformations": [{"MetricNamespace": operator_metric_namespace(stage),
                                       "MetricName": OPERATOR_METRIC, "MetricValue": "1"}]}}
    resources["OperatorActionAlarm"] = _alarm(
        f"spikes {stage}: work was parked for an operator (make usage-events, make parked-work), Stripe "
        "reported meter events invalid, or a function was denied an index; the function's log names it", operator_metric_namespace(stage),
        OPERATOR_METRIC, [], 1)
    return resources


def alarm_resources(stage: str) -> Dict[str, Any]:
    api = [{"Name": "ApiName", "Value": f"spikes-{stage}"}, {"Name": "Stage", "Value": API_STAGE}]
    resources = {
        "AlarmTopic": {"Type": "AWS::SNS::Topic", "Properties": {"DisplayName": f"Spikes {stage} alarms"}},
        "AlarmEmailSubscription": {"Type": "AWS::SNS::Subscription", "Condition": "HasAlarmEmail", "Properties": {
            "TopicArn": {"Ref": "AlarmTopic"}, "Protocol": "email", "Endpoint": {"Ref": "AlarmEmail"}}},
        "Api5xxAlarm": _alarm(f"spikes {stage}: API answered 5xx at least 5 times in 5 minutes",
                              "AWS/ApiGateway", "5XXError", api, 5),
        "QuotaResetFailedAlarm": _function_alarm(
            f"spikes {stage}: the scheduled quota reset failed", "QuotaReset", "Errors", 1),
        "QuotaResetThrottledAlarm": _function_alarm(
            f"spikes {stage}: the scheduled quota reset was throttled", "QuotaReset", "Throttles", 1),
        "ShareDeletionsFailedAlarm": _function_alarm(
            f"spikes {stage}: the scheduled share deletion failed", "ShareDeletions", "Errors", 1),
        "WebhookDeliveriesFailedAlarm": _function_alarm(
            f"spikes {stage}: the scheduled webhook delivery failed 3 times in 5 minutes", "WebhookDeliveries",
            "Errors", 3),
        # Stripe being down is not a failure (events wait, retried): only a crash of the run is.
        "UsageReportFailedAlarm": _function_alarm(
            f"spikes {stage}: the scheduled usage report to Stripe failed", "UsageReport", "Errors", 1),
        "ExportsFailedAlarm": _function_alarm(
            f"spikes {stage}: the scheduled background exports run failed 3 times in 5 minutes", "Exports", "Errors", 3),
        "ApiFunctionErrorsAlarm": _function_alarm(
            f"spikes {stage}: the API function failed (crash or timeout) at least 3 times in 5 minutes", "APIHandler",
            "Errors", 3),
        "ApiFunctionThrottlesAlarm": _function_alarm(
            f"spikes {stage}: the API function was throttled", "APIHandler", "Throttles", 1),
    }
    return resources


# API Gateway's own refusals (before or instead of our function) in the contract's envelope.
GATEWAY_RESPONSES = {
    "DEFAULT_4XX": (None, "BAD_REQUEST", "Bad request"),
    "DEFAULT_5XX": (None, "SERVICE_UNAVAILABLE", "A backing service is temporarily unavailable; retry shortly"),
    "MISSING_AUTHENTICATION_TOKEN": (404, "NOT_FOUND", NO_SUCH_ROUTE),
    "RESOURCE_NOT_FOUND": (404, "NOT_FOUND", NO_SUCH_ROUTE),
    "REQUEST_TOO_LARGE": (413, "SIZE_LIMIT", "Request is too large"),
    "THROTTLED": (429, "RATE_LIMIT", "Rate limit exceeded"),
    "QUOTA_EXCEEDED": (429, "RATE_LIMIT", "Rate limit exceeded"),
    "INTEGRATION_TIMEOUT": (503, "SERVICE_UNAVAILABLE", "The request timed out; retry shortly"),
    "INTEGRATION_FAILURE": (503, "SERVICE_UNAVAILABLE", "A backing service is temporarily unavailable; retry shortly"),
}
RETRY_AFTER = {"DEFAULT_5XX": 2, "THROTTLED": 1, "QUOTA_EXCEEDED": 60, "INTEGRATION_TIMEOUT": 2,
               "INTEGRATION_FAILURE": 2}


def gateway_responses() -> Dict[str, Any]:
    """The ``x-amazon-apigateway-gateway-responses`` of the API's definition: deployed with it."""
    out: Dict[str, Any] = {}
    for kind, (status, code, message) in GATEWAY_RESPONSES.items():
        body = '{"error":"%s","code":"%s","request_id":"$context.requestId"' % (message, code)
        parameters = {"gatewayresponse.header.Access-Control-Allow-Origin": "'*'",
                      "gatewayresponse.header.X-Request-Id": "context.requestId"}
        if kind in RETRY_AFTER:
            body += ',"retry_after":%d' % RETRY_AFTER[kind]
            parameters["gatewayresponse.header.Retry-After"] = f"'{RETRY_AFTER[kind]}'"
        if code == "SIZE_LIMIT":
            body += ',"max_bytes":10485760'
        response: Dict[str, Any] = {"responseParameters": parameters,
                                    "responseTemplates": {"application/json": body + "}"}}
        if status:
            response["statusCode"] = str(status)
        out[kind] = response
    return out


PARAMETERS = {
    "Stage": {"Type": "String", "Description": "The stage this template was packaged for (fixed)."},
    "CodeBucket": {"Type": "String", "Description": "S3 bucket holding the code package (make deploy uploads it)."},
    "CodeKey": {"Type": "String", "Description": "S3 key of the code package."},
    "MailFrom": {"Type": "String", "Description": "Sender address of magic-link mail; verified in SES (itself or its domain).",
                 "AllowedPattern": "^[^@\\s]+@[^@\\s]+$"},
    "MailFromName": {"Type": "String", "Default": "Spikes", "Description": "Display name of the sender."},
    "PublicBaseUrl": {"Type": "String", "Default": "", "AllowedPattern": "^(https://[^/\\s?#]+(/[^\\s?#]*)?)?$",
                      "Description": "Public URL of the API for links in mail and share URLs (make deploy sets it): "
                                     "https://, no query or fragment."},
    "DomainName": {"Type": "String", "Default": "", "Description": "Optional custom domain, e.g. feedback.example.com."},
    "CertificateArn": {"Type": "String", "Default": "",
                       "Description": "ACM certificate for DomainName, in the stack's region (with DomainName)."},
    "StripePriceId": {"Type": "String", "Default": "", "Description": "Stripe price of the Pro plan (optional)."},
    "StripeAgentSpikePriceId": {"Type": "String", "Default": "",
                                "Description": "Stripe metered price per spike of the agent tier (optional)."},
    "StripeAgentSharePriceId": {"Type": "String", "Default": "",
                                "Description": "Stripe metered price per share of the agent tier (optional)."},
    "AgentSignup": {"Type": "String", "Default": "", "AllowedValues": ["", "true", "false"],
                    "Description": "Key-only signup without credentials (POST /auth/api-key); empty = off in AWS."},
    "AlarmEmail": {"Type": "String", "Default": "", "Description": "Address notified of alarms (optional)."},
    "LogRetentionDays": {"Type": "Number", "Default": 30,
                         "AllowedValues": [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1827, 3653]},
}
CONDITIONS = {
    "HasCustomDomain": {"Fn::Not": [{"Fn::Equals": [{"Ref": "DomainName"}, ""]}]},
    "HasPublicBaseUrl": {"Fn::Not": [{"Fn::Equals": [{"Ref": "PublicBaseUrl"}, ""]}]},
    "HasAlarmEmail": {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]},
    "HasPriceId": {"Fn::Not": [{"Fn::Equals": [{"Ref": "StripePriceId"}, ""]}]},
    "HasAgentSpikePriceId": {"Fn::Not": [{"Fn::Equals": [{"Ref": "StripeAgentSpikePriceId"}, ""]}]},
    "HasAgentSharePriceId": {"Fn::Not": [{"Fn::Equals": [{"Ref": "StripeAgentSharePriceId"}, ""]}]},
    "HasAgentSignup": {"Fn::Not": [{"Fn::Equals": [{"Ref": "AgentSignup"}, ""]}]},
}


def mail_event_resources(stage: str) -> Dict[str, Any]:
    """Bounces, complaints and rejections of this stage's mail, as JSON lines in a log group:
    SES configuration set -> EventBridge (default bus) -> rule -> CloudWatch Logs."""
    group = mail_events_log_group(stage)
    return {
        "MailEvents": {"Type": "AWS::SES::ConfigurationSet", "Properties": {"Name": f"spikes-{stage}"}},
        "MailEventsDestination": {"Type": "AWS::SES::ConfigurationSetEventDestination", "Properties": {
            "ConfigurationSetName": {"Ref": "MailEvents"},
            "EventDestination": {"Name": "bounces-and-complaints", "Enabled": True,
                                 "MatchingEventTypes": ["bounce", "complaint", "reject"],
                                 "EventBridgeDestination": {"EventBusArn": {"Fn::Sub": (
                                     "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/default")}}}}},
        "MailEventsLogGroup": {"Type": "AWS::Logs::LogGroup", "DeletionPolicy": "Delete", "Properties": {
            "LogGroupName": group, "RetentionInDays": {"Ref": "LogRetentionDays"}}},
        "MailEventsLogPolicy": {"Type": "AWS::Logs::ResourcePolicy", "Properties": {
            "PolicyName": f"spikes-{stage}-mail-events",
            "PolicyDocument": {"Fn::Sub": json.dumps({"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": ["events.amazonaws.com", "delivery.logs.amazonaws.com"]},
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": "${MailEventsLogGroup.Arn}"}]})}}},
        "MailEventsRule": {"Type": "AWS::Events::Rule", "DependsOn": "MailEventsLogPolicy", "Properties": {
            "Description": f"spikes {stage}: SES bounces and complaints to {group}",
            "EventPattern": {"source": ["aws.ses"],
                             "detail": {"mail": {"tags": {"ses:configuration-set": [f"spikes-{stage}"]}}}},
            "Targets": [{"Id": "log", "Arn": {"Fn::GetAtt": ["MailEventsLogGroup", "Arn"]}}]}},
    }


def mail_events_log_group(stage: str) -> str:
    return f"/spikes/{stage}/mail-events"


def function_environment(stage: str) -> Dict[str, Any]:
    """What both functions read besides Chalice's stage variables: names from the stack."""
    return {
        "SPIKES_STAGE": stage,
        "SPIKES_MAIL_MODE": "ses",
        SSM_PATH_VARIABLE: ssm_path(stage),
        "SPIKES_BUCKET": {"Ref": "ShareBucket"},
        "SPIKES_MAIL_SENDER": {"Fn::Sub": "${MailFromName} <${MailFrom}>"},
        "SPIKES_MAIL_CONFIGURATION_SET": {"Ref": "MailEvents"},
        "SPIKES_PUBLIC_BASE_URL": {"Fn::If": ["HasCustomDomain", {"Fn::Sub": "https://${DomainName}"},
                                              {"Ref": "PublicBaseUrl"}]},
        "SPIKES_STRIPE_PRICE_ID": {"Fn::If": ["HasPriceId", {"Ref": "StripePriceId"}, {"Ref": "AWS::NoValue"}]},
        "SPIKES_STRIPE_AGENT_SPIKE_PRICE_ID": {"Fn::If": ["HasAgentSpikePriceId", {"Ref": "StripeAgentSpikePriceId"},
                                                          {"Ref": "AWS::NoValue"}]},
        "SPIKES_STRIPE_AGENT_SHARE_PRICE_ID": {"Fn::If": ["HasAgentSharePriceId", {"Ref": "StripeAgentSharePriceId"},
                                                          {"Ref": "AWS::NoValue"}]},
        "SPIKES_AGENT_SIGNUP": {"Fn::If": ["HasAgentSignup", {"Ref": "AgentSignup"}, {"Ref": "AWS::NoValue"}]},
    }


def stack_additions(stage: str) -> Dict[str, Any]:
    """The merge template: added resources, and overrides of Chalice's own resources."""
    names = table_names(stage)
    resources: Dict[str, Any] = {}
    for model in ALL_MODELS:
        logical = LOGICAL_NAMES[model]
        resources[table_resource_id(logical)] = table_resource(model, names[logical])
    resources["ShareBucket"] = bucket_resource()
    resources["ShareBucketPolicy"] = bucket_policy_resource()
    # The functions' first calls need the tables (the bucket is already a Ref of theirs).
    depends = sorted(table_resource_id(logical) for logical in names)
    for function in policy.FUNCTIONS:
        function_id = policy.LOGICAL_IDS[function]
        role_id = ROLE_IDS[function]
        resources[role_id] = role_resource(stage, function)
        resources[f"{function_id}LogGroup"] = log_group_resource(stage, function)
        resources[function_id] = {"DependsOn": depends + [f"{function_id}LogGroup"], "Properties": {
            "FunctionName": policy.function_name(stage, function),
            "CodeUri": {"Bucket": {"Ref": "CodeBucket"}, "Key": {"Ref": "CodeKey"}},
            "Role": {"Fn::GetAtt": [role_id, "Arn"]},
            "Environment": {"Variables": function_environment(stage)},
        }}
    resources.update(alarm_resources(stage))
    resources.update(operator_event_resources(stage))
    resources.update(mail_event_resources(stage))
    resources["RestAPI"] = {"Properties": {
        "Name": f"spikes-{stage}",
        # The alarms find the API by name: both the resource's and the definition's say it.
        "DefinitionBody": {"info": {"title": f"spikes-{stage}"},
                           "x-amazon-apigateway-gateway-responses": gateway_responses()},
    }}
    resources["CustomDomain"] = {"Type": "AWS::ApiGateway::DomainName", "Condition": "HasCustomDomain", "Properties": {
        "DomainName": {"Ref": "DomainName"}, "RegionalCertificateArn": {"Ref": "CertificateArn"},
        "EndpointConfiguration": {"Types": ["REGIONAL"]}, "SecurityPolicy": "TLS_1_2"}}
    resources["CustomDomainMapping"] = {"Type": "AWS::ApiGateway::BasePathMapping", "Condition": "HasCustomDomain",
                                        "Properties": {"DomainName": {"Ref": "CustomDomain"},
                                                       "RestApiId": {"Ref": "RestAPI"},
                                                       "Stage": {"Ref": "RestAPI.Stage"}}}
    api_url = {"Fn::Sub": "https://${RestAPI}.execute-api.${AWS::Region}.${AWS::URLSuffix}/" + API_STAGE}
    # What clients use is what the functions build links on (SPIKES_PUBLIC_BASE_URL): the custom
    # domain, else PUBLIC_BASE_URL (the deploy sets it to the API's own URL when not given).
    public_url = {"Fn::If": ["HasCustomDomain", {"Fn::Sub": "https://${DomainName}"},
                             {"Fn::If": ["HasPublicBaseUrl", {"Ref": "PublicBaseUrl"}, api_url]}]}
    outputs = {
        "ApiUrl": {"Description": "The API's own URL", "Value": api_url},
        "PublicUrl": {"Description": "The URL clients use (custom domain, else PublicBaseUrl)", "Value": public_url},
        "StripeWebhookUrl": {"Value": {"Fn::Join": ["", [public_url, "/webhooks/stripe"]]}},
        "WidgetScriptUrl": {"Value": {"Fn::Join": ["", [public_url, "/widget.js"]]}},
        "BucketName": {"Value": {"Ref": "ShareBucket"}},
        "AlarmTopicArn": {"Value": {"Ref": "AlarmTopic"}},
        "CustomDomainTarget": {"Condition": "HasCustomDomain",
                               "Description": "Point a CNAME (or alias) of DomainName here",
                               "Value": {"Fn::GetAtt": ["CustomDomain", "RegionalDomainName"]}},
    }
    for logical, physical in names.items():
        outputs[f"{table_resource_id(logical)}Name"] = {"Value": {"Ref": table_resource_id(logical)}}
    parameters = copy.deepcopy(PARAMETERS)
    parameters["Stage"]["AllowedValues"] = [stage]
    parameters["Stage"]["Default"] = stage
    return {"Parameters": parameters, "Conditions": CONDITIONS, "Resources": resources, "Outputs": outputs}


def deep_merge(base: Any, addition: Any) -> Any:
    """Dicts merge key by key; anything else in ``addition`` replaces ``base`` (Chalice's rule)."""
    if isinstance(base, dict) and isinstance(addition, dict):
        merged = dict(base)
        for key, value in addition.items():
            merged[key] = deep_merge(base.get(key), value)
        return merged
    return copy.deepcopy(addition)


def merge_into(chalice_template: Dict[str, Any], stage: str) -> Dict[str, Any]:
    additions = stack_additions(stage)
    # Our roles replace any Chalice would generate: one policy source (infra/policy.py).
    chalice_resources = {key: value for key, value in chalice_template["Resources"].items()
                         if value.get("Type") != "AWS::IAM::Role"}
    merged = deep_merge({**chalice_template, "Resources": chalice_resources}, additions)
    merged["Description"] = f"Spikes backend, stage {stage}"
    # Chalice's own output names the API's URL with a trailing slash; ours does not.
    merged["Outputs"].pop("EndpointURL", None)
    return merged
