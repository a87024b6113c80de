"""POST /exports: an export that outgrows one request (GET /spikes/export's 409 EXPORT_TOO_LARGE)
is read and sent to S3 over as many runs as it needs, and handed over by GET /exports/{id}
(services/background_exports.py)."""
from __future__ import annotations

import itertools
import json
from datetime import timedelta
from typing import Tuple
from urllib.parse import unquote, urlparse

import pytest

from infra import policy
from tests import aws_calls
from tests.conftest import ADMIN_TOKEN, call, sign_in
from tests.factories import make_share
from tests.test_export_streaming import _store_spikes

TINY_PART_BYTES = 4096
SCHEDULE_EVENT = {"version": "0", "account": "123456789012", "region": "us-east-1", "detail": {},
                  "detail-type": "Scheduled Event", "source": "aws.events", "time": "2026-12-01T00:00:00Z",
                  "id": "cdc73f9d-aea9-11e3-9d5a-835b769c0d9c",
                  "resources": ["arn:aws:events:us-east-1:123456789012:rule/exports"]}


@pytest.fixture
def small_parts(monkeypatch):
    """Parts of a few KiB (S3 and moto take 5 MiB at least but for the last): many parts of little data."""
    import moto.s3.models
    from chalicelib.store import files
    monkeypatch.setattr(moto.s3.models, "S3_UPLOAD_PART_MIN_SIZE", 1)
    monkeypatch.setattr(files, "EXPORT_PART_BYTES", TINY_PART_BYTES)


@pytest.fixture
def not_in_the_request(monkeypatch):
    """The starting request reads nothing: the export is left to the job's runs."""
    from chalicelib.services import background_exports
    monkeypatch.setattr(background_exports, "REQUEST_SLICE_SECONDS", 0)


@pytest.fixture
def owner_share(client):
    from chalicelib.services.accounts import user_id_for
    token = sign_in(client, "owner@example.com")
    share = make_share("owner@example.com", "owner-site")
    _store_spikes(share.share_id, user_id_for("owner@example.com"), 60, 300)
    return token, share.share_id


def _auth(token):
    return {"Authorization": f"Bearer {token}"} if token else {}


def _start(client, query: str, token=None, body=None, headers=None):
    status, shown, answer_headers = call(client, "POST", f"/exports{query}", body, token=token, headers=headers)
    return status, shown, answer_headers


def _read(client, export_id: str, token=None, query: str = ""):
    return call(client, "GET", f"/exports/{export_id}{query}", token=token)


def _downloaded(url: str) -> bytes:
    from chalicelib import deps
    key = unquote(urlparse(url).path).split(f"/{deps.settings().bucket_name}/", 1)[1]
    return deps.s3_client().get_object(Bucket=deps.settings().bucket_name, Key=key)["Body"].read()


def _one_shot(client, query: str, token=None) -> bytes:
    answer = client.http.get(f"/spikes/export{query}", headers=_auth(token))
    assert answer.status_code == 200, answer.body
    return answer.body


def _job_run(budget_checks: int = 10**6):
    """One run of the scheduled job, as its function (its AWS calls checked against its role),
    with time for ``budget_checks`` rows before its time runs out."""
    from chalicelib import deps
    from chalicelib.services import background_exports
    counter = itertools.count()
    time_left = lambda: 60_000 if next(counter) < budget_checks else 0  # noqa: E731
    with aws_calls.acting_as(policy.EXPORTS_FUNCTION):
        return background_exports.run_due(deps.exports(), time_left)


def _read_after_the_retry_wait(client, export_id: str, token) -> dict:
    """The export as read after the job's run once its unit, moved back by a failed run, is due again."""
    from chalicelib import clock
    later = clock.now() + timedelta(minutes=6)
    try:
        clock.use(lambda: later)
        assert _job_run()["advanced"] == 1
        return _read(client, export_id, token)[1]
    finally:
        clock.use(None)


def _runs_until_done(client, shown: dict, token=None, budget_checks: int = 25, most: int = 40,
                     query: str = "") -> Tuple[dict, int]:
    """Runs of the job, with time for ``budget_checks`` rows each, until the export ``shown`` is
    running no more (``most`` runs at the most): the export as then read, and how many runs."""
    runs = 0
    while shown["status"] == "running" and runs < most:
        _job_run(budget_checks=budget_checks)
        runs += 1
        shown = _read(client, shown["id"], token, query)[1]
    return shown, runs


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_small_export_is_done_in_the_answer_and_is_the_file_get_spikes_export_answers(client, owner_share, fmt):
    token, share_id = owner_share
    status, shown, headers = _start(client, f"?project={share_id}&format={fmt}", token)
    assert status == 202 and shown["status"] == "done" and shown["spike_count"] == 60
    assert headers["Location"].endswith(f"/exports/{shown['id']}") and headers["Cache-Control"] == "no-store"
    assert shown["format"] == fmt and shown["filename"].endswith(f".{fmt}")
    assert _downloaded(shown["download_url"]) == _one_shot(client, f"?project={share_id}&format={fmt}", token)
    status, again, _ = _read(client, shown["id"], token)
    assert status == 200 and again["status"] == "done" and again["bytes"] == shown["bytes"] > 0


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_an_export_of_nothing_is_a_file_of_nothing_but_its_header(client, owner_share, not_in_the_request, fmt):
    token, share_id = owner_share
    query = f"?project={share_id}&format={fmt}&rating=no"  # none of its spikes
    shown = _start(client, query, token)[1]
    summary = _job_run()
    shown = _read(client, shown["id"], token)[1]
    assert summary["advanced"] == 1 and shown["status"] == "done" and shown["spike_count"] == 0
    assert _downloaded(shown["download_url"]) == _one_shot(client, query, token)
    assert (_one_shot(client, query, token) == b"") == (fmt == "jsonl")


