"""Share uploads attacked as a hostile uploader, and as a store that fails at the worst moment
(docs/security.md, the review of share creation, uploads and serving)."""
from __future__ import annotations

from datetime import timedelta

import pytest
import requests

from chalicelib.errors import DependencyUnavailable
from chalicelib.services import metering
from chalicelib.store import share_work
from chalicelib.store.models import Share
from tests.factories import queued
from tests.conftest import call
from tests.test_shares import INDEX, _run_share_job, all_items, s3_keys, start_presigned, upload

BOUNDARY = "spikes-review"


def _raw_upload(client, token, disposition: str):
    body = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\r\n{{\"name\": \"x\"}}\r\n"
            f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\nhi\r\n--{BOUNDARY}--\r\n").encode()
    return call(client, "POST", "/shares", token=token, raw=body,
                headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})


@pytest.mark.parametrize("charset", ["unicode_escape", "raw_unicode_escape"])
def test_a_file_name_decoded_to_an_unpaired_surrogate_is_a_400(client, user_token, charset):
    """An RFC 2231 file name (``filename*=charset''…``) is decoded with the charset it names, and
    Python's escape codecs make an unpaired surrogate of ``\\ud800``: no key S3 takes, no text
    UTF-8 can carry. It was a 500."""
    status, body, _ = _raw_upload(client, user_token, f"form-data; name=\"files\"; filename*={charset}''%5Cud800.html")
    assert (status, body["code"]) == (400, "INVALID_FILENAME"), body
    assert s3_keys() == [] and all_items(Share) == []


@pytest.mark.parametrize("path", ["~u.assets/logo.css", "css/~U.x/a.css", "~u.html"])
def test_a_name_that_serving_reads_as_an_access_segment_is_refused(client, user_token, path):
    """``/s/<slug>/~u.<token>/…`` carries a protected share's unlock proof: a folder of that name
    was stored and never served (404 for every file in it), and feedback on its pages lost the
    segment from its address (stripped as an access path)."""
    status, body, _ = upload(client, user_token, [("index.html", INDEX), (path, b"x")], {"name": "x"})
    assert (status, body["code"]) == (400, "INVALID_FILENAME"), body
    status, body, _ = start_presigned(client, user_token, [{"path": path, "size": 1}])
    assert (status, body["code"]) == (400, "INVALID_FILENAME"), body
    assert s3_keys() == [] and all_items(Share) == []
    # The same letters elsewhere in a name are an ordinary name.
    assert upload(client, user_token, [("index.html", INDEX), ("a~u.css", b"x")], {"name": "x"})[0] == 201


def test_a_direct_upload_whose_store_answer_was_lost_keeps_its_files(client, user_token, monkeypatch):
    """The share's transaction committed and its answer was lost (DynamoDB answered 500 to every
    attempt, or the connection dropped): the upload removed the files of the share it had just
    stored, which then answered 404 for every file while it held a place in the owner's limit.
    It is answered as the share it stored now, files and all."""
    original = metering.insert_share

    def committed_then_lost(*args, **kwargs):
        original(*args, **kwargs)
        raise DependencyUnavailable("The store is busy; retry shortly")

    monkeypatch.setattr(metering, "insert_share", committed_then_lost)
    status, body, _ = upload(client, user_token, [("index.html", INDEX), ("css/site.css", b"h1{}")], {"name": "Lost"})
    assert status == 201, body
    monkeypatch.undo()
    assert [share.share_id for share in all_items(Share) if share.share_id and share.pk.startswith("share#")] \
        == [body["share_id"]]
    response = client.http.request("GET", f"/s/{body['slug']}/css/site.css", headers={"Accept": "*/*"})
    assert (response.status_code, response.body) == (200, b"h1{}")


def test_an_upload_the_store_refused_leaves_no_file(client, user_token, monkeypatch):
    def refused(*args, **kwargs):
        raise DependencyUnavailable("The store is busy; retry shortly")

    monkeypatch.setattr(metering, "insert_share", refused)
    status, body, _ = upload(client, user_token, [("index.html", INDEX)], {"name": "Refused"})
    assert (status, body["code"]) == (503, "SERVICE_UNAVAILABLE")
    assert s3_keys("shares/") == [] and all_items(Share) == []


def test_files_put_after_a_pending_upload_was_deleted_are_removed_by_the_job(client, user_token):
    """A presigned upload's URLs stay valid for their 15 minutes whatever happens to the share.
    Deleted while pending (which frees its place in the limit), its staging area was removed, and
    PUTs made afterwards stayed in the bucket for good: nothing read or removed them again, so an
    account could leave up to max_share_bytes (50 MB) behind per upload it started, ten a minute.
    The share_deletions job removes them once the URLs have expired, when it forgets the upload."""
    status, body, _ = start_presigned(client, user_token, [{"path": "index.html", "size": len(INDEX)}])
    assert status == 201, body
    assert call(client, "DELETE", f"/shares/{body['share_id']}", token=user_token)[0] == 200
    target = body["uploads"][0]
    assert requests.put(target["url"], data=INDEX, headers=target["headers"], timeout=10).status_code == 200
    assert s3_keys(f"uploads/{body['share_id']}/")
    result = _run_share_job(client, timedelta(days=2))
    assert result["unfinished_uploads_failed"] == 0, result
    assert s3_keys(f"uploads/{body['share_id']}/") == [] and s3_keys(f"shares/{body['share_id']}/") == []
    assert queued(share_work.PRESIGNED_UPLOADS) == []


def test_a_presigned_upload_whose_store_answer_was_lost_is_still_expired_by_the_job(client, user_token, monkeypatch):
    """The pending share's transaction committed and its answer was lost: the start forgot its
    upload marker, so a share never completed was never expired, holding a place in the owner's
    limit until they found and deleted it. It is answered as started, its marker kept."""
    original = metering.insert_share

    def committed_then_lost(*args, **kwargs):
        original(*args, **kwargs)
        raise DependencyUnavailable("The store is busy; retry shortly")

    monkeypatch.setattr(metering, "insert_share", committed_then_lost)
    status, body, _ = start_presigned(client, user_token, [{"path": "index.html", "size": len(INDEX)}])
    monkeypatch.undo()
    assert status == 201 and body["status"] == "pending" and body["uploads"], body
    assert [share.share_id for share in all_items(Share) if share.pk.startswith("share#")] == [body["share_id"]]
    assert len(queued(share_work.PRESIGNED_UPLOADS)) == 1
    result = _run_share_job(client, timedelta(days=2))
    assert result["unfinished_uploads_expired"] == 1, result
    assert call(client, "GET", f"/shares/{body['share_id']}", token=user_token)[0] == 404


def test_a_presigned_upload_the_store_refused_leaves_no_marker(client, user_token, monkeypatch):
    def refused(*args, **kwargs):
        raise DependencyUnavailable("The store is busy; retry shortly")

    monkeypatch.setattr(metering, "insert_share", refused)
    status, body, headers = start_presigned(client, user_token, [{"path": "index.html", "size": len(INDEX)}])
    assert status == 503 and headers.get("Retry-After"), body
    assert queued(share_work.PRESIGNED_UPLOADS) == [] and all_items(Share) == []


def _upload_of_parts(client, token, parts: list):
    body = "".join(f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n{data}\r\n"
                   for disposition, data in parts) + f"--{BOUNDARY}--\r\n"
    return call(client, "POST", "/shares", token=token, raw=body.encode(),
                headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})


