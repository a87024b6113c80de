"""Large downloads handed over through S3 (a Lambda response is capped at 6 MB)."""
from __future__ import annotations

import uuid
from typing import Any

EXPORT_PREFIX = "exports/"
DOWNLOAD_TTL_SECONDS = 15 * 60


def stage_download(s3: Any, bucket: str, body: bytes, filename: str, content_type: str) -> str:
    """Store ``body`` under exports/ (expired by a bucket lifecycle rule) and return a
    short-lived presigned GET URL for it."""
    key = f"{EXPORT_PREFIX}{uuid.uuid4().hex}/{filename}"
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type,
                  ContentDisposition=f'attachment; filename="{filename}"')
    return s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key},
                                     ExpiresIn=DOWNLOAD_TTL_SECONDS)
