"""The IAM policy of each function, written once and rendered for a stage.

What each function may do is declared below per resource (table, index, bucket, parameter,
mail identity); ``function_policy`` turns it into a policy document whose ARNs carry
CloudFormation placeholders (``${AWS::Region}``, ``${ShareBucket}``...), wrapped in ``Fn::Sub``
by the template. tests/aws_calls.py renders the same document with the test stage's
values and checks it against every AWS call the API tests make: nothing called is denied and
nothing granted goes unused.
"""
from __future__ import annotations

from typing import Dict, List, Tuple

from chalicelib.settings import SSM_PARAMETERS
from chalicelib.store.files import EXPORTS_PREFIX

API_FUNCTION = "api_handler"
QUOTA_RESET_FUNCTION = "quota_reset"
SHARE_DELETIONS_FUNCTION = "share_deletions"
WEBHOOK_DELIVERIES_FUNCTION = "webhook_deliveries"
USAGE_REPORT_FUNCTION = "usage_report"
EXPORTS_FUNCTION = "exports"
FUNCTIONS = (API_FUNCTION, QUOTA_RESET_FUNCTION, SHARE_DELETIONS_FUNCTION, WEBHOOK_DELIVERIES_FUNCTION,
             USAGE_REPORT_FUNCTION, EXPORTS_FUNCTION)
SCHEDULED = (QUOTA_RESET_FUNCTION, SHARE_DELETIONS_FUNCTION, WEBHOOK_DELIVERIES_FUNCTION, USAGE_REPORT_FUNCTION,
             EXPORTS_FUNCTION)

# Logical id of each function in Chalice's template, and its physical name's suffix.
LOGICAL_IDS = {API_FUNCTION: "APIHandler", QUOTA_RESET_FUNCTION: "QuotaReset", SHARE_DELETIONS_FUNCTION: "ShareDeletions",
               WEBHOOK_DELIVERIES_FUNCTION: "WebhookDeliveries", USAGE_REPORT_FUNCTION: "UsageReport",
               EXPORTS_FUNCTION: "Exports"}
NAME_SUFFIX = {API_FUNCTION: "api", QUOTA_RESET_FUNCTION: "quota-reset", SHARE_DELETIONS_FUNCTION: "share-deletions",
               WEBHOOK_DELIVERIES_FUNCTION: "webhook-deliveries", USAGE_REPORT_FUNCTION: "usage-report",
               EXPORTS_FUNCTION: "exports"}