def test_the_local_server_runs_the_exports_every_few_seconds(client, owner_share, not_in_the_request):
    from tools import devserver
    token, share_id = owner_share
    export_id = _start(client, f"?project={share_id}", token)[1]["id"]
    passes = {name: (interval, one_pass) for name, interval, one_pass in devserver.scheduled_passes()}
    interval, one_pass = passes["background exports"]
    assert interval() <= 5 and one_pass()["advanced"] == 1
    assert _read(client, export_id, token)[1]["status"] == "done"


def test_the_parameters_may_come_in_a_json_body(client, owner_share):
    token, share_id = owner_share
    status, shown, _ = _start(client, "", token, body={"project": share_id, "format": "jsonl", "resolved": False})
    assert status == 202 and shown["status"] == "done" and shown["format"] == "jsonl"
    assert _downloaded(shown["download_url"]) == _one_shot(client, f"?project={share_id}&format=jsonl&resolved=false",
                                                           token)
    status, refused, _ = _start(client, "", token, body={"format": "xml"})
    assert status == 400 and refused["code"] == "VALIDATION_ERROR"


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_large_export_continues_over_several_runs_into_the_same_bytes(client, owner_share, small_parts,
                                                                         not_in_the_request, fmt):
    token, share_id = owner_share
    status, shown, _ = _start(client, f"?project={share_id}&format={fmt}", token)
    assert status == 202 and shown["status"] == "running" and shown["spike_count"] == 0
    assert "download_url" not in shown
    runs, counts = 0, []
    while shown["status"] == "running" and runs < 40:
        _job_run(budget_checks=25)  # a run has time for 25 rows: a few parts
        runs += 1
        shown = _read(client, shown["id"], token)[1]
        counts.append(shown["spike_count"])
    assert shown["status"] == "done" and shown["spike_count"] == 60
    assert runs > 2 and counts == sorted(counts)  # continued, never back
    assert _downloaded(shown["download_url"]) == _one_shot(client, f"?project={share_id}&format={fmt}", token)


@pytest.mark.parametrize("query", ["?format=jsonl", "?format=jsonl&resolved=false", f"?format=jsonl&token={ADMIN_TOKEN}"],
                         ids=["owner", "owner-open", "admin"])
def test_every_scope_continues_into_the_same_bytes(client, owner_share, small_parts, not_in_the_request, query):
    """An owner's own spikes (their deletions in progress left out), their open ones (another
    index), everything (the admin): each run continues where the last stopped, in its index."""
    token = None if "token=" in query else owner_share[0]
    shown = _runs_until_done(client, _start(client, query, token)[1], token,
                             query="?token=" + ADMIN_TOKEN if token is None else "")[0]
    lines = _downloaded(shown["download_url"]).splitlines()
    assert shown["status"] == "done" and lines == _one_shot(client, query, token).splitlines() and len(lines) == 60


def test_a_run_that_fails_is_tried_again_later_from_where_it_was(client, owner_share, small_parts,
                                                                 not_in_the_request, monkeypatch):
    from chalicelib import clock
    from chalicelib.store.files import Exports
    token, share_id = owner_share
    export_id = _start(client, f"?project={share_id}&format=jsonl", token)[1]["id"]
    _job_run(budget_checks=25)
    sent_before = _read(client, export_id, token)[1]["spike_count"]
    real_send = Exports.send_part

    def failing(*args, **kwargs):
        raise RuntimeError("S3 said no")
    monkeypatch.setattr(Exports, "send_part", failing)
    assert _job_run()["failed"] == 1
    assert _read(client, export_id, token)[1]["spike_count"] == sent_before
    monkeypatch.setattr(Exports, "send_part", real_send)
    assert _job_run()["pending"] == 0  # moved back: not due for a while
    shown = _read_after_the_retry_wait(client, export_id, token)
    assert shown["status"] == "done" and _downloaded(shown["download_url"]) == _one_shot(
        client, f"?project={share_id}&format=jsonl", token)


def test_running_exports_take_turns(client, owner_share, small_parts, not_in_the_request):
    """Each run gives an export a turn, then it waits behind the others: a caller's large
    exports do not hold up another's until they are done."""
    from chalicelib import clock
    token, share_id = owner_share
    start = clock.now()
    try:
        clock.use(lambda: start)
        first = _start(client, f"?project={share_id}", token)[1]["id"]
        clock.use(lambda: start + timedelta(seconds=1))
        second = _start(client, f"?project={share_id}", token)[1]["id"]
        progress = []
        for minute in (1, 2):
            clock.use(lambda m=minute: start + timedelta(minutes=m))
            _job_run(budget_checks=25)  # time for one turn of 25 rows
            progress.append([_read(client, export_id, token)[1]["spike_count"] > 0 for export_id in (first, second)])
    finally:
        clock.use(None)
    assert progress == [[True, False], [True, True]]


def test_a_filter_matching_little_still_gets_through_a_large_project(client, owner_share, small_parts,
                                                                      not_in_the_request, monkeypatch):
    """Runs whose time ends between reads that matched nothing start the next run past them:
    rows are read again only when some matched since the last part."""
    from chalicelib.store import rows
    from chalicelib.store import spikes as spike_store
    from chalicelib.store.models import Spike
    token, share_id = owner_share
    oldest = spike_store.new(spike_store.spike_id_for(share_id, "old"), share_id, "2025-12-31T00:00:00.000Z",
                             public_id="old", type="page", project_key=share_id, share_id=share_id,
                             owner_id=Spike.get(spike_store.spike_id_for(share_id, "s00000")).owner_id,
                             comments="the only one", rating="no")
    oldest.save()
    monkeypatch.setitem(rows.iterate_index.__kwdefaults__, "read_size", 5)  # 13 reads for 61 spikes
    monkeypatch.setattr(rows, "MAX_READ_SIZE", 5)
    shown = _start(client, f"?project={share_id}&format=jsonl&rating=no", token)[1]
    # a few reads a run, never the whole partition
    shown, runs = _runs_until_done(client, shown, token, budget_checks=5, most=20)
    assert shown["status"] == "done" and shown["spike_count"] == 1 and runs > 2
    assert _downloaded(shown["download_url"]) == _one_shot(client, f"?project={share_id}&format=jsonl&rating=no", token)


