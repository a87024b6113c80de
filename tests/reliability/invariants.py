"""What "consistent" means, checked on the stored data itself (tests may scan; requests never do).

``Store`` reads every table and the bucket through plain boto3 clients, in-process or next to a
running local server. ``problems(store)`` lists every broken invariant:

- every share's total (``spikes#<share>``, summed over its shards) equals the spikes stored for it;
- every share's period counter (``quota#<share>#<period>``, or its shards) and every owner's usage
  (``usage#<user>#<period>``) equal the spikes stored in that period (plus those the caller
  says were deleted since: deleting a spike gives no quota back);
- every user's ``active_shares`` equals the shares they own that are not being deleted;
- no share is left half-deleted (status ``deleting``, a ``share-deletion#`` unit in the deliveries
  table, or a member of the ``deletions#shares`` set an earlier version kept), and
  no spike, counter or slug claim belongs to a share that is gone (a deleted share's claim is
  retired: it names no share);
- every object in the bucket belongs to a share that exists, or to a background export (its
  file, or rows a run kept beside it: the bucket's lifecycle rule expires both a day on), and
  every file a visible share lists is in the bucket.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional

from boto3.dynamodb.types import TypeDeserializer

from tests.reliability import summary

_deserialize = TypeDeserializer().deserialize
VISIBLE = ("active", "locked")


@dataclass
class Store:
    dynamodb: Any
    s3: Any
    bucket: str
    table_name: Callable[[str], str]
    items: Dict[str, List[dict]] = field(default_factory=dict)
    objects: List[str] = field(default_factory=list)

    @classmethod
    def in_process(cls) -> "Store":
        from chalicelib import deps
        from chalicelib.store.tables import table_name
        settings = deps.settings()
        return cls(deps.dynamodb_client(), deps.s3_client(), settings.bucket_name,
                   lambda logical: table_name(settings, logical)).read()

    def read(self) -> "Store":
        from chalicelib.store.tables import TABLES
        self.items = {}
        for logical in TABLES:
            pages = self.dynamodb.get_paginator("scan").paginate(TableName=self.table_name(logical),
                                                                  ConsistentRead=True)
            self.items[logical] = [{k: _deserialize(v) for k, v in item.items()}
                                   for page in pages for item in page["Items"]]
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
        self.objects = [item["Key"] for page in pages for item in page.get("Contents", [])]
        return self

    # --- views -------------------------------------------------------------------------------

    def shares(self) -> Dict[str, dict]:
        return {item["share_id"]: item for item in self.items["shares"] if item["pk"].startswith("share#")}

    def slugs(self) -> Dict[str, str]:
        return {item["pk"][len("slug#"):]: item.get("share_id") for item in self.items["shares"]
                if item["pk"].startswith("slug#")}

    def ledger(self) -> Dict[str, dict]:
        return {item["pk"]: item for item in self.items["ledger"]}

    def spikes(self) -> List[dict]:
        return self.items["spikes"]

    def spike_ids(self) -> Counter:
        """Public id -> how many stored spikes carry it (in any project)."""
        return Counter(item.get("public_id") or item["spike_id"] for item in self.spikes())


def export_detail(item: dict) -> dict:
    """A background export's ``detail`` (stored as JSON text)."""
    detail = item.get("detail") or {}
    return json.loads(detail) if isinstance(detail, str) else detail


def _period(iso_time: str) -> str:
    return iso_time[:7]


