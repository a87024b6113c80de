"""What a request costs as a local server's (or a stage's) data grows: requests that answer
about one share or one page must not read everything stored. Measured on 50,000 spikes in
docs/performance.md ("`make dev` at 50,000 spikes"); asserted here by counting what is read."""
from __future__ import annotations

import json

from tests.conftest import call, sign_in
from tests.test_shares import upload

READ_SIZE = 1000  # items one export Query reads (store/spikes.iterate)


def _store_spikes(share_id: str, owner_id: str, count: int) -> None:
    """``count`` spikes of a share written straight to the table, as a post stores them."""
    from chalicelib.store import spikes as spike_store
    from chalicelib.store.models import Spike
    with Spike.batch_write() as batch:
        for i in range(count):
            public_id = f"s{i:05d}"
            batch.save(spike_store.new(spike_store.spike_id_for(share_id, public_id), share_id,
                                       f"2026-01-01T00:00:{i // 1000:02d}.{i % 1000:03d}Z", public_id=public_id,
                                       type="page", project_key=share_id, owner_id=owner_id, share_id=share_id,
                                       comments="x" * 100))


def test_a_share_too_large_to_answer_is_refused_after_reading_one_answers_worth(client, monkeypatch, query_limits):
    """GET /shares/{key} answers with the share's feedback, or 409 when it outweighs one answer;
    the dashboard opens every share with it. It read every spike before refusing: 13.5 s for a
    share of 30,000 (and the answer's memory) on each open, growing with the share. Now the
    reading stops at the page where the budget is passed; so does DELETE's, nothing deleted."""
    from chalicelib.services import exports
    from chalicelib.services.accounts import user_id_for
    monkeypatch.setattr(exports, "MAX_INLINE_BYTES", 20_000)  # about 60 spikes: the 5 MB budget scaled down
    token = sign_in(client, "owner@example.com")
    share_id = upload(client, token, [("index.html", b"<html><body>Hi</body></html>")], {"slug": "busy"})[1]["share_id"]
    _store_spikes(share_id, user_id_for("owner@example.com"), 2 * READ_SIZE + 100)
    queries = query_limits
    for method in ("GET", "DELETE"):
        queries.clear()
        status, body, _ = call(client, method, f"/shares/{share_id}", token=token)
        assert (status, body["code"]) == (409, "EXPORT_TOO_LARGE"), body
        assert len(queries) == 1, queries  # the first page of 1,000, not all three
    listed = call(client, "GET", f"/spikes?project={share_id}&limit=1", token=token)[1]
    assert len(listed["data"]) == 1 and listed["next_cursor"]  # nothing was deleted


def test_the_dashboard_opens_a_share_without_reading_its_feedback_twice(client, monkeypatch, query_limits):
    """The dashboard opened a share with GET /shares/{id} (feedback inline, for its charts): for a
    share over one answer's worth that read about 10,000 spikes (10 s at 30,000 stored, on a
    loaded machine) only to answer 409, and then its listing read them all again. It now asks
    for the share without its feedback (``?exported_spikes=false``, as DELETE takes it: the
    share and its counted total, no Query) and reads the feedback once, page by page."""
    from chalicelib.services import exports
    from chalicelib.services.accounts import user_id_for
    monkeypatch.setattr(exports, "MAX_INLINE_BYTES", 20_000)
    token = sign_in(client, "owner@example.com")
    share_id = upload(client, token, [("index.html", b"<html><body>Hi</body></html>")], {"slug": "busy"})[1]["share_id"]
    for number in range(3):
        posted = {"type": "page", "projectKey": share_id, "page": "Home", "comments": f"c{number}"}
        assert call(client, "POST", "/spikes", posted)[0] == 201
    _store_spikes(share_id, user_id_for("owner@example.com"), READ_SIZE)  # not counted: the total says 3
    assert call(client, "GET", f"/shares/{share_id}", token=token)[1]["code"] == "EXPORT_TOO_LARGE"
    query_limits.clear()
    status, body, _ = call(client, "GET", f"/shares/busy?exported_spikes=false", token=token)
    assert status == 200, body
    assert (body["id"], body["slug"], body["spike_count"], body["exported_spikes"]) == (share_id, "busy", 3, [])
    assert query_limits == []  # no spike read
    assert call(client, "GET", "/shares", token=token)[1][0]["spike_count"] == body["spike_count"]
    script = client.http.get("/dashboard/share.js").body.decode()
    assert "`/shares/${encodeURIComponent(key)}`, { query: { exported_spikes: 'false' } }" in script


def test_a_share_that_fits_still_answers_with_all_its_feedback(client, monkeypatch):
    from chalicelib.services import exports
    from chalicelib.services.accounts import user_id_for
    token = sign_in(client, "owner@example.com")
    share_id = upload(client, token, [("index.html", b"<html><body>Hi</body></html>")], {"slug": "calm"})[1]["share_id"]
    _store_spikes(share_id, user_id_for("owner@example.com"), 3)
    status, body, _ = call(client, "GET", f"/shares/{share_id}", token=token)
    assert status == 200 and [item["id"] for item in body["exported_spikes"]] == ["s00002", "s00001", "s00000"]
    # The budget is the whole list's weight as json.dumps writes it: exactly at it still fits.
    from chalicelib import lambda_answer
    from chalicelib.services import spikes
    monkeypatch.setattr(exports, "MAX_INLINE_BYTES", lambda_answer.weight(json.dumps(spikes.export_share(share_id))))
    assert call(client, "GET", f"/shares/{share_id}", token=token)[0] == 200
    monkeypatch.setattr(exports, "MAX_INLINE_BYTES", exports.MAX_INLINE_BYTES - 1)
    assert call(client, "GET", f"/shares/{share_id}", token=token)[0] == 409


