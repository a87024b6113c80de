"""The share_deletions job's pending work (store/share_work.py): one small item per deletion or
unfinished upload, not one more member of a ledger item every user writes (docs/security.md 206)."""
from __future__ import annotations

import time
from datetime import timedelta

from chalicelib import deps
from chalicelib.services import parked_work, pending_work, share_cleanup
from chalicelib.store import ledger, share_work
from chalicelib.store.models import Delivery
from tests.conftest import call, sign_in
from tests.factories import queued
from tests.test_shares import INDEX, _run_share_job, share_site, start_presigned
from tests.test_webhook_releases import _fill_to_the_limit

WORK_SETS = ("deletions#shares", "uploads#shares", "uploads#presigned")


def test_uploads_and_deletions_go_on_however_many_unfinished_uploads_are_pending(backend_client):
    """On moto and DynamoDB Local (which, as DynamoDB, refuses an item past 400 KB). An account may start 10 presigned uploads a minute and leave them unfinished (one a day
    old is expired, and an agent-tier one's charge given back): one or two such accounts kept
    some 15,000 pending, as full as the one ledger item listing them for the whole installation
    can be (400 KB). Then every presigned upload of every user failed, and so did the deletion
    of any share less than a day old. Each is an item of its own now, and nothing writes that
    set (an earlier version's members are moved out of it by the job)."""
    client, user_token = backend_client, sign_in(backend_client, "owner@example.com")
    young = share_site(client, user_token, "Young")
    filled = _fill_to_the_limit("uploads#presigned", int(time.time()))
    assert filled > 10_000

    status, started, _ = start_presigned(client, user_token, [{"path": "index.html", "size": len(INDEX)}])
    assert status == 201, started
    assert call(client, "DELETE", f"/shares/{young['share_id']}", token=user_token)[0] == 200
    assert share_site(client, user_token, "Direct")["share_id"]
    assert len(ledger.members("uploads#presigned")) == filled  # not one member more
    assert [ledger.members(key) for key in WORK_SETS if key != "uploads#presigned"] == [[], []]
    # Pending: the upload, and the deleted share's staging area (its upload URLs may still live).
    assert {unit.partition("@")[0] for unit in queued(share_work.PRESIGNED_UPLOADS)} == \
        {started["share_id"], young["share_id"]}
    assert list(Delivery.share_index.query(started["share_id"])) == []  # never in a delivery log

    _run_share_job(client)  # the job moves a bounded number of the earlier version's members a run
    assert len(ledger.members("uploads#presigned")) == filled - share_work.LEGACY_MOVED_PER_RUN


def test_an_unfinished_upload_whose_expiry_fails_is_tried_again_after_a_delay_not_a_day(client, user_token,
                                                                                       monkeypatch):
    status, started, _ = start_presigned(client, user_token, [{"path": "index.html", "size": len(INDEX)}])
    assert status == 201, started
    real = share_cleanup._expire_unfinished

    def failing(*args):
        raise RuntimeError("S3 answered 500")
    monkeypatch.setattr(share_cleanup, "_expire_unfinished", failing)
    assert _run_share_job(client, timedelta(days=1, minutes=1))["unfinished_uploads_failed"] == 1
    [name] = queued(share_work.PRESIGNED_UPLOADS)
    item = Delivery.get(share_work.PRESIGNED_UPLOADS.prefix + name)
    assert (item.attempts, item.last_error) == (1, "RuntimeError: S3 answered 500")
    assert _run_share_job(client, timedelta(days=1, minutes=2))["unfinished_uploads_failed"] == 0  # waits its delay
    monkeypatch.setattr(share_cleanup, "_expire_unfinished", real)
    later = timedelta(days=1, minutes=1, seconds=pending_work.delay(1) + 1)
    assert _run_share_job(client, later)["unfinished_uploads_expired"] == 1
    _run_share_job(client, later + timedelta(minutes=16))  # its look once no completion can run (222)
    assert queued(share_work.PRESIGNED_UPLOADS) == []


def test_a_deletion_that_keeps_failing_is_parked_for_an_operator(aws, monkeypatch):
    share_work.DELETIONS.record("sh_stuck0000000", 1_700_000_000)
    monkeypatch.setattr(share_cleanup, "_finish_deletion", lambda files, share_id, until, just_started: 1 / 0)
    now = 1_800_000_000
    for _ in range(pending_work.MAX_ATTEMPTS):
        share_cleanup.finish_pending_deletions(deps.share_files(), now)
        now += pending_work.MAX_DELAY_SECONDS + 1
    assert queued(share_work.DELETIONS) == []
    [parked] = [unit for unit in parked_work.parked() if unit["queue"] == "share-deletions"]
    assert (parked["unit"], parked["attempts"]) == ("share-deletion#sh_stuck0000000", pending_work.MAX_ATTEMPTS)
    assert parked["reason"] == "ZeroDivisionError: division by zero"  # the step's own failure
    parked_work.requeue("share-deletion#sh_stuck0000000")
    assert queued(share_work.DELETIONS) == ["sh_stuck0000000"]