def test_the_scheduled_function_finishes_an_export(client, owner_share, small_parts, not_in_the_request,
                                                   monkeypatch):
    from chalice.local import LambdaContext
    # chalice.test's context says 3 s are left (its default timeout); the function has 120 s.
    monkeypatch.setattr(LambdaContext, "get_remaining_time_in_millis", lambda self: 60_000)
    token, share_id = owner_share
    export_id = _start(client, f"?project={share_id}", token)[1]["id"]
    summary = client.lambda_.invoke("exports", SCHEDULE_EVENT).payload
    assert summary["advanced"] == 1 and summary["failed"] == 0
    shown = _read(client, export_id, token)[1]
    assert shown["status"] == "done" and _downloaded(shown["download_url"]) == _one_shot(
        client, f"?project={share_id}", token)
    # Done: its unit is forgotten, the next run has nothing to do.
    assert client.lambda_.invoke("exports", SCHEDULE_EVENT).payload["pending"] == 0


def test_two_overlapping_runs_neither_repeat_nor_lose_a_row(client, owner_share, small_parts, not_in_the_request,
                                                           monkeypatch):
    """A run whose lease ran out (a stalled function) while another took the export: the part it
    sent then is left out of the file, and its next write is refused."""
    from chalicelib import clock, deps
    from chalicelib.services import export_runs
    from chalicelib.store.files import Exports
    token, share_id = owner_share
    export_id = _start(client, f"?project={share_id}&format=jsonl", token)[1]["id"]
    real_send = Exports.send_part
    stalled = {"sent": None}

    def send_part(self, key, upload_id, number, body):
        etag = real_send(self, key, upload_id, number, body)
        if stalled["sent"] is None:  # the first run stalls here, past its lease; another takes over
            stalled["sent"] = number
            later = clock.now() + timedelta(seconds=export_runs.LEASE_SECONDS + 1)
            clock.use(lambda: later)
            assert export_runs.advance(deps.exports(), export_id, lambda: 60_000)
        return etag
    monkeypatch.setattr(Exports, "send_part", send_part)

    try:
        assert export_runs.advance(deps.exports(), export_id, lambda: 60_000)
        shown = _read(client, export_id, token)[1]
    finally:
        clock.use(None)
    assert shown["status"] == "done" and shown["spike_count"] == 60 and stalled["sent"] is not None
    from chalicelib.store import exports as export_store
    assert stalled["sent"] not in [number for number, _ in export_store.get(export_id).detail["parts"]]
    lines = _downloaded(shown["download_url"]).splitlines()
    assert lines == _one_shot(client, f"?project={share_id}&format=jsonl", token).splitlines() and len(lines) == 60


def test_only_who_started_an_export_reads_it(client, owner_share, env):
    token, share_id = owner_share
    export_id = _start(client, f"?project={share_id}", token)[1]["id"]
    assert _read(client, export_id, sign_in(client, "owner@example.com"))[0] == 200  # another session of the account
    stranger = sign_in(client, "stranger@example.com")
    for reader in (stranger, None):
        status, body, _ = _read(client, export_id, reader)
        assert status == 404 and body["code"] == "NOT_FOUND" and body["error"] == "Export not found"
    assert _read(client, export_id, None, f"?project={share_id}")[0] == 404
    # A key of the account is not the session that started it (it may hold fewer scopes).
    status, created, _ = call(client, "POST", "/auth/api-key", {"name": "ci", "scopes": "spikes:read"}, token=token)
    assert status == 201, created
    raw_key = created["api_key"]
    assert call(client, "GET", f"/exports/{export_id}", headers={"X-API-Key": raw_key})[0] == 404
    # What a key starts, that key reads.
    key_export = call(client, "POST", f"/exports?project={share_id}", headers={"X-API-Key": raw_key})[1]["id"]
    assert call(client, "GET", f"/exports/{key_export}", headers={"X-API-Key": raw_key})[0] == 200


def test_a_starter_keeps_an_export_only_while_the_access_it_was_started_with_holds(client, owner_share):
    """Signed-in readers were checked against who started the export, not against the share's
    access as it is now: a password changed, a share deleted or made private kept the link 12 h."""
    from chalicelib.crypto import hash_password
    from chalicelib.services import targets
    from chalicelib.store.models import Share
    token, share_id = owner_share

    def protect(password: str) -> None:  # as the owner's PATCH does (a Pro feature)
        Share.get(f"share#{share_id}").update(actions=[Share.password_hash.set(hash_password(password)),
                                                       Share.password_version.add(1)])
        targets.forget()  # another function, or seconds later
    visitor = sign_in(client, "visitor@example.com")
    by_password = {"X-Share-Password": "open sesame"}
    public_export = _start(client, f"?project={share_id}", visitor)[1]["id"]
    own_export = _start(client, f"?project={share_id}", token)[1]["id"]
    protect("open sesame")
    status, body, _ = _read(client, public_export, visitor)  # made private since
    assert (status, body["code"], body["error"]) == (404, "NOT_FOUND", "Export not found")
    assert _read(client, own_export, token)[0] == 200  # its owner's, as before
    status, started, _ = _start(client, f"?project={share_id}", visitor, headers=by_password)
    assert status == 202 and started["status"] == "done"
    assert call(client, "GET", f"/exports/{started['id']}", token=visitor, headers=by_password)[0] == 200
    protect("changed")
    assert call(client, "GET", f"/exports/{started['id']}", token=visitor, headers=by_password)[0] == 404
    assert call(client, "DELETE", f"/shares/{share_id}", token=token)[0] == 200
    targets.forget()
    assert _read(client, own_export, token)[0] == 404  # its project key names other spikes now
    # Nothing private guards the key once its share is gone: the visitor's export of the share,
    # which holds no addresses, is refused for its scope alone (the key's public spikes now).
    assert _read(client, public_export, visitor)[0] == 404