def test_an_export_reads_rows_not_models_and_sends_what_the_listing_sends(client, monkeypatch):
    """An export of 30,000 spikes took 15-18 s on make dev, most of it building a PynamoDB model
    per spike (the listings read rows since they were profiled: store/rows.py). Exports now read
    rows too, page after page, and send each spike exactly as the listing does."""
    from chalicelib.services.accounts import user_id_for
    from chalicelib.store.models import Spike
    token = sign_in(client, "owner@example.com")
    share_id = upload(client, token, [("index.html", b"<html><body>Hi</body></html>")], {"slug": "busy"})[1]["share_id"]
    _store_spikes(share_id, user_id_for("owner@example.com"), READ_SIZE + 5)
    full = {"type": "element", "projectKey": share_id, "id": "whole", "page": "Home", "url": "https://e.example/",
            "comments": "all fields", "rating": "love", "selector": "#b", "xpath": "/html/body/button",
            "elementText": "Buy", "boundingBox": {"x": 1, "y": 2, "width": 3, "height": 4},
            "viewport": {"width": 800, "height": 600}, "reviewer": {"id": "r1", "name": "Ann", "email": "a@e.example"}}
    assert call(client, "POST", "/spikes", full)[0] == 201
    listed, cursor = [], None
    while True:
        page = call(client, "GET", f"/spikes?project={share_id}&limit=1000" + (f"&cursor={cursor}" if cursor else ""),
                    token=token)[1]
        listed += page["data"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    built = []
    monkeypatch.setattr(Spike, "from_raw_data", classmethod(lambda cls, data: built.append(data)))
    exported = client.http.get(f"/spikes/export?project={share_id}&format=jsonl",
                               headers={"Authorization": f"Bearer {token}"})
    assert exported.status_code == 200
    assert [json.loads(line) for line in exported.body.decode().splitlines()] == listed
    assert len(listed) == READ_SIZE + 6 and listed[0]["id"] == "whole" and built == []


def test_staged_exports_expire_from_the_local_servers_data_folder(aws, tmp_path):
    """S3's lifecycle rule expires staged exports after a day (store/setup.py); moto does not
    apply it, so under make dev every large export stayed in the server's memory and in
    .local-data/s3/ for good (about 10 MB per export of 30,000 spikes: 82 MB after eight). The
    local server applies the bucket's rules itself, by when each object was first saved."""
    import os
    import time
    from chalicelib import deps
    from tools.localdata import LocalData
    s3, bucket = deps.s3_client(), deps.settings().bucket_name
    s3.put_object(Bucket=bucket, Key="exports/abc/spikes-big.csv", Body=b"x" * 1000)
    s3.put_object(Bucket=bucket, Key="shares/sh_1/index.html", Body=b"<h1>kept</h1>")
    saved = LocalData(tmp_path, deps.dynamodb_client(), s3, [], bucket)
    saved.dump()
    assert saved.expire_objects(now=time.time() + 3600) == 0  # within its day: kept
    # The server restarts two days later: the export's day has passed since it was first saved.
    manifest_path = tmp_path / "s3" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for meta in manifest.values():
        meta["saved_at"] -= 2 * 86400
    manifest_path.write_text(json.dumps(manifest))
    for key in manifest:
        s3.delete_object(Bucket=bucket, Key=key)
    restarted = LocalData(tmp_path, deps.dynamodb_client(), s3, [], bucket)
    assert restarted.restore() == {"s3 objects": 2, "s3 objects expired": 1}
    assert [obj["Key"] for obj in s3.list_objects_v2(Bucket=bucket).get("Contents", [])] == ["shares/sh_1/index.html"]
    restarted.dump()
    assert list(json.loads(manifest_path.read_text())) == ["shares/sh_1/index.html"]
    assert len(list((tmp_path / "s3" / "objects").iterdir())) == 1  # the export's file is gone too
    # One staged while running expires a day after it was made; a manifest from before saved_at
    # was kept dates an object by its file.
    s3.put_object(Bucket=bucket, Key="exports/def/spikes-big.jsonl", Body=b"y")
    assert restarted.expire_objects(now=time.time() + 86400 + 60) == 1
    s3.put_object(Bucket=bucket, Key="exports/ghi/spikes-big.jsonl", Body=b"z")
    restarted.dump()
    manifest = json.loads(manifest_path.read_text())
    meta = manifest.pop("exports/ghi/spikes-big.jsonl") | {"saved_at": None}
    manifest_path.write_text(json.dumps({**manifest, "exports/ghi/spikes-big.jsonl": meta}))
    old = time.time() - 2 * 86400
    os.utime(tmp_path / "s3" / "objects" / meta["file"], (old, old))
    s3.delete_object(Bucket=bucket, Key="exports/ghi/spikes-big.jsonl")
    assert LocalData(tmp_path, deps.dynamodb_client(), s3, [], bucket).restore()["s3 objects expired"] == 1