def test_a_stale_read_of_a_share_just_tombstoned_does_not_lose_its_deletion(client, user_token, monkeypatch):
    """The job read the share of a pending deletion eventually consistently, and forgot the unit
    of any share not ``deleting``: a run that came a moment after a DELETE (its unit on the
    index, the share's record read as it was before the tombstone) dropped the deletion for
    good. The share stayed ``deleting``, its spikes and files kept, and once the unit was gone
    its feedback was back in its owner's listings. The job reads the share consistently."""
    from chalicelib.services import share_deletion
    from chalicelib.store.models import Share, Spike
    from tests.test_shares import all_items, share_site
    share = share_site(client, user_token, "Huge")
    assert call(client, "POST", "/spikes", {"id": "s0", "type": "page", "projectKey": share["share_id"],
                                            "page": "/", "rating": "like"})[0] in (200, 201)
    before = Share.get(f"share#{share['share_id']}")
    monkeypatch.setattr(share_deletion, "REQUEST_DELETION_SECONDS", 0)
    assert call(client, "DELETE", f"/shares/{share['share_id']}", token=user_token)[0] == 200
    real_get = Share.get.__func__

    def eventually_consistent(cls, pk, *args, consistent_read=False, **kwargs):
        if pk == before.pk and not consistent_read:
            return before  # the record as it was a moment ago
        return real_get(cls, pk, *args, consistent_read=consistent_read, **kwargs)
    monkeypatch.setattr(Share, "get", classmethod(eventually_consistent))
    assert share_cleanup.finish_pending_deletions(deps.share_files(), now=time.time())["finished"] == 1
    monkeypatch.undo()
    assert [s for s in all_items(Spike) if s.partition == share["share_id"]] == []
    assert queued(share_work.DELETIONS) == []
    assert call(client, "GET", "/spikes", token=user_token)[1]["data"] == []


def _completion_dying_after_its_copies(client, user_token, monkeypatch, meanwhile) -> str:
    """A presigned upload of one file whose completion read the staged sources, let
    ``meanwhile(share_id)`` happen, copied them to the served files and died (its 25 s up)."""
    from chalicelib.store.files import ShareFiles
    status, started, _ = start_presigned(client, user_token, [{"path": "index.html", "size": len(INDEX)}])
    assert status == 201, started
    share_id = started["share_id"]
    deps.s3_client().put_object(Bucket=deps.settings().bucket_name, Key=f"uploads/{share_id}/index.html", Body=INDEX)

    def copies_in_flight_then_killed(self, share_id, verified):
        sources = {path: self._s3.get_object(Bucket=self._bucket, Key=self.staging_key(share_id, path))["Body"].read()
                   for path in verified}
        meanwhile(share_id)
        for path, body in sources.items():
            self._s3.put_object(Bucket=self._bucket, Key=self.object_key(share_id, path), Body=body)
        raise TimeoutError("Task timed out after 25.00 seconds")
    monkeypatch.setattr(ShareFiles, "publish", copies_in_flight_then_killed)
    assert call(client, "POST", f"/shares/{share_id}/complete", token=user_token)[0] == 500
    monkeypatch.undo()
    return share_id


def test_files_a_dying_completion_copies_after_its_shares_deletion_are_removed(client, user_token, monkeypatch):
    """A completion copies the staged files to the served ones, then activates. The owner deleting
    the pending share while the copies are in flight (S3 read their sources, the deletion removed
    the share's files and staging area, then the copies landed) leaves those copies, which the
    completion removes when it finds the share gone. One that died in between (its 25 s up,
    DynamoDB throttling the read that tells it the share is gone) left them for good: nothing
    names a share that no longer exists, and the job only swept the upload's staging area. The
    job removes a gone share's served files with its staging area."""
    from chalicelib.services import share_deletion
    from tests.test_shares import s3_keys, user_of
    share_id = _completion_dying_after_its_copies(client, user_token, monkeypatch, lambda share_id: (
        share_deletion.delete_share(deps.share_files(), user_of("owner@example.com"), share_id, with_export=False)))
    assert s3_keys(f"shares/{share_id}/") == [f"shares/{share_id}/index.html"]  # its share gone, its file left

    _run_share_job(client, timedelta(days=1, minutes=1))
    assert s3_keys(f"shares/{share_id}/") == [] and s3_keys(f"uploads/{share_id}/") == []
    assert queued(share_work.PRESIGNED_UPLOADS) == []


def _park(queue, name: str) -> None:
    """The job failed at the unit until it parked it (store/pending_queue.py)."""
    now = int(time.time())
    [unit] = [unit for unit in queue.due(100) if unit.name == name]
    assert queue.fail(unit, "RuntimeError: S3 answered 500", now, now) == 1
    assert queue.park(name, 1, now)
    assert name not in queued(queue)