def test_polling_an_export_opened_by_a_password_spends_no_password_tries(client, owner_share):
    """Every poll of an export a share's password opened asked the password again as a new try
    (five a minute per network, and the share's budget for everyone's unlock form), so a reader
    polling every few seconds got 429 within a minute (docs/security.md 275)."""
    from chalicelib.crypto import hash_password
    from chalicelib.services import targets
    from chalicelib.store.models import Share
    token, share_id = owner_share
    Share.get(f"share#{share_id}").update(actions=[Share.password_hash.set(hash_password("open sesame")),
                                                   Share.password_version.add(1)])
    targets.forget()
    by_password = {"X-Share-Password": "open sesame"}
    visitor = sign_in(client, "visitor@example.com")
    signed_in = _start(client, f"?project={share_id}", visitor, headers=by_password)[1]["id"]
    anonymous = _start(client, f"?project={share_id}", None, headers=by_password)[1]["id"]
    from chalicelib import deps
    polls = deps.settings().rate_password_per_minute + 3
    for _ in range(polls):
        assert call(client, "GET", f"/exports/{signed_in}", token=visitor, headers=by_password)[0] == 200
        assert call(client, "GET", f"/exports/{anonymous}?project={share_id}", headers=by_password)[0] == 200
    # A wrong password is still a try, and still opens nothing.
    wrong = {"X-Share-Password": "open sesame!"}
    assert call(client, "GET", f"/exports/{signed_in}", token=visitor, headers=wrong)[0] == 404
    # A changed password ends it, the new one given or the old.
    Share.get(f"share#{share_id}").update(actions=[Share.password_hash.set(hash_password("changed")),
                                                   Share.password_version.add(1)])
    targets.forget()
    assert call(client, "GET", f"/exports/{signed_in}", token=visitor, headers=by_password)[0] in (404, 429)
    assert call(client, "GET", f"/exports/{anonymous}?project={share_id}", headers=by_password)[0] in (404, 429)


def test_a_password_changed_as_an_export_starts_does_not_keep_the_old_one_open(client, owner_share, monkeypatch):
    """The start sealed the password it was given against the share read a second time, after the
    access check: a password changed between the two reads was sealed as the new one's, and the old
    password, refused everywhere else, kept opening the export's polls, uncounted, for as long as
    the new one stood (docs/security.md, 283). Now the seal is of the share the check read."""
    from chalicelib.crypto import hash_password
    from chalicelib.services import share_access, targets
    from chalicelib.store.models import Share
    _, share_id = owner_share

    def set_password(password: str) -> None:  # as the owner's PATCH does, in another function
        Share.get(f"share#{share_id}").update(actions=[Share.password_hash.set(hash_password(password)),
                                                       Share.password_version.add(1)])
        targets.forget()
    set_password("open sesame")
    checked = share_access.require_feedback_access
    changed = []

    def checked_then_changed(*args, **kwargs):
        checked(*args, **kwargs)
        if not changed:  # the owner changes the password just after the start's check
            changed.append(set_password("changed"))
    monkeypatch.setattr(share_access, "require_feedback_access", checked_then_changed)
    old = {"X-Share-Password": "open sesame"}
    status, started, _ = _start(client, f"?project={share_id}", None, headers=old)
    assert status == 202 and changed
    assert call(client, "GET", f"/exports/{started['id']}?project={share_id}", headers=old)[0] == 404
    # The new password is not the starter's either: nobody reads it.
    new = {"X-Share-Password": "changed"}
    assert call(client, "GET", f"/exports/{started['id']}?project={share_id}", headers=new)[0] == 404


def test_an_export_of_feedback_not_ones_own_reads_no_more_than_its_budget(client, owner_share, monkeypatch,
                                                                          query_limits, not_in_the_request):
    """GET /spikes/export and POST /exports read a whole project for whoever named it: a filter
    matching nothing in a large public project read all of it (GET until the function's ~22 s mark,
    POST for up to 6 h), 10 a minute per network, uncounted for a stranger's credential (docs/security.md,
    284). Now an export of feedback not the caller's stops at ANONYMOUS_EXPORT_ITEMS spikes read
    (each Query cut to what is left), refused with 409; the owner and the admin export all of it."""
    from chalicelib.api import spikes as spike_routes
    monkeypatch.setattr(spike_routes, "ANONYMOUS_EXPORT_ITEMS", 40)
    token, share_id = owner_share  # 60 spikes, every one rated "love"
    stranger = sign_in(client, "stranger@example.com")
    for caller, query in [(None, "&rating=no"), (None, ""), (stranger, "&rating=no")]:
        query_limits.clear()
        answer = client.http.get(f"/spikes/export?project={share_id}{query}", headers=_auth(caller))
        assert answer.status_code == 409 and json.loads(answer.body)["code"] == "EXPORT_TOO_LARGE"
        assert sum(query_limits) <= 40 + 1  # and one item read to see whether any follows
    for caller in (token, ADMIN_TOKEN):
        assert _one_shot(client, f"?project={share_id}&format=jsonl", caller).count(b"\n") == 60
    assert _one_shot(client, f"?project={share_id}&rating=no", token).count(b"\n") == 1  # the header alone
    # In the background: failed once its runs together read that much; the owner's is done.
    status, started, _ = _start(client, f"?project={share_id}&rating=no")
    assert status == 202
    shown, _ = _runs_until_done(client, started, query=f"?project={share_id}")
    assert shown["status"] == "failed" and "at most 40 spikes" in shown["error"]
    shown, _ = _runs_until_done(client, _start(client, f"?project={share_id}&format=jsonl", token)[1], token)
    assert (shown["status"], shown["spike_count"]) == ("done", 60)


