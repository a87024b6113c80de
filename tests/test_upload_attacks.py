"""Share uploads attacked again (docs/security.md 175-178): what a presigned upload's URLs
can still do after the share they were made for was completed and deleted, and more."""
from __future__ import annotations

from datetime import timedelta

import requests

from chalicelib.store import share_work
from tests.factories import queued
from tests.conftest import call
from tests.test_shares import INDEX, _run_share_job, s3_keys, start_presigned


def _put(target: dict, data: bytes) -> int:
    return requests.put(target["url"], data=data, headers=target["headers"], timeout=10).status_code


def test_files_put_after_a_completed_upload_was_deleted_are_removed_by_the_job(client, user_token):
    """A completed upload forgets its marker, so when its share was deleted within the URLs' 15
    minutes, PUTs made afterwards stayed in its staging area for good (finding 138 covered only
    uploads deleted while pending): ten uploads a minute, up to 50 MB each. The deletion of a
    share young enough to have live upload URLs hands its staging area to the job."""
    status, body, _ = start_presigned(client, user_token, [{"path": "index.html", "size": len(INDEX)}])
    assert status == 201, body
    target, share_id = body["uploads"][0], body["share_id"]
    assert _put(target, INDEX) == 200
    assert call(client, "POST", f"/shares/{share_id}/complete", token=user_token)[0] == 200
    assert call(client, "DELETE", f"/shares/{share_id}", token=user_token)[0] == 200
    assert _put(target, INDEX) == 200  # the URL still lives
    assert s3_keys(f"uploads/{share_id}/")
    result = _run_share_job(client, timedelta(days=2))
    assert result["unfinished_uploads_failed"] == 0, result
    assert s3_keys(f"uploads/{share_id}/") == [] and s3_keys(f"shares/{share_id}/") == []
    assert queued(share_work.PRESIGNED_UPLOADS) == []


def test_a_direct_upload_refuses_documents_larger_than_the_api_serves(client, user_token, env):
    """Presigned uploads refused an HTML or XML file over SPIKES_MAX_SERVED_FILE_BYTES (413), as
    the docs promise of uploads; a direct upload took it, and its page was then only ever handed
    out as a download: a share its owner believed published was broken, silently."""
    from tests.test_shares import upload
    env(MAX_SERVED_FILE_BYTES="1000")
    for path in ("index.html", "art.svg"):
        status, body, _ = upload(client, user_token, [(path, b"<h1>Hi</h1>" + b" " * 2000)], {"name": "x"})
        assert (status, body["code"]) == (413, "SIZE_LIMIT"), body
    assert s3_keys("shares/") == []
    # Other files of that size are served by S3, and still taken.
    assert upload(client, user_token, [("index.html", INDEX), ("big.png", b"\0" * 2000)], {"name": "x"})[0] == 201


def test_completions_are_limited_per_account(client, user_token, env):
    """Each completion lists the staging area and copies every checked file (up to 500) before
    it can fail (an object replaced meanwhile answers CHANGED_DURING_COMPLETE and the upload
    stays pending): unlimited, one account re-PUTting a file while calling complete in a loop
    made S3 copy 500 objects per call, on the operator's bill. Completions now count per account
    as uploads do, in a budget of their own (a start does not take a completion's place)."""
    from tests.conftest import sign_in
    env(RATE_SHARES_PER_MINUTE="2")
    status, body, _ = start_presigned(client, user_token, [{"path": "index.html", "size": len(INDEX)}])
    assert status == 201, body
    complete = f"/shares/{body['share_id']}/complete"
    for _ in range(2):
        assert call(client, "POST", complete, token=user_token)[1]["code"] == "VALIDATION_ERROR"  # nothing PUT yet
    status, refused, headers = call(client, "POST", complete, token=user_token)
    assert (status, refused["code"]) == (429, "RATE_LIMIT") and int(headers["Retry-After"]) > 0
    # Per account, whatever the credential: another session of the same account is refused too.
    assert call(client, "POST", complete, token=sign_in(client, "owner@example.com"))[0] == 429
    assert start_presigned(client, user_token, [{"path": "index.html", "size": 1}])[0] == 201
