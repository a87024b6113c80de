"""Objects in S3: a share's files under ``shares/<share_id>/<path>`` (``ShareFiles``), and
large exports handed over for download under ``exports/`` (``Exports``).

The S3 client and bucket are injected (``deps.share_files()``, ``deps.exports()``), so
services never build a client or an object key."""
from __future__ import annotations

import io
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Dict, Iterable, Iterator, Optional, Tuple

from botocore.exceptions import ClientError

# Up to 500 small files per share: in parallel, or their round trips alone could eat the
# Lambda's time.
UPLOAD_THREADS = 16
DOWNLOAD_URL_TTL_SECONDS = 300
# Staged exports: the bucket's lifecycle rule (store/setup.py locally, infra/stack.py in AWS)
# expires this prefix after a day; the presigned link lives much shorter.
EXPORTS_PREFIX = "exports/"
EXPORT_URL_TTL_SECONDS = 15 * 60
# A staged export is sent as a multipart upload, one part at a time, so the function holds about
# one part of it however large it is. S3 takes parts of 5 MiB at least, the last excepted.
EXPORT_PART_BYTES = 8 * 1024 * 1024
# Presigned uploads write here, never to what is served. The jobs delete a share's staging area
# once it is completed or deleted; what a URL still valid wrote after that is never read again,
# so the bucket's lifecycle rule expires this prefix too. A completion may need staged objects
# as long as a share may stay unfinished: at most the longest presigned URL S3 accepts (7 days)
# plus an hour (services/presigned_uploads.py), less than these days.
STAGING_PREFIX = "uploads/"
STAGED_UPLOAD_DAYS = 8
# A deletion keeps its share's export here, written before its tombstone, for a retried DELETE
# to answer. One that died before its tombstone left it for good (the share not deleted, its
# feedback copied, a spike deleted later kept in it): the bucket's lifecycle rule expires this
# prefix too. The job finishes a deletion within minutes and drops the export then; a retry
# after these days answers with what is left (docs/security.md, 247).
KEPT_EXPORTS_PREFIX = "deletions/"
KEPT_EXPORT_DAYS = 1