def test_an_export_of_feedback_not_ones_own_counts_its_reads_over_runs_that_ran_out_of_time(
        client, owner_share, monkeypatch, not_in_the_request):
    """284's budget is over all of a background export's runs: a run whose time ran out saves what
    it read with its position, and the next run adds to it. Each run here has time for two Queries
    of 10; were the count left behind by such a save, every run would start from none, and the
    export would read all 60 spikes and be done."""
    from chalicelib.api import spikes as spike_routes
    from chalicelib.store import rows
    from tests.test_open_spikes import counting_reads
    monkeypatch.setattr(spike_routes, "ANONYMOUS_EXPORT_ITEMS", 40)
    real_iterate = rows.iterate_index
    monkeypatch.setattr(rows, "iterate_index", lambda *args, **kwargs: real_iterate(*args, read_size=10, **kwargs))
    _, share_id = owner_share  # 60 spikes, none rated "no"
    started = _start(client, f"?project={share_id}&rating=no")[1]
    reads = counting_reads(monkeypatch)
    shown, runs = _runs_until_done(client, started, budget_checks=2, query=f"?project={share_id}")
    assert runs > 2 and shown["status"] == "failed" and "at most 40 spikes" in shown["error"]
    assert reads["items read"] <= 40 + 1  # and one item read to see whether any follows


def test_a_run_that_fails_after_reading_still_counts_its_reads_against_the_budget(
        client, owner_share, monkeypatch, not_in_the_request):
    """A background export of feedback not its starter's counts its reads over its runs (284), but
    a run that failed between two saves (a Query throttled after others had read, a save refused)
    went back to the count the last save kept: what it had read was never counted, and an export
    whose runs kept failing so read on, run after run, for its 6 hours, whatever its budget
    (docs/security.md, 306). A failed run now keeps what it read counted."""
    from chalicelib import clock
    from chalicelib.api import spikes as spike_routes
    from chalicelib.store import rows
    from tests.test_open_spikes import counting_reads
    monkeypatch.setattr(spike_routes, "ANONYMOUS_EXPORT_ITEMS", 40)
    real_iterate, real_query = rows.iterate_index, rows._query_raw
    monkeypatch.setattr(rows, "iterate_index", lambda *args, **kwargs: real_iterate(*args, read_size=20, **kwargs))
    spike_queries = itertools.count(1)

    def every_second_one_throttled(connection, hash_key, **kwargs):
        if connection.table_name.endswith("spikes") and next(spike_queries) % 2 == 0:
            raise RuntimeError("DynamoDB throttled the Query")
        return real_query(connection, hash_key, **kwargs)
    monkeypatch.setattr(rows, "_query_raw", every_second_one_throttled)
    _, share_id = owner_share  # 60 spikes, none rated "no"
    started = _start(client, f"?project={share_id}&rating=no")[1]
    reads = counting_reads(monkeypatch)
    later = clock.now()
    try:
        for _ in range(4):  # each run reads 20, then its next Query fails; its unit due again later
            _job_run()
            later += timedelta(hours=1)
            clock.use(lambda: later)
        shown = _read(client, started["id"], query=f"?project={share_id}")[1]
    finally:
        clock.use(None)
    # Was 80: 20 by each of the four runs, none counted. The third run's one is the item read to
    # see whether any follows the budget's 40 (the second's read for it failed).
    assert reads["items read"] == 40 + 1
    assert shown["status"] == "failed" and "at most 40 spikes" in shown["error"]


def test_whoever_holds_an_exports_id_guesses_its_password_no_faster_than_the_unlock_form(client, owner_share,
                                                                                        from_network):
    """A poll of an export a share's password opened compared its password with the starter's
    before asking the share: a wrong one was a 404 that counted no try, so whoever held the id (its
    Location, a log line) guessed the share's password without limit, told the right one by its 200.
    And once a network's tries were spent, the kept password still passed: a 429 for every wrong
    guess, a 200 for the right one. Now every other password is a try, and none passes while none
    is left (docs/security.md 276)."""
    from chalicelib import clock, deps
    from chalicelib.crypto import hash_password
    from chalicelib.services import targets
    from chalicelib.store.models import Share
    token, share_id = owner_share
    Share.get(f"share#{share_id}").update(actions=[Share.password_hash.set(hash_password("open sesame")),
                                                   Share.password_version.add(1)])
    targets.forget()
    right, wrong = {"X-Share-Password": "open sesame"}, {"X-Share-Password": "open sesame?"}
    tries, now = deps.settings().rate_password_per_minute, clock.now()
    try:
        clock.use(lambda: now)  # one rate window throughout
        from_network("198.51.100.7")  # the starters'
        visitor = sign_in(client, "visitor@example.com")
        anonymous = _start(client, f"?project={share_id}", None, headers=right)[1]["id"]
        signed_in = _start(client, f"?project={share_id}", visitor, headers=right)[1]["id"]
        from_network("203.0.113.9")  # whoever else holds the anonymous export's id
        guesses = [call(client, "GET", f"/exports/{anonymous}?project={share_id}", headers=wrong)[0]
                   for _ in range(tries + 1)]
        assert guesses == [404] * tries + [429]
        assert call(client, "GET", f"/exports/{anonymous}?project={share_id}", headers=right)[0] == 429
        from_network("198.51.100.7")
        assert call(client, "GET", f"/exports/{anonymous}?project={share_id}", headers=right)[0] == 200
        # The signed-in starter's own wrong passwords are tries too, and spent, the right one waits.
        guesses = [call(client, "GET", f"/exports/{signed_in}", token=visitor, headers=wrong)[0]
                   for _ in range(tries - 2)]  # the two starts spent two
        assert guesses == [404] * (tries - 2)
        assert call(client, "GET", f"/exports/{signed_in}", token=visitor, headers=right)[0] == 429
        clock.use(lambda: now + timedelta(minutes=2))  # tries again
        assert call(client, "GET", f"/exports/{signed_in}", token=visitor, headers=right)[0] == 200
    finally:
        clock.use(None)


