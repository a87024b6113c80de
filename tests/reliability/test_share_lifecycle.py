"""The share lifecycle's long deletions: deletions that outlast their request and are finished by
the scheduled ``share_deletions`` job, run twice at once, while DynamoDB and S3 fail (throttling,
5xx, conflicts, dropped connections), while the owner shares the same slug again and keeps
uploading (directly and presigned).

An owner has live shares (one uploaded directly, one presigned and completed) with feedback,
another owner has a share of their own, and shares with more spikes than one batch write are
deleted. Each request answers before deleting any spike (as one of a large share does after
``REQUEST_DELETION_SECONDS``), so the job does the rest, in rounds an hour apart, two runs at a
time, with faults armed. Checked:

- every answer is 2xx or ``503`` with ``Retry-After``;
- once a DELETE answered, the owner's listing, share list and the share's page show nothing of
  the share, before any job has run;
- after the job drains (a run past every unit's date, faults off): no spike, file, counter or
  pending unit of a deleted share remains, none was parked (a failing dependency costs a unit
  no attempt), and every live share kept every file and spike, the re-shared slug included;
- counters and usage equal the stored spikes (tests/reliability/invariants.py).
"""
from __future__ import annotations

import threading
from datetime import timedelta
from typing import List

import pytest
import requests

from chalicelib import clock, deps
from chalicelib.services import share_cleanup, share_deletion
from chalicelib.services.accounts import user_id_for
from chalicelib.store import share_work
from tests.conftest import call, sign_in
from tests.reliability import summary
from tests.reliability.faults import FAULTS, Fault
from tests.reliability.invariants import Store, lost_spikes, problems
from tests.reliability.jobs import at
from tests.test_shares import INDEX, make_pro, share_site, start_presigned, upload
from tests.test_usage import SCHEDULE_EVENT

OWNER, BYSTANDER = "owner@example.com", "bystander@example.com"
DOOMED = 3
SPIKES_PER_DOOMED = 27  # over one BatchWriteItem (25)
SPIKES_PER_LIVE = 3
JOB_ROUNDS = 3


# Each batch of requests or job runs meets one pair, in turn.
FAULT_KINDS = [("throttle", "throttle"), ("unavailable", "unavailable"), ("conflict", "disconnect"),
               ("disconnect", "throttle")]


def _faults(seed: int) -> List[Fault]:
    dynamodb, s3 = FAULT_KINDS[seed % len(FAULT_KINDS)]
    return [Fault("dynamodb", dynamodb, probability=0.3, seed=seed),
            Fault("s3", s3, probability=0.3, seed=seed + 100)]




def _retryable(what: str, status: int, headers, bad: List[str]) -> bool:
    """True for 2xx; a 503 with Retry-After is retried later; anything else is recorded."""
    if 200 <= status < 300:
        return True
    if not (status == 503 and str(headers.get("Retry-After", "")).isdigit()):
        bad.append(f"{what} -> {status}")
    return False


def _post(client, project: str, spike_id: str):
    return call(client, "POST", "/spikes",
                {"type": "page", "projectKey": project, "id": spike_id, "comments": spike_id})


def _presigned(client, token: str, name: str, bad: List[str]):
    """Start, upload and complete a presigned share: its body, or None when an answer was 503."""
    status, body, headers = start_presigned(client, token, [{"path": "index.html", "size": len(INDEX),
                                                             "content_type": "text/html"}], name=name)
    if not _retryable("POST /shares/uploads", status, headers, bad):
        return None
    [target] = body["uploads"]
    assert requests.put(target["url"], data=INDEX, headers=target["headers"], timeout=10).status_code == 200
    for _ in range(5):  # the CLI retries a 503 completion
        status, _, headers = call(client, "POST", f"/shares/{body['share_id']}/complete", token=token)
        if _retryable("POST /shares/{key}/complete", status, headers, bad):
            return body
    raise AssertionError(f"completion of {body['share_id']} never succeeded")


def _owner_listing(client, token: str) -> List[str]:
    return [spike["id"] for spike in call(client, "GET", "/spikes?limit=1000", token=token)[1]["data"]]


