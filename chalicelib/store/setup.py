"""Create the stage's tables and bucket (local stage, tests; AWS uses the deploy template)."""
from __future__ import annotations

from typing import Any

from chalicelib.settings import Settings
from chalicelib import clock
from chalicelib.store import deliveries, open_spikes, pending_claims, spike_ids
from chalicelib.store.files import (EXPORTS_PREFIX, KEPT_EXPORT_DAYS, KEPT_EXPORTS_PREFIX, STAGED_UPLOAD_DAYS,
                                    STAGING_PREFIX)
from chalicelib.store.models import ALL_MODELS, AuthItem, Delivery, LedgerItem, OutboxItem, configure_models

TTL_ATTRIBUTE = "expires_at"
MODELS_WITH_TTL = (AuthItem, LedgerItem, Delivery, OutboxItem)


def create_tables(settings: Settings, dynamodb_client: Any) -> None:
    """The tables with this version's indexes and expiry, and the items already in them upgraded."""
    create_schema(settings, dynamodb_client)
    upgrade_items(settings)


def create_schema(settings: Settings, dynamodb_client: Any) -> None:
    """The tables, their indexes and expiry, without looking at the items (the local server
    restores saved items after this, and upgrades them then: ``upgrade_items``)."""
    configure_models(settings)
    for model in ALL_MODELS:
        if not model.exists():
            model.create_table(wait=True, billing_mode="PAY_PER_REQUEST")
        else:
            add_missing_indexes(model, dynamodb_client)
        if model in MODELS_WITH_TTL:
            enable_ttl(model, dynamodb_client)


# Saved local data whose spikes were all looked at once, whatever the markers said (below).
SAVED_DATA_MARKER = "migration#saved-data-looked-at"


def upgrade_items(settings: Settings, saved_data: bool = False) -> None:
    """What this version needs in items an older version stored. Each step marks itself done and
    afterwards looks only at items received since: items put in afterwards with older times
    (saved local data restored) must be there before it runs. ``saved_data``: the local server's
    saved items, whose every spike is looked at once (``SAVED_DATA_MARKER``): the versions of
    2026-12-06 and 07 before 051eee6 ran the steps before the restore, on empty tables, and saved
    their markers done with the restored spikes older than them, never upgraded."""
    whole = saved_data and not _marked(SAVED_DATA_MARKER)
    spike_ids.backfill(whole)  # spikes kept from a version before owner_project (store/spike_ids.py)
    open_spikes.backfill(whole)  # open spikes kept from a version before open_owner_index (store/open_spikes.py)
    # webhook events held before they were indexed by share
    deliveries.upgrade_held(clock.epoch(), settings.webhook_max_event_age_seconds)
    # claims left incomplete before their units (docs/security.md 333): the job finishes them
    pending_claims.record_unfinished(clock.epoch())
    if whole:
        LedgerItem(SAVED_DATA_MARKER, state=spike_ids.DONE).save()


def _marked(key: str) -> bool:
    try:
        return LedgerItem.get(key, consistent_read=True).state == spike_ids.DONE
    except LedgerItem.DoesNotExist:
        return False


def enable_ttl(model: Any, dynamodb_client: Any) -> None:
    """Expiry on ``expires_at``, also for a table kept from a version before the model had it
    (the local server's saved data), whose expiring items would otherwise stay for good."""
    table = model.Meta.table_name
    status = dynamodb_client.describe_time_to_live(TableName=table)["TimeToLiveDescription"]["TimeToLiveStatus"]
    if status in ("ENABLED", "ENABLING"):
        return
    dynamodb_client.update_time_to_live(
        TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE})


def add_missing_indexes(model: Any, dynamodb_client: Any) -> None:
    """Tables kept from an older version (the local server's saved data) get the indexes
    added since, so a restart after an upgrade does not fail on a missing index."""
    table = dynamodb_client.describe_table(TableName=model.Meta.table_name)["Table"]
    present = {index["IndexName"] for index in table.get("GlobalSecondaryIndexes", [])}
    for index in model._get_schema().get("global_secondary_indexes", []):
        if index["index_name"] in present:
            continue
        dynamodb_client.update_table(
            TableName=model.Meta.table_name, AttributeDefinitions=index["attribute_definitions"],
            GlobalSecondaryIndexUpdates=[{"Create": {
                # DynamoDB wants the hash key first; PynamoDB lists an index's keys by attribute name.
                "IndexName": index["index_name"],
                "KeySchema": sorted(index["key_schema"], key=lambda key: key["KeyType"] != "HASH"),
                "Projection": index["projection"]}}])


def create_bucket(settings: Settings, s3_client: Any) -> None:
    """The bucket with its lifecycle rules. One that exists is left as it is: the local server's
    S3 is moto in memory, so each start creates the bucket anew with the current rules
    (tools/devserver.py; .local-data/ keeps the objects only), and AWS's is the template's."""
    existing = {b["Name"] for b in s3_client.list_buckets().get("Buckets", [])}
    if settings.bucket_name in existing:
        return
    if settings.region == "us-east-1":
        s3_client.create_bucket(Bucket=settings.bucket_name)
    else:
        s3_client.create_bucket(Bucket=settings.bucket_name,
                                CreateBucketConfiguration={"LocationConstraint": settings.region})
    s3_client.put_bucket_lifecycle_configuration(Bucket=settings.bucket_name, LifecycleConfiguration={"Rules": [
        {"ID": "expire-exports", "Status": "Enabled", "Filter": {"Prefix": EXPORTS_PREFIX}, "Expiration": {"Days": 1}},
        {"ID": "expire-staged-uploads", "Status": "Enabled", "Filter": {"Prefix": STAGING_PREFIX},
         "Expiration": {"Days": STAGED_UPLOAD_DAYS}},
        {"ID": "expire-kept-exports", "Status": "Enabled", "Filter": {"Prefix": KEPT_EXPORTS_PREFIX},
         "Expiration": {"Days": KEPT_EXPORT_DAYS}},
        {"ID": "abort-multipart", "Status": "Enabled", "Filter": {"Prefix": ""},
         "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}]})
    s3_client.put_public_access_block(Bucket=settings.bucket_name, PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True})