class ChangedDuringPublish(Exception):
    """A staged upload was replaced or removed between verification and publication."""


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
        self._delete_prefix(self._prefix(share_id))
        self.delete_staged(share_id)

    def _delete_prefix(self, prefix: str) -> None:
        pages = self._s3.get_paginator("list_objects_v2").paginate(Bucket=self._bucket, Prefix=prefix)
        for page in pages:
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if keys:
                answer = self._s3.delete_objects(Bucket=self._bucket, Delete={"Objects": keys, "Quiet": True})
                # A 200 can still list keys S3 did not delete (throttled, internal error): the
                # removal failed, and the caller's retry (a deletion is resumable) must see it.
                failed = answer.get("Errors") or []
                if failed:
                    raise ClientError({"Error": {"Code": failed[0].get("Code", "DeleteFailed"),
                                                 "Message": f"{len(failed)} objects not deleted"}}, "DeleteObjects")

    # --- the export of a share being deleted: what a retried DELETE answers ---------------

    @staticmethod
    def _export_key(share_id: str) -> str:
        return f"{KEPT_EXPORTS_PREFIX}{share_id}.json"

    def keep_export(self, share_id: str, body: bytes) -> None:
        self._s3.put_object(Bucket=self._bucket, Key=self._export_key(share_id), Body=body,
                            ContentType="application/json")

    def kept_export(self, share_id: str) -> Optional[bytes]:
        try:
            return self._s3.get_object(Bucket=self._bucket, Key=self._export_key(share_id))["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                return None
            raise

    def drop_export(self, share_id: str) -> None:
        self._s3.delete_object(Bucket=self._bucket, Key=self._export_key(share_id))

    def read(self, share_id: str, path: str) -> Optional[StoredObject]:
        """The object, or None when it is not there."""
        try:
            stored = self._s3.get_object(Bucket=self._bucket, Key=self.object_key(share_id, path))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                return None
            raise
        return StoredObject(body=stored["Body"].read(), etag=stored.get("ETag", ""))

    # --- presigned uploads: clients write to a staging area, never to what is served --------

    @staticmethod
    def staging_key(share_id: str, path: str) -> str:
        return f"{STAGING_PREFIX}{share_id}/{path}"

    def upload_url(self, share_id: str, path: str, content_type: str, size: int, expires_in: int) -> str:
        """A presigned PUT of exactly ``size`` bytes (Content-Length is signed) to the staging
        key. What is served only ever comes from ``publish``, so this URL stays harmless
        after completion, until it expires."""
        return self._s3.generate_presigned_url("put_object", ExpiresIn=expires_in, Params={
            "Bucket": self._bucket, "Key": self.staging_key(share_id, path), "ContentType": content_type,
            "ContentLength": size})

    def staged(self, share_id: str) -> Dict[str, Tuple[int, str]]:
        """(size, ETag) per relative path uploaded to the staging area."""
        prefix = f"{STAGING_PREFIX}{share_id}/"
        pages = self._s3.get_paginator("list_objects_v2").paginate(Bucket=self._bucket, Prefix=prefix)
        return {item["Key"][len(prefix):]: (int(item["Size"]), item.get("ETag", ""))
                for page in pages for item in page.get("Contents", [])}

    def publish(self, share_id: str, verified: Dict[str, Tuple[str, str]]) -> None:
        """Copy verified staged objects ({path: (ETag, content type)}) to the served keys, each
        only if it is still the object that was verified (CopySourceIfMatch). Raises
        ``ChangedDuringPublish`` when one was replaced meanwhile. The staging area stays until
        the share is active (``delete_staged``): a retried completion needs it."""
        def copy(item: Tuple[str, Tuple[str, str]]) -> None:
            path, (etag, content_type) = item
            try:
                self._s3.copy_object(Bucket=self._bucket, Key=self.object_key(share_id, path),
                                     CopySource={"Bucket": self._bucket, "Key": self.staging_key(share_id, path)},
                                     CopySourceIfMatch=etag, ContentType=content_type, MetadataDirective="REPLACE")
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412", "NoSuchKey", "404"):
                    raise ChangedDuringPublish(path) from None
                raise
        with ThreadPoolExecutor(max_workers=UPLOAD_THREADS) as pool:
            list(pool.map(copy, verified.items()))

    def delete_staged(self, share_id: str) -> None:
        self._delete_prefix(f"{STAGING_PREFIX}{share_id}/")

    def download_url(self, share_id: str, path: str, as_download: bool = False) -> str:
        """A short-lived direct link, for files too large for a Lambda response. ``as_download``:
        S3 answers ``attachment`` and ``application/octet-stream``, so a browser saves the file
        instead of rendering it on S3's origin."""
        params = {"Bucket": self._bucket, "Key": self.object_key(share_id, path)}
        if as_download:
            params.update(ResponseContentDisposition="attachment",
                          ResponseContentType="application/octet-stream")
        return self._s3.generate_presigned_url("get_object", ExpiresIn=DOWNLOAD_URL_TTL_SECONDS, Params=params)


# S3 takes object keys of at most 1,024 bytes of UTF-8: what a file's path may take next to the
# longest prefix a share's file is stored under (its staging key, "uploads/sh_…/").
S3_MAX_KEY_BYTES = 1024
MAX_PATH_BYTES = S3_MAX_KEY_BYTES - len(ShareFiles.staging_key("sh_" + "0" * 12, "").encode("utf-8"))


class Exports:
    """Downloads too large for a Lambda response (6 MB), staged in S3 for a short while."""

    def __init__(self, s3: Any, bucket: str):
        self._s3 = s3
        self._bucket = bucket

    def stage(self, body: Iterable[bytes], filename: str, content_type: str) -> str:
        """Store the chunks of ``body`` under a fresh key as they come and return a short-lived
        presigned GET URL that downloads them as ``filename``. boto3's upload sends a part
        whenever one is full and aborts the multipart upload when anything fails, reading
        ``body`` included, so no parts are left behind (nor billed: the bucket's lifecycle rule
        aborts what a function killed mid-upload left). One thread: parts read ahead by
        others would each be held in memory."""
        from boto3.s3.transfer import TransferConfig
        key = f"{EXPORTS_PREFIX}{uuid.uuid4().hex}/{filename}"
        config = TransferConfig(multipart_threshold=EXPORT_PART_BYTES, multipart_chunksize=EXPORT_PART_BYTES,
                                use_threads=False)
        self._s3.upload_fileobj(io.BufferedReader(_ChunkReader(body)), self._bucket, key, Config=config, ExtraArgs={
            "ContentType": content_type, "ContentDisposition": f'attachment; filename="{filename}"'})
        return self._s3.generate_presigned_url("get_object", Params={"Bucket": self._bucket, "Key": key},
                                               ExpiresIn=EXPORT_URL_TTL_SECONDS)


    # --- a background export: a multipart upload sent a part at a time over several runs --------

    @staticmethod
    def new_key(filename: str) -> str:
        return f"{EXPORTS_PREFIX}{uuid.uuid4().hex}/{filename}"

    def start_upload(self, key: str, filename: str, content_type: str) -> str:
        """A multipart upload of ``key``, downloaded as ``filename``: its upload id."""
        return self._s3.create_multipart_upload(Bucket=self._bucket, Key=key, ContentType=content_type,
                                                ContentDisposition=f'attachment; filename="{filename}"')["UploadId"]

    def open_upload(self, key: str) -> Optional[str]:
        """The id of a multipart upload of ``key`` left open, None when there is none; any other
        of ``key`` is aborted."""
        pages = self._s3.get_paginator("list_multipart_uploads").paginate(Bucket=self._bucket, Prefix=key)
        found = [upload["UploadId"] for page in pages for upload in page.get("Uploads", []) if upload["Key"] == key]
        for upload_id in found[1:]:
            self.abort_upload(key, upload_id)
        return found[0] if found else None

    def send_part(self, key: str, upload_id: str, number: int, body: bytes) -> str:
        """Part ``number`` of the upload (5 MiB at least, but the last): its ETag."""
        return self._s3.upload_part(Bucket=self._bucket, Key=key, UploadId=upload_id, PartNumber=number,
                                    Body=body)["ETag"]

    def complete_upload(self, key: str, upload_id: str, parts: Iterable[Tuple[int, str]]) -> None:
        """The object, made of ``parts`` ((number, ETag), ascending): a part sent but not
        listed (a run's whose lease ran out) is left out, and dropped by S3."""
        self._s3.complete_multipart_upload(Bucket=self._bucket, Key=key, UploadId=upload_id, MultipartUpload={
            "Parts": [{"PartNumber": number, "ETag": etag} for number, etag in parts]})

    def hold(self, key: str, body: bytes) -> str:
        """``body`` kept for the next run under a key of its own (beside ``key``): the rows read
        since the last part, too few for one (S3 takes 5 MiB at least but for the last)."""
        held_key = f"{key}.held-{uuid.uuid4().hex}"
        self._s3.put_object(Bucket=self._bucket, Key=held_key, Body=body)
        return held_key

    def held(self, held_key: str) -> bytes:
        return self._s3.get_object(Bucket=self._bucket, Key=held_key)["Body"].read()

    def put_empty(self, key: str, filename: str, content_type: str) -> None:
        """An export with nothing in it: an object of no bytes (S3 wants a part of one at least)."""
        self._s3.put_object(Bucket=self._bucket, Key=key, Body=b"", ContentType=content_type,
                            ContentDisposition=f'attachment; filename="{filename}"')

    def abort_upload(self, key: str, upload_id: str) -> None:
        try:
            self._s3.abort_multipart_upload(Bucket=self._bucket, Key=key, UploadId=upload_id)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("NoSuchUpload", "404"):
                raise

    def download_url(self, key: str) -> str:
        return self._s3.generate_presigned_url("get_object", Params={"Bucket": self._bucket, "Key": key},
                                               ExpiresIn=EXPORT_URL_TTL_SECONDS)


class _ChunkReader(io.RawIOBase):
    """Byte chunks, produced on demand, as the readable file boto3's upload takes."""

    def __init__(self, chunks: Iterable[bytes]):
        self._chunks: Iterator[bytes] = iter(chunks)
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = memoryview(chunk)
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size