def test_the_kept_password_waits_while_the_shares_tries_from_everywhere_are_spent(client, owner_share, env,
                                                                                  from_network):
    """276 refuses the kept password while no try is left, the share's own budget from every
    network (``SPIKES_RATE_PASSWORD_PER_SHARE_PER_MINUTE``) as well as the reader's network's:
    guessers on many networks who spent the share's tries get 429s for wrong guesses, and the
    right one must not answer 200 meanwhile, or its answer tells it apart."""
    from chalicelib import clock
    from chalicelib.crypto import hash_password
    from chalicelib.services import targets
    from chalicelib.store.models import Share
    env(RATE_PASSWORD_PER_SHARE_PER_MINUTE="3")
    token, share_id = owner_share
    Share.get(f"share#{share_id}").update(actions=[Share.password_hash.set(hash_password("open sesame")),
                                                   Share.password_version.add(1)])
    targets.forget()
    right, wrong = {"X-Share-Password": "open sesame"}, {"X-Share-Password": "open sesame?"}
    now = clock.now()
    try:
        clock.use(lambda: now)  # one rate window throughout
        from_network("198.51.100.7")
        export_id = _start(client, f"?project={share_id}", None, headers=right)[1]["id"]  # the share's first try
        guesses = []
        for network in ("203.0.113.1", "203.0.113.2"):  # each well within its own network's tries
            from_network(network)
            guesses += [call(client, "GET", f"/exports/{export_id}?project={share_id}", headers=wrong)[0]
                        for _ in range(2)]
        assert guesses == [404, 404, 429, 429]
        from_network("203.0.113.3")
        assert call(client, "GET", f"/exports/{export_id}?project={share_id}", headers=right)[0] == 429
        from_network("198.51.100.7")  # the starter's own network has tries left; the share has none
        assert call(client, "GET", f"/exports/{export_id}?project={share_id}", headers=right)[0] == 429
        clock.use(lambda: now + timedelta(minutes=2))
        assert call(client, "GET", f"/exports/{export_id}?project={share_id}", headers=right)[0] == 200
    finally:
        clock.use(None)


def test_a_password_removed_after_an_export_started_is_not_told_to_whoever_holds_its_id(client, owner_share,
                                                                                       from_network):
    """Once the owner removed the share's password, a poll of an export that password opened asked
    no password (the share is public) and compared the anonymous starter's mark alone, uncounted:
    whoever held the id guessed the removed password without limit, told the right one by its 200,
    a password owners reuse (docs/security.md, 285). An export a password opened is now read only
    while a password guards the share; without it, nothing is told, the starter starts anew."""
    from chalicelib import deps
    from chalicelib.crypto import hash_password
    from chalicelib.services import targets
    from chalicelib.store.models import Share
    token, share_id = owner_share
    Share.get(f"share#{share_id}").update(actions=[Share.password_hash.set(hash_password("open sesame")),
                                                   Share.password_version.add(1)])
    targets.forget()
    right, wrong = {"X-Share-Password": "open sesame"}, {"X-Share-Password": "open sesame?"}
    from_network("198.51.100.7")
    anonymous = _start(client, f"?project={share_id}", None, headers=right)[1]["id"]
    visitor = sign_in(client, "visitor@example.com")
    signed_in = _start(client, f"?project={share_id}", visitor, headers=right)[1]["id"]
    own = _start(client, f"?project={share_id}", token)[1]["id"]
    assert call(client, "GET", f"/exports/{anonymous}?project={share_id}", headers=right)[0] == 200
    Share.get(f"share#{share_id}").update(actions=[Share.password_hash.remove(), Share.password_version.add(1)])
    targets.forget()
    from_network("203.0.113.9")  # whoever else holds the anonymous export's id
    guesses = [call(client, "GET", f"/exports/{anonymous}?project={share_id}", headers=wrong)[0]
               for _ in range(deps.settings().rate_password_per_minute + 1)]
    assert guesses == [404] * len(guesses)  # a public share: no try is counted, none refused
    assert call(client, "GET", f"/exports/{anonymous}?project={share_id}", headers=right)[0] == 404
    from_network("198.51.100.7")
    assert call(client, "GET", f"/exports/{anonymous}?project={share_id}", headers=right)[0] == 404
    assert call(client, "GET", f"/exports/{signed_in}", token=visitor, headers=right)[0] == 404
    assert _read(client, own, token)[0] == 200  # the owner's own never needed the password


def test_reading_an_export_again_costs_one_read_more_at_most(client, owner_share, dynamodb_calls):
    from chalicelib.services import targets
    token, share_id = owner_share
    export_id = _start(client, f"?project={share_id}", token)[1]["id"]

    def reads(path: str) -> int:
        targets.forget()  # the share read, not taken from this process's cache
        dynamodb_calls.clear()
        _read(client, path, token)
        return sum(dynamodb_calls[name] for name in ("GetItem", "Query", "BatchGetItem"))
    assert reads(export_id) - reads("exp_unknown") <= 1  # the share, beside the export's own GetItem


