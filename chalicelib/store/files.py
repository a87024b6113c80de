"""Share files in S3: one object per uploaded file under ``shares/<share_id>/<path>``.

The S3 client and bucket are injected (``deps.share_files()``), so services never build a
client or an object key."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Dict, Iterable, Optional, Tuple

from botocore.exceptions import ClientError

# Up to 500 small files per share: in parallel, or their round trips alone could eat the
# Lambda's time.
UPLOAD_THREADS = 16
DOWNLOAD_URL_TTL_SECONDS = 300


@dataclass(frozen=True)
class StoredObject:
    body: bytes
    etag: str


class ShareFiles:
    def __init__(self, s3: Any, bucket: str):
        self._s3 = s3
        self._bucket = bucket

    @staticmethod
    def object_key(share_id: str, path: str) -> str:
        return f"shares/{share_id}/{path}"

    @staticmethod
    def _prefix(share_id: str) -> str:
        return f"shares/{share_id}/"

    def put_all(self, share_id: str, files: Iterable[Tuple[str, bytes, str]]) -> None:
        """Store (path, body, content type) triples; the first failure is raised."""
        def put(file: Tuple[str, bytes, str]) -> None:
            path, body, content_type = file
            self._s3.put_object(Bucket=self._bucket, Key=self.object_key(share_id, path), Body=body,
                                ContentType=content_type)
        with ThreadPoolExecutor(max_workers=UPLOAD_THREADS) as pool:
            list(pool.map(put, files))  # list(): re-raise the first failure here

    def delete_all(self, share_id: str) -> None:
        pages = self._s3.get_paginator("list_objects_v2").paginate(Bucket=self._bucket, Prefix=self._prefix(share_id))
        for page in pages:
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if keys:
                self._s3.delete_objects(Bucket=self._bucket, Delete={"Objects": keys, "Quiet": True})

    def sizes(self, share_id: str) -> Dict[str, int]:
        """Stored size per relative path: one listing per 1,000 objects, not a HeadObject per file."""
        prefix = self._prefix(share_id)
        pages = self._s3.get_paginator("list_objects_v2").paginate(Bucket=self._bucket, Prefix=prefix)
        return {item["Key"][len(prefix):]: int(item["Size"]) for page in pages for item in page.get("Contents", [])}

    def read(self, share_id: str, path: str) -> Optional[StoredObject]:
        """The object, or None when it is not there."""
        try:
            stored = self._s3.get_object(Bucket=self._bucket, Key=self.object_key(share_id, path))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                return None
            raise
        return StoredObject(body=stored["Body"].read(), etag=stored.get("ETag", ""))

    def upload_url(self, share_id: str, path: str, content_type: str, expires_in: int) -> str:
        return self._s3.generate_presigned_url("put_object", ExpiresIn=expires_in, Params={
            "Bucket": self._bucket, "Key": self.object_key(share_id, path), "ContentType": content_type})

    def download_url(self, share_id: str, path: str) -> str:
        """A short-lived direct link, for files too large for a Lambda response."""
        return self._s3.generate_presigned_url("get_object", ExpiresIn=DOWNLOAD_URL_TTL_SECONDS, Params={
            "Bucket": self._bucket, "Key": self.object_key(share_id, path)})