def test_a_parked_deletion_finished_by_a_retried_delete_is_no_longer_parked(client, user_token, monkeypatch):
    """A deletion the job failed at until it parked it, which its owner then finished by retrying
    ``DELETE /shares/<key>`` (docs/deploy.md): finishing forgot the unit only while pending, so
    the parked one stayed, listed by ``make parked-work`` for a share that no longer exists and
    read as still being deleted."""
    from chalicelib.services import share_deletion
    share = share_site(client, user_token, "Stuck")
    assert call(client, "POST", "/spikes", {"id": "s0", "type": "page", "projectKey": share["share_id"],
                                            "page": "/", "rating": "like"})[0] in (200, 201)
    monkeypatch.setattr(share_deletion, "REQUEST_DELETION_SECONDS", 0)
    assert call(client, "DELETE", f"/shares/{share['share_id']}", token=user_token)[0] == 200
    monkeypatch.undo()
    _park(share_work.DELETIONS, share["share_id"])
    assert share_work.being_deleted([share["share_id"]]) == {share["share_id"]}

    assert call(client, "DELETE", f"/shares/{share['share_id']}", token=user_token)[0] == 200
    assert [unit for unit in parked_work.parked() if unit["queue"] == "share-deletions"] == []
    assert share_work.being_deleted([share["share_id"]]) == set()


def test_a_parked_upload_completed_after_all_is_no_longer_parked(client, user_token):
    status, started, _ = start_presigned(client, user_token, [{"path": "index.html", "size": len(INDEX)}])
    assert status == 201, started
    share_id = started["share_id"]
    [marker] = queued(share_work.PRESIGNED_UPLOADS)
    _park(share_work.PRESIGNED_UPLOADS, marker)
    deps.s3_client().put_object(Bucket=deps.settings().bucket_name, Key=f"uploads/{share_id}/index.html", Body=INDEX)
    assert call(client, "POST", f"/shares/{share_id}/complete", token=user_token)[0] == 200
    assert [unit for unit in parked_work.parked() if unit["queue"] == "presigned-uploads"] == []


def test_files_a_dying_completion_copies_after_its_upload_expired_are_removed(client, user_token, monkeypatch):
    """As above, with the job expiring the unfinished upload while the completion's copies are in
    flight: the job forgot the upload's unit when it expired it, so nothing named the share
    again and the copies stayed. The job looks at it once more when no completion can run."""
    from tests.test_shares import s3_keys

    def job_expires_it(share_id):
        assert _run_share_job(client, timedelta(days=1, minutes=1))["unfinished_uploads_expired"] == 1
    share_id = _completion_dying_after_its_copies(client, user_token, monkeypatch, job_expires_it)
    assert s3_keys(f"shares/{share_id}/") == [f"shares/{share_id}/index.html"]

    _run_share_job(client, timedelta(days=1, minutes=1 + 16))
    assert s3_keys(f"shares/{share_id}/") == [] and queued(share_work.PRESIGNED_UPLOADS) == []


def test_two_overlapping_runs_count_a_deletion_or_an_upload_they_both_finish_once(client, user_token, monkeypatch):
    """Two runs of the job at once (a scheduled event delivered twice, a run outlasting its
    15 minutes) both read a deletion as pending, both finished it (every step is idempotent)
    and both counted it in `finished`: the operator's summary said two deletions for one.
    Only the run whose step forgets the pending unit counts it now; so for a direct upload's
    files removed (`abandoned_uploads_removed`)."""
    from chalicelib import clock
    from chalicelib.services import share_deletion
    from chalicelib.store import shares as share_store
    body = share_site(client, user_token, "Twice")
    monkeypatch.setattr(share_deletion, "finish_deletion", lambda *args, **kwargs: None)  # the request dies
    assert call(client, "DELETE", f"/shares/{body['share_id']}", token=user_token)[0] == 200
    now = clock.epoch()
    read_by_both = share_work.due(share_work.DELETIONS, 100, now, early=share_cleanup.CLOCK_SKEW_SECONDS)
    as_both_read = share_store.get_by_id(body["share_id"], consistent=True)
    assert [unit.name for unit in read_by_both] == [body["share_id"]] and as_both_read.status == "deleting"
    assert share_cleanup.finish_pending_deletions(deps.share_files(), now)["finished"] == 1
    monkeypatch.setattr(share_work, "due", lambda *args, **kwargs: read_by_both)
    monkeypatch.setattr(share_store, "get_by_id", lambda *args, **kwargs: as_both_read)
    assert share_cleanup.finish_pending_deletions(deps.share_files(), now)["finished"] == 0
    assert queued(share_work.DELETIONS) == []


    monkeypatch.undo()
    share_work.record_upload(share_work.DIRECT_UPLOADS, share_work.upload_marker("sh_died0000000000", now), now)
    later = now + share_cleanup.ABANDONED_UPLOAD_SECONDS + 1
    read_by_both = share_work.due(share_work.DIRECT_UPLOADS, 100, later)
    assert share_cleanup.finish_abandoned_uploads(deps.share_files(), later)["abandoned_uploads_removed"] == 1
    monkeypatch.setattr(share_work, "due", lambda *args, **kwargs: read_by_both)
    assert share_cleanup.finish_abandoned_uploads(deps.share_files(), later)["abandoned_uploads_removed"] == 0