def test_an_upload_of_endless_form_fields_is_refused_at_its_part_count(client, user_token):
    """Parts without a file name are ignored, so a body of empty fields was parsed whole (half a
    million of them fit in 4 MB: seconds of a Lambda) and then stored as a one-file share. The
    parts are counted as they begin: more than the files a share holds and a few fields is a 400."""
    fields = [("form-data; name=\"x\"", "")] * 520  # past 500 files and 20 other fields
    parts = [("form-data; name=\"metadata\"", '{"name": "fields"}'),
             ("form-data; name=\"file\"; filename=\"index.html\"", "<p>hi</p>")] + fields
    status, body, _ = _upload_of_parts(client, user_token, parts)
    assert (status, body["details"][0]["code"], body["details"][0]["field"]) == (400, "TOO_MANY_FILES", "files"), body
    assert s3_keys() == [] and all_items(Share) == []


def test_an_upload_with_its_files_and_a_few_form_fields_is_stored(client, user_token):
    fields = [("form-data; name=\"note\"", "")] * 19  # uploads.MAX_OTHER_PARTS, the metadata one of them
    parts = [("form-data; name=\"metadata\"", '{"name": "fields"}'),
             ("form-data; name=\"file\"; filename=\"index.html\"", "<p>hi</p>")] + fields
    status, body, _ = _upload_of_parts(client, user_token, parts)
    assert status == 201, body



def test_the_refusal_names_the_part_count_that_is_the_limit(client, user_token):
    """docs/shares.md and the refusal said "at most 20 other form fields", but the bound is on
    the parts in all (the files a share holds and 20): a few files with 25 fields are stored."""
    note = ("form-data; name=\"note\"", "")
    parts = [("form-data; name=\"metadata\"", '{"name": "notes"}'),
             ("form-data; name=\"file\"; filename=\"index.html\"", "<p>hi</p>")] + [note] * 25
    assert _upload_of_parts(client, user_token, parts)[0] == 201
    status, body, _ = _upload_of_parts(client, user_token, parts[:2] + [note] * 520)
    assert status == 400 and "at most 520 form parts in all" in body["details"][0]["message"], body

def test_one_file_more_than_a_share_holds_is_refused(client, user_token):
    files = [(f"form-data; name=\"file\"; filename=\"p{i}.html\"", "<p>hi</p>") for i in range(501)]
    status, body, _ = _upload_of_parts(client, user_token, [("form-data; name=\"metadata\"", '{"name": "many"}')] + files)
    assert (status, body["details"][0]["code"]) == (400, "TOO_MANY_FILES"), body
