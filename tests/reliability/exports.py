"""Background exports (``POST /exports``, ``GET /exports/{id}``, the ``exports`` job) as the
crash-point and fault tests drive them: a share's spikes, matched densely then sparsely by the
export's filter, sent in parts of a few hundred bytes by runs that each have time for a few
reads or rows, so one export takes several parts, several runs, and rows kept in S3 between
runs (services/background_exports.py). Its file must be what one ``GET /spikes/export`` answers.
"""
from __future__ import annotations

import contextlib
import itertools
from typing import Any, Dict, Iterator, List, Optional
from urllib.parse import unquote, urlparse

from tests.conftest import call
from tests.reliability.invariants import export_detail
from tests.test_shares import share_site
from tests.test_usage import SCHEDULE_EVENT

# The newest DENSE spikes all match the filter, then one in SPARSE_EVERY of the older ones.
DENSE, SPARSE, SPARSE_EVERY = 6, 18, 6
MATCHING = DENSE + len(range(0, SPARSE, SPARSE_EVERY))
FILTER = "rating=like"
PART_BYTES = 1200  # CSV rows of these spikes are about 300 bytes: a part holds a few
READ_SIZE = 4  # items a Query evaluates: a run may stop between two reads that matched nothing
CHECKS_PER_RUN = 6  # the times a run asks how much time it has left before it has none
# The fault test's exports all run at once, more than the default 3 (store/export_slots.py).
MAX_RUNNING = "20"

_turn: Dict[str, Optional[Iterator[int]]] = {"checks": None}


def _remaining_ms(context: Any) -> int:
    checks = _turn["checks"]
    return 60_000 if checks is None or next(checks) < CHECKS_PER_RUN else 0


@contextlib.contextmanager
def short_turn() -> Iterator[None]:
    """The request or job run inside has time for ``CHECKS_PER_RUN`` checks of its time."""
    _turn["checks"] = itertools.count()
    try:
        yield
    finally:
        _turn["checks"] = None


def small_parts_and_short_runs(monkeypatch) -> None:
    import moto.s3.models
    from chalice.local import LambdaContext

    from chalicelib.store import files, rows
    monkeypatch.setattr(moto.s3.models, "S3_UPLOAD_PART_MIN_SIZE", 1)  # S3 takes 5 MiB but for the last
    monkeypatch.setattr(files, "EXPORT_PART_BYTES", PART_BYTES)
    monkeypatch.setitem(rows.iterate_index.__kwdefaults__, "read_size", READ_SIZE)
    monkeypatch.setattr(rows, "MAX_READ_SIZE", READ_SIZE)
    # chalice.test's context says 3 s are left (less than a run keeps for finishing): the
    # request and the job see a minute, or none once their turn's checks are used.
    monkeypatch.setattr(LambdaContext, "get_remaining_time_in_millis", _remaining_ms)


def exported_share(client, token: str, name: str) -> Dict[str, Any]:
    """A share of the signed-in owner with spikes posted by the widget, as an export reads them."""
    share = share_site(client, token, name)
    for n in range(DENSE + SPARSE):  # posted oldest first; exports read newest first
        older = n < SPARSE
        rating = "like" if not older or n % SPARSE_EVERY == 0 else "no"
        status, body, _ = call(client, "POST", "/spikes", {
            "type": "page", "projectKey": share["slug"], "id": f"{share['share_id']}-{n:02d}", "rating": rating,
            "comments": f"comment {n}, \"quoted\" and long enough to weigh something: " + "x" * 120})
        assert status == 201, body
    return share


def query(share: Dict[str, Any], fmt: str) -> str:
    return f"?project={share['share_id']}&format={fmt}&{FILTER}"


def start(client, token: str, share: Dict[str, Any], fmt: str):
    """``POST /exports``, the request running the export's first turn."""
    with short_turn():
        return call(client, "POST", f"/exports{query(share, fmt)}", token=token)


def poll(client, token: str, export_id: str):
    return call(client, "GET", f"/exports/{export_id}", token=token)


def job_run(client) -> Dict[str, Any]:
    """One invocation of the scheduled ``exports`` function (its calls checked against its role)."""
    with short_turn():
        return client.lambda_.invoke("exports", SCHEDULE_EVENT).payload


def one_shot(client, token: str, share: Dict[str, Any], fmt: str) -> bytes:
    answer = client.http.get(f"/spikes/export{query(share, fmt)}", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.body
    return answer.body


def downloaded(url: str) -> bytes:
    from chalicelib import deps
    bucket = deps.settings().bucket_name
    key = unquote(urlparse(url).path).split(f"/{bucket}/", 1)[1]
    return deps.s3_client().get_object(Bucket=bucket, Key=key)["Body"].read()


def unfinished_uploads(store) -> List[str]:
    """Multipart uploads open under exports/ but the one a running export records: those of an
    export that ended (done or failed), or that no export knows of, nothing would ever abort
    but the bucket's lifecycle rule, a day later."""
    exports = [item for pk, item in store.ledger().items() if pk.startswith("export#")]
    running = {(export_detail(item)["key"], export_detail(item).get("upload_id")) for item in exports
               if item.get("state") == "running"}
    pages = store.s3.get_paginator("list_multipart_uploads").paginate(Bucket=store.bucket, Prefix="exports/")
    return [f"{upload['Key']} ({upload['UploadId']})" for page in pages for upload in page.get("Uploads", [])
            if (upload["Key"], upload["UploadId"]) not in running]


def slots_held_by_ended_exports(store) -> List[str]:
    """Running-export slots (store/export_slots.py) still held by an export that ended."""
    ledger = store.ledger()
    ended = {pk[len("export#"):]: export_detail(item).get("slot") for pk, item in ledger.items()
             if pk.startswith("export#") and item.get("state") != "running"}
    return [f"{slot} held by {export_id}" for export_id, slot in ended.items()
            if slot and (ledger.get(slot) or {}).get("holder") == export_id]


def running_without_a_unit(store) -> List[str]:
    """Running exports no run of the job will take: their pending unit (``export#<id>`` in the
    deliveries table, pending or parked) is gone."""
    units = {item["delivery_id"] for item in store.items["deliveries"]}
    return [pk for pk, item in store.ledger().items()
            if pk.startswith("export#") and item.get("state") == "running" and pk not in units]
