"""At most SPIKES_MAX_RUNNING_EXPORTS background exports run at once per requester (docs/security.md,
264): starts were only rate limited, so one account could keep 10 a minute for 6 hours running and
take every turn of the exports job from everyone else's. Each running export holds a slot
(store/export_slots.py), taken by a conditional write and given back by the run that ends it."""
from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from botocore.exceptions import EndpointConnectionError

from chalicelib import clock
from tests.conftest import call, sign_in, sign_up_agents
from tests.test_background_exports import _job_run, _read, _start, not_in_the_request, owner_share  # noqa: F401


def test_a_requester_runs_at_most_the_cap_and_an_export_that_ends_frees_its_place(client, owner_share,
                                                                                  not_in_the_request, env):
    from tests.test_apikeys import create_key
    env(MAX_RUNNING_EXPORTS="2")
    token, share_id = owner_share
    running = [_start(client, f"?project={share_id}", token)[1]["id"] for _ in range(2)]
    status, refused, headers = _start(client, f"?project={share_id}", token)
    assert (status, refused["code"], refused["limit"]) == (429, "EXPORT_LIMIT", 2), refused
    assert headers["Retry-After"] == str(refused["retry_after"]) and refused["retry_after"] >= 1
    # The account's key with spikes:read is the account; a key without it, or a caller without an
    # account, counts per client network (services/exports.counted_as), another account for itself.
    reader = {"X-API-Key": create_key(client, token, scopes="spikes:read")["api_key"]}
    narrow = {"X-API-Key": create_key(client, token, scopes="shares:read")["api_key"]}
    assert call(client, "POST", f"/exports?project={share_id}", headers=reader)[1]["code"] == "EXPORT_LIMIT"
    assert call(client, "POST", f"/exports?project={share_id}", headers=narrow)[0] == 202
    assert _start(client, "", sign_in(client, "other@example.com"))[0] == 202
    _job_run()
    assert [_read(client, export_id, token)[1]["status"] for export_id in running] == ["done", "done"]
    assert [_start(client, f"?project={share_id}", token)[0] for _ in range(3)] == [202, 202, 429]


def test_a_place_whose_release_was_lost_is_taken_over_once_its_export_is_not_running(client, owner_share, env,
                                                                                    monkeypatch):
    """The run that finished the export died before it gave the place back: the place was held
    until the export's 6-hour deadline, so three such deaths stopped an account exporting for
    6 hours. A start that finds every place held takes over one whose export is not running."""
    from chalicelib.services import background_exports
    from chalicelib.store import export_slots
    env(MAX_RUNNING_EXPORTS="1")
    token, share_id = owner_share
    monkeypatch.setattr(export_slots, "give_back", lambda key, export_id: False)
    start = clock.now()
    try:
        clock.use(lambda: start)
        first = _start(client, f"?project={share_id}", token)[1]
        assert first["status"] == "done"  # done in the answer, its place kept
        # Within a start's time of the place being taken, its export may be about to be stored.
        clock.use(lambda: start + timedelta(seconds=background_exports.SLOT_START_SECONDS - 1))
        assert _start(client, f"?project={share_id}", token)[1]["code"] == "EXPORT_LIMIT"
        clock.use(lambda: start + timedelta(seconds=background_exports.SLOT_START_SECONDS + 1))
        status, second, _ = _start(client, f"?project={share_id}", token)
    finally:
        clock.use(None)
    assert status == 202 and second["status"] == "done"


def test_a_place_taken_by_a_start_that_died_before_storing_its_export_is_taken_over(client, owner_share, env,
                                                                                  monkeypatch, not_in_the_request):
    """A start killed between taking its place and storing its export held the place for 6 hours;
    a running export's place is never taken over, however old."""
    from chalicelib.services import background_exports
    from chalicelib.store import export_slots
    from chalicelib.store import exports as export_store
    env(MAX_RUNNING_EXPORTS="2")
    token, share_id = owner_share
    start = clock.now()
    try:
        clock.use(lambda: start)
        running = _start(client, f"?project={share_id}", token)[1]
        assert running["status"] == "running"
        with monkeypatch.context() as killed:
            killed.setattr(export_slots, "give_back", lambda key, export_id: False)  # the process is gone
            killed.setattr(export_store, "create", lambda *args, **kwargs: (_ for _ in ()).throw(
                EndpointConnectionError(endpoint_url="http://dynamodb")))
            assert _start(client, f"?project={share_id}", token)[0] == 503  # a dependency failed
        assert _start(client, f"?project={share_id}", token)[1]["code"] == "EXPORT_LIMIT"
        clock.use(lambda: start + timedelta(hours=1))
        status, taken_over, _ = _start(client, f"?project={share_id}", token)
        assert status == 202, taken_over
        assert _start(client, f"?project={share_id}", token)[1]["code"] == "EXPORT_LIMIT"  # both running now
    finally:
        clock.use(None)
    assert _read(client, running["id"], token)[1]["status"] == "running"