def problems(store: Store, deleted_since: Optional[Dict[str, int]] = None,
             record: bool = True) -> List[str]:
    """Every broken invariant, one line each. ``deleted_since``: spikes deleted per share id and
    per user id (usage and quota keep counting them)."""
    deleted_since = deleted_since or {}
    shares, ledger, spikes = store.shares(), store.ledger(), store.spikes()
    found: List[str] = []
    counters_off = 0

    by_share: Counter = Counter(s["share_id"] for s in spikes if s.get("share_id"))
    by_share_period: Counter = Counter((s["share_id"], _period(s["created_at"])) for s in spikes if s.get("share_id"))
    by_user_period: Counter = Counter((s["owner_id"], _period(s["created_at"])) for s in spikes if s.get("owner_id"))

    # Totals and unlimited period counters are summed over their shards (store/spike_counters.py).
    totals: Counter = Counter()
    quotas: Counter = Counter()
    for pk, item in ledger.items():
        parts = pk.split("#")
        if parts[0] == "quota":
            quotas[(parts[1], parts[2])] += int(item.get("count", 0))
            if parts[1] not in shares:
                found.append(f"{pk}: counter of a share that is gone")
        elif parts[0] == "spikes":
            totals[parts[1]] += int(item.get("count", 0))
            if parts[1] not in shares:
                found.append(f"{pk}: counter of a share that is gone")
        elif parts[0] == "usage":
            user_id, period = parts[1], parts[2]
            expected = by_user_period[(user_id, period)] + deleted_since.get(user_id, 0)
            if int(item.get("count", 0)) != expected:
                found.append(f"{pk}: {item.get('count')}, stored spikes in the period {expected}")
                counters_off += 1
    for share_id in shares:
        if totals[share_id] != by_share[share_id]:
            found.append(f"share {share_id}: total {totals[share_id]}, stored spikes {by_share[share_id]}")
            counters_off += 1
    for (share_id, period) in set(quotas) | set(by_share_period):
        expected = by_share_period[(share_id, period)] + deleted_since.get(share_id, 0)
        if share_id in shares and quotas[(share_id, period)] != expected:
            found.append(f"quota#{share_id}#{period}: {quotas[(share_id, period)]}, spikes in the period {expected}")
            counters_off += 1

    owned: Counter = Counter(s["owner_id"] for s in shares.values() if s.get("status") != "deleting")
    for user in store.items["users"]:
        active = int(user.get("active_shares", 0) or 0)
        if active != owned[user["user_id"]]:
            found.append(f"user {user['user_id']}: active_shares {active}, owns {owned[user['user_id']]}")
            counters_off += 1

    for share_id, share in shares.items():
        if share.get("status") == "deleting":
            found.append(f"share {share_id}: left half-deleted")
        if store.slugs().get(share.get("slug")) != share_id:
            found.append(f"share {share_id}: slug {share.get('slug')!r} not claimed for it")
    pending = set(ledger.get("deletions#shares", {}).get("members") or set())
    pending |= {item["delivery_id"] for item in store.items["deliveries"]
                if item["delivery_id"].startswith("share-deletion#")}
    if pending:
        found.append(f"deletions never finished: {sorted(pending)}")
    for slug, share_id in store.slugs().items():
        if share_id is None:
            continue  # retired: its share was deleted, the slug is kept for that share's owner
        if share_id not in shares:
            found.append(f"slug {slug!r} claimed for a share that is gone ({share_id})")
    for share_id in by_share:
        if share_id not in shares:
            found.append(f"{by_share[share_id]} spikes of share {share_id}, which is gone")

    export_keys = [export_detail(item)["key"] for pk, item in ledger.items() if pk.startswith("export#")]
    for key in store.objects:
        parts = key.split("/")
        if parts[0] == "exports":  # a background export's file, or rows a run kept beside it
            if not any(key == export_key or key.startswith(f"{export_key}.held-") for export_key in export_keys):
                found.append(f"orphan object {key}")
            continue
        share_id = parts[1] if parts[0] in ("shares", "uploads") else parts[-1].removesuffix(".json")
        if share_id not in shares:
            found.append(f"orphan object {key}")
    present = set(store.objects)
    for share_id, share in shares.items():
        if share.get("status") in VISIBLE:
            files = share.get("files") or {}
            for path in json.loads(files) if isinstance(files, str) else files:
                if f"shares/{share_id}/{path}" not in present:
                    found.append(f"share {share_id}: file {path} missing from the bucket")
    if record:
        summary.add("counters off", counters_off)
    return found


def lost_spikes(store: Store, accepted: Iterable[str], record: bool = True) -> List[str]:
    """Public ids answered 201 that are not stored exactly once."""
    stored = store.spike_ids()
    lost = [spike_id for spike_id in accepted if stored[spike_id] != 1]
    if record:
        summary.add("spikes lost", sum(1 for spike_id in accepted if stored[spike_id] == 0))
    return lost
