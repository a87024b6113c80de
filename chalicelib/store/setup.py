"""Create the stage's tables and bucket (local stage, tests; AWS uses the deploy template)."""
from __future__ import annotations

from typing import Any

from chalicelib.settings import Settings
from chalicelib.store.models import ALL_MODELS, AuthItem, LedgerItem, configure_models

TTL_ATTRIBUTE = "expires_at"
MODELS_WITH_TTL = (AuthItem, LedgerItem)


def create_tables(settings: Settings, dynamodb_client: Any) -> None:
    configure_models(settings)
    for model in ALL_MODELS:
        if not model.exists():
            model.create_table(wait=True, billing_mode="PAY_PER_REQUEST")
            if model in MODELS_WITH_TTL:
                dynamodb_client.update_time_to_live(
                    TableName=model.Meta.table_name,
                    TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE})


def delete_tables(settings: Settings) -> None:
    configure_models(settings)
    for model in ALL_MODELS:
        if model.exists():
            model.delete_table()


def create_bucket(settings: Settings, s3_client: Any) -> None:
    existing = {b["Name"] for b in s3_client.list_buckets().get("Buckets", [])}
    if settings.bucket_name in existing:
        return
    if settings.region == "us-east-1":
        s3_client.create_bucket(Bucket=settings.bucket_name)
    else:
        s3_client.create_bucket(Bucket=settings.bucket_name,
                                CreateBucketConfiguration={"LocationConstraint": settings.region})
    s3_client.put_bucket_lifecycle_configuration(Bucket=settings.bucket_name, LifecycleConfiguration={"Rules": [
        {"ID": "expire-exports", "Status": "Enabled", "Filter": {"Prefix": "exports/"}, "Expiration": {"Days": 1}},
        {"ID": "abort-multipart", "Status": "Enabled", "Filter": {"Prefix": ""},
         "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}]})
    s3_client.put_public_access_block(Bucket=settings.bucket_name, PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True})