def test_the_cap_holds_exactly_when_starts_race(store_backend):
    """Starts racing on one requester's slots (concurrent Lambdas): each slot is taken by one
    conditional write, so exactly the cap's worth start, whatever the interleaving."""
    if store_backend == "moto":
        pytest.skip("moto's in-memory writes are not isolated across threads; DynamoDB Local is")
    from chalicelib.limit_errors import ExportLimit
    from chalicelib.services import background_exports
    from chalicelib.store import export_slots
    from chalicelib.store.spike_filters import Filters
    from chalicelib.store.spikes import Scope
    outcomes, lock, barrier = [], threading.Lock(), threading.Barrier(12)

    def start() -> None:
        barrier.wait(timeout=30)
        try:
            job = background_exports.start({"user": "racer", "key": None}, Scope("owner", "racer"), Filters(), True,
                                           "csv", None, "exports-account|racer", 3)
            outcome = job.detail["slot"]
        except ExportLimit:
            outcome = "limit"
        with lock:
            outcomes.append(outcome)
    threads = [threading.Thread(target=start) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    taken = sorted(outcome for outcome in outcomes if outcome != "limit")
    assert len(outcomes) == 12 and taken == sorted(export_slots.slot_key("exports-account|racer", n) for n in range(3))


@pytest.mark.parametrize("then", ["answered", "unreachable", "unreadable"])
def test_a_start_whose_commit_answer_was_lost_keeps_its_slot(store_backend, then):
    """DynamoDB committed the export and its answer was lost, and the attempts sent again did not
    get through (the store unreachable): the start gave the slot back, the export ran all the
    same, and its requester could run one more than the cap. The slot is given back only when
    the export surely is not stored: it is answered as started (``answered``: read back), or,
    when that read fails too, the slot is kept (a start takes it over once no export runs)."""
    from pynamodb.connection.base import Connection

    from chalicelib.limit_errors import ExportLimit
    from chalicelib.services import background_exports
    from chalicelib.store import exports as export_store
    from chalicelib.store.spike_filters import Filters
    from chalicelib.store.spikes import Scope
    from tests.lost_answers import commit_answer_lost

    def start():
        return background_exports.start({"user": "capped", "key": None}, Scope("owner", "capped"), Filters(), True,
                                        "csv", None, "exports-account|capped", 1)

    def unreachable(*_args, **_kwargs):
        raise EndpointConnectionError(endpoint_url="http://dynamodb")

    with pytest.MonkeyPatch.context() as fault:
        def store_unreachable() -> None:
            fault.setattr(Connection, "transact_write_items", unreachable)
            if then == "unreadable":
                fault.setattr(export_store, "get", unreachable)
        with commit_answer_lost("ledger", after_commit=store_unreachable if then != "answered" else None):
            if then == "unreadable":
                with pytest.raises(EndpointConnectionError):
                    start()
            else:
                started = start()
                assert export_store.get(started.export_id).state == export_store.RUNNING
    with pytest.raises(ExportLimit):
        start()  # the cap (1) is held by the export that was stored


def test_a_slot_is_held_while_a_run_begun_before_the_deadline_may_still_read(client, owner_share, env,
                                                                               not_in_the_request):
    """A run that took the export a moment before its 6 hours were up goes on for up to its lease,
    on a clock that may be behind the starter's. The slot's deadline was the export's own (its
    start + 6 h): the next start took the slot over while that run still read, one export over the
    cap (docs/security.md, 326). The slot is now held past the last run that may be going."""
    from chalicelib.services import background_exports, export_runs
    from chalicelib.store import exports as export_store
    env(MAX_RUNNING_EXPORTS="1")
    token, share_id = owner_share
    start = clock.now()
    deadline = start + timedelta(seconds=export_runs.MAX_RUNNING_SECONDS)
    try:
        clock.use(lambda: start)
        running = _start(client, f"?project={share_id}", token)[1]
        assert running["status"] == "running"
        last_run = deadline - timedelta(seconds=5)  # the job's run takes it, not yet overdue
        assert export_store.claim(running["id"], int(last_run.timestamp()), export_runs.LEASE_SECONDS) is not None
        clock.use(lambda: deadline + timedelta(seconds=1))  # that run still reads
        assert _start(client, f"?project={share_id}", token)[1]["code"] == "EXPORT_LIMIT"
        # Its lease is up by the runner's clock; by one 30 s behind it, that run reads on still.
        lease_end_behind = last_run + timedelta(seconds=export_runs.LEASE_SECONDS + 30)
        clock.use(lambda: lease_end_behind)
        assert _start(client, f"?project={share_id}", token)[1]["code"] == "EXPORT_LIMIT"
        after_it = deadline + timedelta(seconds=background_exports.SLOT_OVERRUN_SECONDS + 1)
        clock.use(lambda: after_it)  # no run of it can be going, however late its clock: the slot is free
        status, started, _ = _start(client, f"?project={share_id}", token)
    finally:
        clock.use(None)
    assert status == 202, started


def test_accounts_exporting_feedback_not_their_own_share_their_networks_running_slots(client, owner_share, env,
                                                                                     from_network, not_in_the_request):
    """An account's background export of someone else's public project holds one of its
    network's running slots, not one of its own: each agent signup (no e-mail) brought the
    network SPIKES_MAX_RUNNING_EXPORTS more exports reading the project for hours (docs/security.md, 308)."""
    env(MAX_RUNNING_EXPORTS="1", RATE_AGENT_SIGNUP_PER_HOUR="10")
    token, share_id = owner_share
    from_network("203.0.113.7")
    agents = sign_up_agents(client, 2)
    first = _start(client, "?project=owner-site", agents[0])
    assert first[0] == 202 and first[1]["status"] != "done", first
    status, refused, _ = _start(client, "?project=owner-site", agents[1])
    assert (status, refused["code"]) == (429, "EXPORT_LIMIT"), refused
    # Their own feedback, and the share's owner on the same network, hold slots of their own.
    assert _start(client, "", agents[1])[0] == 202
    assert _start(client, f"?project={share_id}", token)[0] == 202
    # Another network has its own slot.
    from_network("198.51.100.9")
    assert _start(client, "?project=owner-site", agents[1])[0] == 202