def _job_runs_at_once(moment, runs: int = 2) -> List[str]:
    """``runs`` runs of the deletions step at once, as two overlapping schedules would: what they raised."""
    raised: List[str] = []

    def run() -> None:
        try:
            share_cleanup.finish_pending_deletions(deps.share_files(), moment.timestamp())
        except Exception as exc:  # noqa: BLE001 - a failed run: the next schedule runs it again
            raised.append(type(exc).__name__)
    threads = [threading.Thread(target=run) for _ in range(runs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a job run did not end"
    return raised


def _units(store: Store) -> List[str]:
    prefixes = tuple(queue.prefix for queue in share_work.QUEUES)
    return [item["delivery_id"] for item in store.items["deliveries"] if item["delivery_id"].startswith(prefixes)]


def test_long_deletions_finish_under_faults_concurrent_runs_and_reshares(app_client, monkeypatch):
    client = app_client
    monkeypatch.setattr(share_deletion, "REQUEST_DELETION_SECONDS", 0)
    token, other = sign_in(client, OWNER), sign_in(client, BYSTANDER)
    make_pro(OWNER)
    bad: List[str] = []
    accepted: List[str] = []

    live = [share_site(client, token, "Live direct", files=[("index.html", INDEX), ("css/site.css", b"h1{}")]),
            _presigned(client, token, "Live presigned", bad), share_site(client, other, "Bystander")]
    doomed = [share_site(client, token, f"Doomed {n}") for n in range(DOOMED)]
    for share, count in [(s, SPIKES_PER_LIVE) for s in live] + [(s, SPIKES_PER_DOOMED) for s in doomed]:
        for n in range(count):
            assert _post(client, share["slug"], f"{share['share_id']}-{n}")[0] == 201
    accepted += [f"{s['share_id']}-{n}" for s in live for n in range(SPIKES_PER_LIVE)]
    doomed_spikes = {s["share_id"]: {f"{s['share_id']}-{n}" for n in range(SPIKES_PER_DOOMED)} for s in doomed}

    # Deletions under faults: each answered one is gone for its owner at once.
    undeleted = list(doomed)
    for attempt in range(6):
        answered = []
        with FAULTS.injecting(*_faults(attempt)):
            for share in list(undeleted):
                status, _, headers = call(client, "DELETE", f"/shares/{share['share_id']}", token=token)
                if _retryable("DELETE /shares", status, headers, bad):
                    undeleted.remove(share)
                    answered.append(share)
        for share in answered:  # read right after the answer (faults off: reads answered 503 prove nothing)
            assert not doomed_spikes[share["share_id"]] & set(_owner_listing(client, token)), share
            assert share["share_id"] not in {s["id"] for s in call(client, "GET", "/shares", token=token)[1]}
            assert call(client, "GET", f"/s/{share['slug']}/")[0] == 404
            assert call(client, "GET", f"/spikes/{share['share_id']}-0", token=token)[0] == 404
            exported = client.http.request("GET", "/spikes/export?format=jsonl",
                                           headers={"Authorization": f"Bearer {token}"})
            assert exported.status_code == 200 and b"-0" in exported.body  # the live shares' feedback
            assert f"{share['share_id']}-".encode() not in exported.body
        if not undeleted:
            break
    assert undeleted == [], "deletions still refused after 6 attempts"

    # The owner shares the first doomed share's slug again, and uploads more, under faults;
    # what is answered 503 is sent again without them.
    with FAULTS.injecting(*_faults(50)):
        status, again, headers = upload(client, token, [("index.html", INDEX)], {"name": "Doomed 0"})
        presigned = _presigned(client, token, "Late presigned", bad)
        status_direct, direct, headers_direct = upload(client, token, metadata={"name": "Late direct"})
    if not _retryable("POST /shares (re-share)", status, headers, bad):
        status, again, _ = upload(client, token, [("index.html", INDEX)], {"name": "Doomed 0"})
    assert status == 201 and again["slug"] == doomed[0]["slug"], again
    # Before the job: the slug names the new share, which shows none of the old one's feedback.
    assert call(client, "GET", f"/spikes?project={again['slug']}")[1]["data"] == []
    late = [again, presigned or _presigned(client, token, "Late presigned", bad)]
    if _retryable("POST /shares", status_direct, headers_direct, bad):
        late.append(direct)
    for share in late:
        for n in range(SPIKES_PER_LIVE):
            assert _post(client, share["slug"], f"{share['share_id']}-{n}")[0] == 201
    accepted += [f"{s['share_id']}-{n}" for s in late for n in range(SPIKES_PER_LIVE)]

    # The job, two runs at a time, an hour apart (a unit moved back after a failure waits its
    # delay), while DynamoDB and S3 fail; then a run past every unit's date, without faults.
    start = clock.now()
    for round_number in range(JOB_ROUNDS):
        with FAULTS.injecting(*_faults(200 + round_number)):
            # A run may fail outright (its Query failing past botocore's retries): the next runs again.
            _job_runs_at_once(start + timedelta(hours=round_number + 1))
    with at(start + timedelta(days=3)):
        report = client.lambda_.invoke("share_deletions", SCHEDULE_EVENT).payload
    assert report["failed"] == 0, report

    assert bad == [], "\n".join(bad)
    store = Store.in_process()
    deleted = {user_id_for(OWNER): SPIKES_PER_DOOMED * DOOMED}
    found = problems(store, deleted_since=deleted)
    assert found == [], "\n".join(found)
    assert lost_spikes(store, accepted) == []
    assert _units(store) == [], "pending units left after the job drained"
    gone = set(doomed_spikes) & set(store.shares())
    assert gone == set(), gone
    assert not [s for s in store.spikes() if s.get("share_id") in doomed_spikes]
    assert not [key for key in store.objects if any(share_id in key for share_id in doomed_spikes)]

    # Every live share serves its files and lists its own feedback, the re-shared slug included.
    for share in live + late:
        assert call(client, "GET", f"/s/{share['slug']}/")[0] == 200, share["slug"]
        listed = call(client, "GET", f"/spikes?project={share['slug']}&limit=100")[1]["data"]
        assert sorted(spike["id"] for spike in listed) == \
            sorted(f"{share['share_id']}-{n}" for n in range(SPIKES_PER_LIVE)), share["slug"]
    assert call(client, "GET", f"/s/{live[0]['slug']}/css/site.css")[0] == 200
    owned = sorted(_owner_listing(client, token))
    assert owned == sorted(f"{s['share_id']}-{n}" for s in live[:2] + late for n in range(SPIKES_PER_LIVE))