# DynamoDB: function -> logical table -> actions on the table itself.
TABLE_ACTIONS: Dict[str, Dict[str, Tuple[str, ...]]] = {
    API_FUNCTION: {
        "users": ("GetItem", "PutItem", "UpdateItem", "ConditionCheckItem"),
        "auth": ("GetItem", "PutItem", "UpdateItem", "DeleteItem"),
        "shares": ("GetItem", "BatchGetItem", "PutItem", "UpdateItem", "DeleteItem", "ConditionCheckItem"),
        # ConditionCheckItem: an own spike posted after a claim checks the claimed account's copy of its id.
        "spikes": ("GetItem", "PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "ConditionCheckItem"),
        "ledger": ("GetItem", "PutItem", "UpdateItem", "BatchGetItem", "BatchWriteItem", "ConditionCheckItem"),
        # BatchGetItem: a creation finding its account full reads the keys holding its places.
        "keys": ("GetItem", "BatchGetItem", "PutItem", "UpdateItem"),
        # UpdateItem, DeleteItem: the share_deletions job's units (store/share_work.py): an upload's,
        # written when it starts and deleted when it ends; a deletion's, written with its tombstone
        # and deleted when the request finishes it.
        "deliveries": ("GetItem", "PutItem", "UpdateItem", "DeleteItem"),
        # An agent-tier usage event, in the transaction of what it bills; a presigned upload's
        # held one is read, and released (moved) at completion or dropped by a deletion. A copy of a
        # sent event Stripe reports invalid (services/meter_errors.py) is read and moved back
        # (its shard, or the dead queue: PutItem).
        "outbox": ("GetItem", "PutItem", "UpdateItem", "DeleteItem"),
    },
    QUOTA_RESET_FUNCTION: {
        # ConditionCheckItem: locking a share checks, in its transaction, that its owner still does not pay.
        # GetItem: a downgraded owner's shares are stripped a page per step, each step reading the owner again.
        "users": ("Scan", "GetItem", "UpdateItem", "ConditionCheckItem"),
        "shares": ("UpdateItem",),
        "ledger": ("GetItem", "PutItem", "UpdateItem"),
        # A downgrade records a webhook release (store/webhook_releases.py) with the share's change.
        # The runs Stripe events left (store/pro_feature_runs.py): queried in due_index, deleted
        # when finished; those an earlier version listed in the ledger are moved to items.
        "deliveries": ("UpdateItem", "DeleteItem"),
    },
    # Delivers due events; pausing a failing webhook updates the share and mails its owner; an
    # event is held for a paused share only with a check that it is still paused. Ends the held
    # events of the releases recorded (store/webhook_releases.py: queried in due_index, deleted
    # when finished), and moves those an earlier version recorded in the ledger to their own items.
    WEBHOOK_DELIVERIES_FUNCTION: {
        # GetItem: an event is sent only while its owner has Pro; ConditionCheckItem: one held
        # while the owner does not pay is held with a check of that, so a payment meanwhile wins.
        "users": ("GetItem", "ConditionCheckItem"),
        "shares": ("GetItem", "UpdateItem", "ConditionCheckItem"),
        # GetItem: a deleted share's events go where its webhook pointed at the deletion (its
        # share.deleted event), or nowhere.
        "deliveries": ("GetItem", "UpdateItem", "DeleteItem"),
        "ledger": ("GetItem", "UpdateItem"),
    },
    # Sends the agent tier's usage events to Stripe: reads its queues (base-table queries), leases
    # and deletes events, moves refused ones to the dead queue, reads an owner's Stripe customer.
    USAGE_REPORT_FUNCTION: {
        "outbox": ("Query", "UpdateItem", "DeleteItem", "PutItem"),
        "users": ("GetItem",),
    },
    # Continues background exports (services/background_exports.py): reads the spikes an export
    # selects (the owner's deletions in progress left out), leases and advances its state in the
    # ledger, forgets its pending unit when it ends (or moves it back when a run fails).
    EXPORTS_FUNCTION: {
        # GetItem: an export of one's own feedback asks, once read to its end, whether a claim
        # moved spikes into or out of its account meanwhile (store/claim_marks.py).
        "users": ("GetItem",),
        "ledger": ("GetItem", "UpdateItem"),
        "deliveries": ("UpdateItem", "DeleteItem"),
    },
    # Finishes share deletions a request started: what the API's deletion path does after the
    # tombstone (its files, its spikes, its quota counters in the ledger, its record; its slug's
    # claim is rewritten as retired, kept for the owner: PutItem). Expires a
    # presigned upload never completed: its tombstone takes it from its owner's count and
    # checks that it holds no feedback (its total's counters), in one transaction. On the agent
    # tier the upload's held charge (outbox) is dropped with that tombstone and given back in the
    # ledger, or released (moved to a reporting queue) with a check that the kept share is pending.
    # Finishes claims no call completed (services/claim_work.py): what POST /auth/link-key moves
    # (shares, spikes, retired slugs, keys and their places), with the same writes.
    SHARE_DELETIONS_FUNCTION: {
        # GetItem: a kept upload's charge released in a later period than it was charged in is
        # capped by its owner's (and its key's) cap as they are then.
        "users": ("GetItem", "UpdateItem"),
        # BatchGetItem, UpdateItem: a claim's keys, read a page at a time and moved.
        "keys": ("GetItem", "BatchGetItem", "UpdateItem"),
        "shares": ("GetItem", "PutItem", "UpdateItem", "DeleteItem", "ConditionCheckItem"),
        "spikes": ("BatchWriteItem", "UpdateItem"),  # UpdateItem: a claim's spikes moved
        # BatchGetItem: a deletion finished within a minute of its tombstone first reads the
        # share's total, to tell a spike the project index does not list yet (security 230).
        "ledger": ("GetItem", "UpdateItem", "BatchGetItem", "BatchWriteItem", "ConditionCheckItem"),
        "outbox": ("GetItem", "UpdateItem", "DeleteItem"),
        # Its pending units (store/share_work.py): queried in due_index, moved back or parked when
        # they fail, deleted when done; those an earlier version listed in the ledger are moved
        # to items (ledger GetItem and UpdateItem).
        "deliveries": ("UpdateItem", "DeleteItem"),
    },
}
# Function -> logical table -> indexes it queries.
INDEX_QUERIES: Dict[str, Dict[str, Tuple[str, ...]]] = {
    API_FUNCTION: {
        "users": ("stripe_customer_index",),
        # reserved_index: a claimed account's retired slugs; owner_status_index: the owner's
        # deletions in progress, which their reads of feedback leave out.
        "shares": ("owner_index", "reserved_index", "owner_status_index"),
        # open_owner_index, open_project_index: an owner's or a project's open feedback
        # (resolved=false, the MCP server's get_spikes).
        "spikes": ("project_index", "owner_index", "open_owner_index", "open_project_index", "feed_index", "id_index",
                   "id_owner_index"),
        "keys": ("owner_index",),
        # due_index: a resume or a new or removed URL ends a first batch of a share's held events.
        "deliveries": ("share_index", "due_index"),
    },
    QUOTA_RESET_FUNCTION: {
        "shares": ("owner_index",),
        "deliveries": ("due_index",),  # the runs Stripe events left, oldest first
    },
    SHARE_DELETIONS_FUNCTION: {
        # owner_index of each, reserved_index: a claimed account's shares, spikes, keys and retired slugs.
        "shares": ("owner_index", "reserved_index"),
        "spikes": ("project_index", "owner_index"),
        "keys": ("owner_index",),
        # its pending deletions, unfinished uploads and claims, oldest first
        "deliveries": ("due_index",),
    },
    WEBHOOK_DELIVERIES_FUNCTION: {
        "deliveries": ("due_index",),
    },
    EXPORTS_FUNCTION: {
        "shares": ("owner_status_index",),
        "spikes": ("project_index", "owner_index", "open_owner_index", "open_project_index", "feed_index"),
        "deliveries": ("due_index",),  # the exports running, oldest first
    },
}
# Share files: function -> S3 actions on objects, and on the bucket itself.
OBJECT_ACTIONS: Dict[str, Tuple[str, ...]] = {
    # A large export is a multipart upload, aborted when reading or sending fails (store/files.py).
    API_FUNCTION: ("GetObject", "PutObject", "DeleteObject", "AbortMultipartUpload"),
    SHARE_DELETIONS_FUNCTION: ("DeleteObject",),
    # A background export's multipart upload (PutObject covers its creation, parts and completion),
    # aborted when the export fails, and the rows a run kept beside it for the next (read back:
    # GetObject). Its link is presigned by the API, which reads the export.
    EXPORTS_FUNCTION: ("GetObject", "PutObject", "AbortMultipartUpload"),
}
# Where in the bucket a function's object actions reach (the whole bucket when not named here):
# the exports job reads and writes exports only, never a share's files.
OBJECT_PREFIXES: Dict[str, str] = {EXPORTS_FUNCTION: EXPORTS_PREFIX}
BUCKET_ACTIONS: Dict[str, Tuple[str, ...]] = {
    API_FUNCTION: ("ListBucket",),
    SHARE_DELETIONS_FUNCTION: ("ListBucket",),
    # The upload of an export a run created but died before recording (store/files.open_upload).
    EXPORTS_FUNCTION: ("ListBucketMultipartUploads",),
}
# Functions that send mail through SES: the API (magic links) and the webhook delivery job (it
# tells a share's owner when their webhook is paused).
SENDS_MAIL = {API_FUNCTION, WEBHOOK_DELIVERIES_FUNCTION}


def function_name(stage: str, function: str) -> str:
    return f"spikes-{stage}-{NAME_SUFFIX[function]}"


def _arn(service: str, resource: str, regional: bool = True) -> str:
    where = "${AWS::Region}:${AWS::AccountId}" if regional else ":"
    return f"arn:${{AWS::Partition}}:{service}:{where}:{resource}"


def table_arn(table_name: str) -> str:
    return _arn("dynamodb", f"table/{table_name}")


def function_policy(stage: str, function: str, table_names: Dict[str, str], ssm_path: str) -> dict:
    """The policy document of one function. Placeholders left for Fn::Sub: AWS pseudo
    parameters, ``${ShareBucket}`` (the bucket's name) and ``${MailFrom}``/``${MailDomain}``."""
    statements: List[dict] = [{
        "Sid": "OwnLogs",
        "Effect": "Allow",
        "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
        "Resource": _arn("logs", f"log-group:/aws/lambda/{function_name(stage, function)}:*"),
    }]
    table_grants: Dict[Tuple[str, ...], List[str]] = {}
    for logical, actions in sorted(TABLE_ACTIONS.get(function, {}).items()):
        table_grants.setdefault(tuple(sorted(actions)), []).append(table_arn(table_names[logical]))
    for number, (actions, resources) in enumerate(sorted(table_grants.items())):
        statements.append({"Sid": f"Tables{number}", "Effect": "Allow",
                           "Action": [f"dynamodb:{action}" for action in actions], "Resource": resources})
    indexes = [f"{table_arn(table_names[logical])}/index/{index}"
               for logical, names in sorted(INDEX_QUERIES.get(function, {}).items()) for index in names]
    if indexes:
        statements.append({"Sid": "Indexes", "Effect": "Allow", "Action": ["dynamodb:Query"], "Resource": indexes})
    if function in OBJECT_ACTIONS:
        statements.append({"Sid": "ShareFiles", "Effect": "Allow",
                           "Action": [f"s3:{action}" for action in OBJECT_ACTIONS[function]],
                           "Resource": f"arn:${{AWS::Partition}}:s3:::${{ShareBucket}}/{OBJECT_PREFIXES.get(function, '')}*"})
    if function in BUCKET_ACTIONS:
        statements.append({"Sid": "ShareBucket", "Effect": "Allow",
                           "Action": [f"s3:{action}" for action in BUCKET_ACTIONS[function]],
                           "Resource": "arn:${AWS::Partition}:s3:::${ShareBucket}"})
    if function in SENDS_MAIL:
        # SES authorizes against the identity that was verified: the address or its domain.
        statements.append({"Sid": "Mail", "Effect": "Allow", "Action": ["ses:SendEmail"],
                           "Resource": [_arn("ses", "identity/${MailFrom}"), _arn("ses", "identity/${MailDomain}"),
                                        _arn("ses", f"configuration-set/spikes-{stage}")]})
    statements.append({"Sid": "Secrets", "Effect": "Allow", "Action": ["ssm:GetParameters"],
                       "Resource": [_arn("ssm", f"parameter{ssm_path}{name}") for name in SSM_PARAMETERS]})
    return {"Version": "2012-10-17", "Statement": statements}