def test_without_an_account_the_same_project_reads_it(client):
    for comment in ("one", "two"):
        assert call(client, "POST", "/spikes", {"type": "page", "projectKey": "public-site", "comments": comment})[0] == 201
    status, shown, headers = _start(client, "?project=public-site&format=jsonl")
    assert status == 202 and shown["status"] == "done" and shown["spike_count"] == 2
    location = urlparse(headers["Location"])
    assert location.query == "project=public-site"
    assert _read(client, shown["id"], None, "?project=public-site")[1]["status"] == "done"
    assert _read(client, shown["id"], None, "?project=another-site")[0] == 404
    assert _read(client, shown["id"])[0] == 404
    assert _read(client, shown["id"], sign_in(client, "someone@example.com"), "?project=public-site")[0] == 404


def test_an_unknown_or_absurd_id_is_a_404(client, owner_share):
    token, _ = owner_share
    for export_id in ("exp_nothing", "x" * 300):
        status, body, _ = _read(client, export_id, token)
        assert status == 404 and body["code"] == "NOT_FOUND"


def test_a_finished_export_expires(client, owner_share):
    from chalicelib import clock
    from chalicelib.services import export_runs
    token, share_id = owner_share
    shown = _start(client, f"?project={share_id}", token)[1]
    assert shown["status"] == "done"
    expires = clock.parse_iso(shown["expires_at"])
    assert expires - clock.parse_iso(shown["created_at"]) <= timedelta(seconds=export_runs.KEEP_SECONDS + 60)
    try:
        clock.use(lambda: expires + timedelta(seconds=1))
        assert _read(client, shown["id"], token)[0] == 404
    finally:
        clock.use(None)


def test_an_export_not_done_in_time_fails_and_its_upload_is_aborted(client, owner_share, small_parts,
                                                                    not_in_the_request):
    from chalicelib import clock, deps
    from chalicelib.store import exports as export_store
    token, share_id = owner_share
    export_id = _start(client, f"?project={share_id}", token)[1]["id"]
    _job_run(budget_checks=25)
    detail = export_store.get(export_id).detail
    assert detail["upload_id"] and _read(client, export_id, token)[1]["status"] == "running"
    later = clock.now() + timedelta(hours=7)
    try:
        clock.use(lambda: later)
        assert _read(client, export_id, token)[1]["status"] == "failed"  # shown so at once
        summary = _job_run()
        shown = _read(client, export_id, token)[1]
    finally:
        clock.use(None)
    assert summary["advanced"] == 1 and shown["status"] == "failed" and "download_url" not in shown
    assert "6 hours" in shown["error"]
    uploads = deps.s3_client().list_multipart_uploads(Bucket=deps.settings().bucket_name).get("Uploads", [])
    assert detail["upload_id"] not in [upload["UploadId"] for upload in uploads]
    assert _job_run()["pending"] == 0


def test_starting_exports_counts_against_the_export_limit_with_get_spikes_export(client, owner_share, env):
    env(RATE_EXPORTS_PER_MINUTE="2")
    token, share_id = owner_share
    assert client.http.get(f"/spikes/export?project={share_id}", headers=_auth(token)).status_code == 200
    status, shown, headers = _start(client, f"?project={share_id}", token)
    assert status == 202 and headers["X-RateLimit-Remaining"] == "0"
    status, refused, headers = _start(client, f"?project={share_id}", token)
    assert status == 429 and refused["code"] == "RATE_LIMIT" and int(headers["Retry-After"]) >= 1
    assert client.http.get(f"/spikes/export?project={share_id}", headers=_auth(token)).status_code == 429


def test_too_large_for_one_request_names_the_background_export(client, owner_share, monkeypatch):
    from chalicelib.services import exports
    token, share_id = owner_share
    monkeypatch.setattr(exports, "FINISHING_MS", 10**12)  # no time left at all
    status, body, _ = call(client, "GET", f"/spikes/export?project={share_id}", token=token)
    assert status == 409 and body["code"] == "EXPORT_TOO_LARGE" and "POST /exports" in body["error"]


def test_the_lease_and_the_continued_read_hold_on_either_engine(backend_client, store_backend, small_parts,
                                                                not_in_the_request):
    """The conditional writes and the read's position as DynamoDB itself takes them (moto, and
    DynamoDB Local when it is there)."""
    import copy
    from chalicelib import clock
    from chalicelib.services.accounts import user_id_for
    from chalicelib.store import exports as export_store
    token = sign_in(backend_client, "owner@example.com")
    share_id = make_share("owner@example.com", "owner-site").share_id
    _store_spikes(share_id, user_id_for("owner@example.com"), 30, 300)
    export_id = _start(backend_client, f"?project={share_id}&format=jsonl", token)[1]["id"]
    now = int(clock.epoch())
    job = export_store.claim(export_id, now, 900)
    assert job is not None and export_store.claim(export_id, now, 900) is None  # leased
    stale = copy.deepcopy(job)
    export_store.save(job, job.detail, release=True)
    with pytest.raises(export_store.LeaseLost):
        export_store.save(stale, stale.detail)
    shown, runs = _runs_until_done(backend_client, _read(backend_client, export_id, token)[1], token,
                                   budget_checks=15, most=20)
    assert shown["status"] == "done" and runs > 1
    assert _downloaded(shown["download_url"]) == _one_shot(backend_client, f"?project={share_id}&format=jsonl", token)


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_runs_too_short_to_fill_a_part_still_get_further_each_time(client, owner_share, not_in_the_request, fmt):
    """Parts of S3's real size: no run reads enough for one. Each run keeps what it read beside
    the file and the next starts from there; before, each run dropped its rows and read them
    again from the same place, for ever (a filter matching little in a large project)."""
    token, share_id = owner_share
    shown = _start(client, f"?project={share_id}&format={fmt}", token)[1]
    shown, runs = _runs_until_done(client, shown, token, budget_checks=8, most=60)  # a few rows a run
    assert shown["status"] == "done" and shown["spike_count"] == 60 and runs > 5
    assert _downloaded(shown["download_url"]) == _one_shot(client, f"?project={share_id}&format={fmt}", token)


