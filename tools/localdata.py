"""Keeps what the embedded emulator (moto) holds across restarts of the local server.

moto holds everything in memory: share files and mails always, the tables only in the fallback
(DynamoDB Local keeps its tables on disk itself). After writes, the runner dumps the bucket
(and the tables it is given) into ``.local-data/`` through the ordinary AWS APIs, and loads
them back at start. Scans are fine here: this is the local runner, never a request path.

moto does not apply the bucket's lifecycle rules, which S3 does (store/setup.py: staged exports
expire after a day, staged uploads after 8): every large export stayed in moto's memory and in
``.local-data/s3/`` for good, about 10 MB per export of a share of 30,000 spikes. The rules are
applied here instead (``expire_objects``): at start, then every minute, by when each object was
first saved (kept in the manifest, since a restore gives it a new ``LastModified``).
"""
from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple

from botocore.exceptions import ClientError

EXPIRY_INTERVAL_SECONDS = 60.0


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


class LocalData:
    def __init__(self, root: Path, dynamodb: Any, s3: Any, tables: Iterable[str], bucket: str,
                 dirty: Optional[threading.Event] = None):
        self.root = root
        self.dynamodb = dynamodb
        self.s3 = s3
        self.tables = list(tables)
        self.bucket = bucket
        self._dirty = dirty if dirty is not None else threading.Event()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._flush_loop, name="local-data", daemon=True)
        self._saved_at: Dict[str, Tuple[str, float]] = {}  # key -> (etag, first saved), from the manifest

    # --- restore -----------------------------------------------------------------------------

    def restore(self) -> Dict[str, int]:
        counts = self.restore_tables()
        counts.update(self.restore_objects())
        return counts

    def item_counts(self, tables: Iterable[str]) -> Dict[str, int]:
        """Items per table as the engine reports them (DynamoDB Local: exact)."""
        return {table: int(self.dynamodb.describe_table(TableName=table)["Table"].get("ItemCount", 0))
                for table in tables}

    def restore_tables(self) -> Dict[str, int]:
        counts: Dict[str, int] = {}
        for table in self.tables:
            path = self.root / "dynamodb" / f"{table}.jsonl"
            if not path.exists():
                continue
            items = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            for start in range(0, len(items), 25):
                requests = [{"PutRequest": {"Item": item}} for item in items[start:start + 25]]
                pending = {table: requests}
                while pending:
                    pending = self.dynamodb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
            counts[table] = len(items)
        return counts

    def restore_objects(self) -> Dict[str, int]:
        counts: Dict[str, int] = {}
        manifest_path = self.root / "s3" / "manifest.json"
        if manifest_path.exists():
            manifest = json.loads(manifest_path.read_text())
            for key, meta in manifest.items():
                path = self.root / "s3" / "objects" / meta["file"]
                self.s3.put_object(Bucket=self.bucket, Key=key, Body=path.read_bytes(), ContentType=meta["content_type"])
                # Manifests written before it was kept: the file was written when the object was saved.
                self._saved_at[key] = (meta["etag"], meta.get("saved_at") or path.stat().st_mtime)
            counts["s3 objects"] = len(manifest)
            expired = self.expire_objects()
            if expired:
                counts["s3 objects expired"] = expired
        return counts

    # --- the bucket's lifecycle rules, which moto does not apply ------------------------------

    def _expiry_rules(self) -> List[Tuple[str, float]]:
        """(prefix, seconds) of each enabled rule that expires objects."""
        try:
            rules = self.s3.get_bucket_lifecycle_configuration(Bucket=self.bucket).get("Rules", [])
        except ClientError:
            return []  # no lifecycle configuration
        return [((rule.get("Filter") or {}).get("Prefix", rule.get("Prefix", "")), rule["Expiration"]["Days"] * 86400.0)
                for rule in rules if rule.get("Status") == "Enabled" and "Days" in (rule.get("Expiration") or {})]

    def expire_objects(self, now: Optional[float] = None) -> int:
        """Remove the objects a lifecycle rule of the bucket expires by now; how many."""
        now = time.time() if now is None else now
        removed = 0
        for prefix, seconds in self._expiry_rules():
            for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                for obj in page.get("Contents", []):
                    if now - self._first_saved(obj) >= seconds:
                        self.s3.delete_object(Bucket=self.bucket, Key=obj["Key"])
                        removed += 1
        return removed

    def _first_saved(self, obj: Dict[str, Any]) -> float:
        etag, saved_at = self._saved_at.get(obj["Key"], (None, 0.0))
        return saved_at if etag == obj["ETag"].strip('"') else obj["LastModified"].timestamp()

    # --- dump --------------------------------------------------------------------------------

    def mark_dirty(self) -> None:
        self._dirty.set()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.dump()

    def _flush_loop(self) -> None:
        next_expiry = time.monotonic() + EXPIRY_INTERVAL_SECONDS
        while not self._stop.is_set():
            if time.monotonic() >= next_expiry:
                next_expiry = time.monotonic() + EXPIRY_INTERVAL_SECONDS
                try:
                    if self.expire_objects():
                        self._dirty.set()
                except Exception as exc:  # noqa: BLE001 - keep serving; the next minute retries
                    print(f"[local-data] expiring staged objects failed: {exc}", flush=True)
            if self._dirty.wait(timeout=0.5):
                self._dirty.clear()
                try:
                    self.dump()
                except Exception as exc:  # noqa: BLE001 - keep serving; report and retry on next write
                    print(f"[local-data] dump failed: {exc}", flush=True)
                    self._dirty.set()
                self._stop.wait(1.0)

    def dump(self) -> None:
        with self._lock:
            for table in self.tables:
                lines = []
                for page in self.dynamodb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
                    lines.extend(json.dumps(item, sort_keys=True) for item in page["Items"])
                _atomic_write(self.root / "dynamodb" / f"{table}.jsonl", ("\n".join(lines) + "\n").encode())
            manifest_path = self.root / "s3" / "manifest.json"
            old = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
            manifest = {}
            for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
                for obj in page.get("Contents", []):
                    key, etag = obj["Key"], obj["ETag"].strip('"')
                    file_name = f"{abs(hash(key)):x}-{etag}"
                    saved_at = self._first_saved(obj)
                    if old.get(key, {}).get("etag") == etag and (self.root / "s3" / "objects" / old[key]["file"]).exists():
                        manifest[key] = {**old[key], "saved_at": saved_at}
                        continue
                    got = self.s3.get_object(Bucket=self.bucket, Key=key)
                    _atomic_write(self.root / "s3" / "objects" / file_name, got["Body"].read())
                    manifest[key] = {"etag": etag, "file": file_name, "saved_at": saved_at,
                                     "content_type": got.get("ContentType") or "application/octet-stream"}
            _atomic_write(manifest_path, json.dumps(manifest, indent=1, sort_keys=True).encode())
            live = {meta["file"] for meta in manifest.values()}
            objects_dir = self.root / "s3" / "objects"
            if objects_dir.exists():
                for stale in objects_dir.iterdir():
                    if stale.name not in live:
                        stale.unlink()