def test_an_upload_a_run_died_before_recording_is_taken_over_not_left_open(client, owner_share, small_parts,
                                                                            not_in_the_request, monkeypatch):
    """The request creates the export's multipart upload and dies before storing its id: the
    job's next run finds it (its start was noted first) and sends the parts to it. Before, a new
    upload was made and the first stayed open until the bucket's lifecycle rule aborted it."""
    from chalicelib import clock, deps
    from chalicelib.store.files import Exports
    token, share_id = owner_share
    real_start = Exports.start_upload

    def created_then_killed(self, *args):
        real_start(self, *args)
        raise RuntimeError("the function died before storing the upload's id")
    monkeypatch.setattr(Exports, "start_upload", created_then_killed)
    export_id = _start(client, f"?project={share_id}&format=jsonl", token)[1]["id"]
    monkeypatch.setattr(Exports, "start_upload", real_start)
    s3, bucket = deps.s3_client(), deps.settings().bucket_name
    [left] = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    shown = _read_after_the_retry_wait(client, export_id, token)
    assert shown["status"] == "done" and _downloaded(shown["download_url"]) == _one_shot(
        client, f"?project={share_id}&format=jsonl", token)
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == [] and left["UploadId"]


@pytest.fixture
def item_writes(monkeypatch):
    """Each DynamoDB UpdateItem and DeleteItem the code makes: (operation, the item's key, whether
    its condition refused it)."""
    from botocore.exceptions import ClientError
    from pynamodb.connection.base import Connection
    writes = []
    original = Connection._make_api_call

    def recording(self, operation_name, operation_kwargs):
        if operation_name not in ("UpdateItem", "DeleteItem"):
            return original(self, operation_name, operation_kwargs)
        key = ",".join(f"{name}={value.get('S', value.get('N'))}" for name, value in operation_kwargs["Key"].items())
        try:
            answer = original(self, operation_name, operation_kwargs)
        except ClientError as exc:
            writes.append((operation_name, key, exc.response["Error"]["Code"] == "ConditionalCheckFailedException"))
            raise
        writes.append((operation_name, key, False))
        return answer
    monkeypatch.setattr(Connection, "_make_api_call", recording)
    return writes


def _slot_and_unit_writes(writes, export_id: str):
    from chalicelib.store import exports as export_store
    slot = export_store.get(export_id).detail["slot"]
    return [write for write in writes if write[1] in (f"pk={slot}", f"delivery_id=export#{export_id}")]


def test_the_run_that_ends_an_export_gives_back_its_slot_and_unit_once(client, owner_share, not_in_the_request,
                                                                       item_writes):
    """The job gave back the slot and deleted the unit of an export its own run had just ended,
    then did both again, refused: two conditional writes wasted on every export."""
    token, share_id = owner_share
    export_id = _start(client, f"?project={share_id}", token)[1]["id"]
    item_writes.clear()
    summary = _job_run()
    assert summary["advanced"] == summary["finished"] == 1 and _read(client, export_id, token)[1]["status"] == "done"
    assert [(operation, refused) for operation, _, refused in _slot_and_unit_writes(item_writes, export_id)] == \
        [("UpdateItem", False), ("DeleteItem", False)]
    assert [write for write in item_writes if write[2]] == []  # the run had no write refused
    assert _job_run()["pending"] == 0


def test_the_job_gives_back_the_slot_and_unit_of_an_export_whose_run_died_before_it_did(client, owner_share,
                                                                                        item_writes, monkeypatch):
    from chalicelib.store import export_slots
    from chalicelib.store import exports as export_store
    token, share_id = owner_share
    with monkeypatch.context() as died:  # the run stored the export done, then its process was gone
        died.setattr(export_slots, "give_back", lambda key, export_id: False)
        died.setattr(export_store, "finish_unit", lambda export_id: False)
        shown = _start(client, f"?project={share_id}", token)[1]
    assert shown["status"] == "done"
    item_writes.clear()
    summary = _job_run()
    assert (summary["advanced"], summary["finished"]) == (0, 1)
    assert [(operation, refused) for operation, _, refused in _slot_and_unit_writes(item_writes, shown["id"])] == \
        [("UpdateItem", False), ("DeleteItem", False)]
    assert _job_run()["pending"] == 0


def test_a_slot_the_ending_run_could_not_give_back_is_given_back_by_the_jobs_next_run(client, owner_share,
                                                                                     not_in_the_request, monkeypatch):
    """The export's unit is kept until its slot is free: deleted while the slot's release had
    failed, nothing gave the slot back before the export's 6-hour deadline."""
    from chalicelib.store import export_slots
    from chalicelib.store import exports as export_store
    from chalicelib.store.models import LedgerItem
    token, share_id = owner_share
    export_id = _start(client, f"?project={share_id}", token)[1]["id"]
    slot = export_store.get(export_id).detail["slot"]

    def failing(key, export_id):
        raise RuntimeError("DynamoDB said no")
    with monkeypatch.context() as release_fails:
        release_fails.setattr(export_slots, "give_back", failing)
        _job_run()
    assert _read(client, export_id, token)[1]["status"] == "done"
    assert LedgerItem.get(slot, consistent_read=True).holder == export_id
    assert _job_run()["finished"] == 1
    assert LedgerItem.get(slot, consistent_read=True).holder is None
    assert _job_run()["pending"] == 0
