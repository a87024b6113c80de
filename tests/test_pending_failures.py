"""A pending unit whose step keeps raising does not hold up the units behind it: it is counted
and moved back with a growing delay while the others go on in the same invocation, parked after
``MAX_ATTEMPTS``, listed and requeued by an operator (tools/parked_work.py); a dependency
failing for every unit charges none of them (docs/security.md 65). For the quota reset's
Stripe-event runs and the delivery job's webhook releases, on moto and DynamoDB Local, and the
exports job's background exports."""
from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from pynamodb.exceptions import QueryError, UpdateError

from chalicelib import clock, deps
from chalicelib.errors import DependencyUnavailable
from chalicelib.services import held_deliveries, pending_work, quota_reset, webhook_delivery
from chalicelib.store import pro_feature_runs, webhook_releases
from chalicelib.store.models import Delivery
from chalicelib.store.pending_queue import PendingQueue, outage
from infra import policy
from tests import aws_calls
from tests.test_background_exports import (_job_run, _read, _runs_until_done, _start, not_in_the_request,  # noqa: F401
                                          owner_share, small_parts)
from tests.test_pro_feature_runs import OWNERS, job, locked_owners, owners, stripe_event_leaves_a_run  # noqa: F401
from tests.test_stripe_paging import pending_runs
from tools import parked_work

NOW = datetime.now(timezone.utc).replace(microsecond=0)


class Boom(Exception):
    """A bug, a bad item: what one unit's step raises."""


def throttled() -> QueryError:
    return QueryError("Failed to query items", ClientError(
        {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}}, "Query"))


@pytest.fixture
def at():
    """Run the jobs at a moment of the test's choosing (``at(seconds)`` after NOW)."""
    def move(seconds: float) -> None:
        clock.use(lambda: NOW + timedelta(seconds=seconds))
    move(0)
    yield move
    clock.use(None)


def failing_for(monkeypatch, module, name, bad, error=Boom):
    """``module.name`` raises ``error`` when its first argument is in ``bad`` (a set the test may
    change); the calls it let through are counted."""
    real, calls = getattr(module, name), []

    def patched(first, *args, **kwargs):
        user = first.get("user_id") if isinstance(first, dict) else first
        if user in bad or "*" in bad:
            raise error() if isinstance(error, type) else error
        calls.append(user)
        return real(first, *args, **kwargs)
    monkeypatch.setattr(module, name, patched)
    return calls


def unit(queue, name: str) -> Delivery:
    return Delivery.get(queue.prefix + name, consistent_read=True)


def command(capsys, *argv: str):
    capsys.readouterr()
    status = parked_work.main(list(argv))
    return status, [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def strip_step_failing_for(monkeypatch, bad):
    real = quota_reset.strip_step

    def patched(settings, stripping, now):
        if stripping["user_id"] in bad:
            raise Boom(f"bad data for {stripping['user_id']}")
        return real(settings, stripping, now)
    monkeypatch.setattr(quota_reset, "strip_step", patched)


# --- the quota reset's runs ----------------------------------------------------------------

def test_a_run_that_keeps_raising_does_not_hold_up_the_runs_behind_it(owners, monkeypatch, at, capsys):  # noqa: F811
    for owner in OWNERS[:4]:
        stripe_event_leaves_a_run(owner)
    oldest, *behind = sorted(OWNERS[:4], key=owners.get)
    bad = {oldest}
    strip_step_failing_for(monkeypatch, bad)
    [stuck] = [name for name in pending_runs(10) if name.startswith(oldest)]

    first = job()  # raised Boom here, every invocation, before the runs behind it
    assert first["failed"] == 1 and first["parked"] == 0 and first["stopped"] is None
    assert [r["status"] for r in first["runs"]] == ["failed", "completed", "completed", "completed"]
    assert sorted(locked_owners()) == sorted(behind) and first["left"] == 1
    item = unit(pro_feature_runs.QUEUE, stuck)
    assert item.attempts == 1 and item.last_error.startswith("Boom: bad data for")
    assert item.next_attempt_at == NOW.timestamp() + pending_work.delay(1)
    assert pending_runs(10) == [stuck]  # still pending, not lost
    assert job()["runs"] == []  # not due again yet
    at(pending_work.delay(1) - 1)
    assert job()["runs"] == []  # a clock skew tolerated for new runs does not shorten the delay

    # Retried later, each time a longer delay, parked at the limit: kept, and read by no job.
    waited = 0
    for attempt in range(2, pending_work.MAX_ATTEMPTS + 1):
        waited += pending_work.delay(attempt - 1)
        at(waited)
        assert job()["failed"] == 1
        assert unit(pro_feature_runs.QUEUE, stuck).attempts == attempt
    assert unit(pro_feature_runs.QUEUE, stuck).due == "parked#pro-features"
    assert pending_runs(10) == []
    at(waited + 10 * pending_work.MAX_DELAY_SECONDS)
    assert job()["runs"] == []

    # The operator sees it with why, fixes the cause, and requeues it.
    status, [listed] = command(capsys, "list")
    assert status == 0 and listed["unit"] == f"pro-features#{stuck}" and listed["queue"] == "pro-features"
    assert listed["attempts"] == pending_work.MAX_ATTEMPTS and listed["reason"].startswith("Boom: bad data for")
    bad.clear()
    assert command(capsys, "requeue", listed["unit"]) == (0, [{"unit": listed["unit"], "requeued": True}])
    assert command(capsys, "requeue", listed["unit"])[0] == 1  # once
    assert command(capsys, "list") == (0, [])
    assert unit(pro_feature_runs.QUEUE, stuck).attempts == 0
    assert [r["status"] for r in job()["runs"]] == ["completed"]
    assert sorted(locked_owners()) == sorted(OWNERS[:4]) and pending_runs(10) == []


def test_an_event_retried_while_its_run_is_parked_or_moved_back_keeps_it_there(store_backend, at):
    name = pro_feature_runs.run_name("0b4c", int(NOW.timestamp()) - 60, lock=True)
    pro_feature_runs.record(name)
    later = int(NOW.timestamp()) + 300
    [read] = pro_feature_runs.due(10)
    assert pro_feature_runs.QUEUE.fail(read, "Boom", int(NOW.timestamp()), later) == 1
    pro_feature_runs.record(name)  # Stripe retries the event: the same unit, still moved back
    assert unit(pro_feature_runs.QUEUE, name).next_attempt_at == later
    assert pending_runs(10, due_by=NOW.timestamp()) == []
    assert pro_feature_runs.QUEUE.park(name, 1, later)
    pro_feature_runs.record(name)
    assert unit(pro_feature_runs.QUEUE, name).due == "parked#pro-features"
    assert pro_feature_runs.QUEUE.park(name, 1, later) is False  # parked once
    assert pro_feature_runs.consume(name) is False  # no job consumes a parked unit


def test_a_throttled_dependency_charges_no_run(owners, monkeypatch, at):  # noqa: F811
    for owner in OWNERS[:4]:
        stripe_event_leaves_a_run(owner)
    real = quota_reset.strip_step

    def throttled_step(*args, **kwargs):
        raise throttled()
    monkeypatch.setattr(quota_reset, "strip_step", throttled_step)
    for hour in range(pending_work.MAX_ATTEMPTS * 2):
        at(hour * 3600)
        result = job()
        assert result["stopped"] == "dependency failing" and len(result["runs"]) == 1  # stops at once
        assert result["failed"] == 0 and result["parked"] == 0
    assert all(not unit(pro_feature_runs.QUEUE, name).attempts for name in pending_runs(10))
    monkeypatch.setattr(quota_reset, "strip_step", real)
    job()
    assert locked_owners() == OWNERS[:4] and pending_runs(10) == []


def test_runs_all_raising_stop_the_invocation_after_a_few(owners, monkeypatch, at):  # noqa: F811
    """Not recognised as a dependency's failure, yet every run fails: an invocation charges
    ``FAILURES_IN_A_ROW`` of them an attempt, not all."""
    for owner in OWNERS:
        stripe_event_leaves_a_run(owner)
    strip_step_failing_for(monkeypatch, set(OWNERS))
    result = job()
    assert result["failed"] == pending_work.FAILURES_IN_A_ROW and result["stopped"] == "3 units failed in a row"
    attempts = sorted(int(unit(pro_feature_runs.QUEUE, name).attempts or 0) for name in pending_runs(10))
    assert attempts == [0] * (len(OWNERS) - 3) + [1] * 3


def test_a_run_read_before_its_move_back_showed_is_not_charged_twice(owners, monkeypatch, at):  # noqa: F811
    """The index is eventually consistent: an invocation right after a failure may still read
    the run as it was before it was moved back. Its step fails again, but the charge is refused
    (docs/security.md 65)."""
    stripe_event_leaves_a_run(OWNERS[0])
    strip_step_failing_for(monkeypatch, {OWNERS[0]})
    stale = pro_feature_runs.due(10, due_by=NOW.timestamp())
    assert job()["failed"] == 1
    [name] = [run.name for run in stale]
    moved_to = unit(pro_feature_runs.QUEUE, name).next_attempt_at
    monkeypatch.setattr(pro_feature_runs, "due", lambda limit, due_by=None: stale)  # the index lags
    at(1)
    assert [r["status"] for r in job()["runs"]] == ["failed"]  # it ran, and raised again
    item = unit(pro_feature_runs.QUEUE, name)
    assert item.attempts == 1 and item.next_attempt_at == moved_to  # charged once, not moved further
    assert pro_feature_runs.QUEUE.fail(stale[0], "Boom", int(NOW.timestamp()), moved_to + 1) is None


# --- the delivery job's releases ------------------------------------------------------------

def finish(now: float) -> dict:
    """The delivery job at ``now``: its summary, as the scheduled function returns it."""
    with aws_calls.acting_as(policy.WEBHOOK_DELIVERIES_FUNCTION):
        return vars(webhook_delivery.run_due(deps.settings(), now_fn=lambda: now, mailer=deps.mailer()))


def releases(count: int, start: float) -> list:
    for number in range(count):
        webhook_releases.record(None, f"sh_gone{number}", start + number)
    return webhook_releases.pending(count)


def test_a_release_that_keeps_raising_does_not_hold_up_the_releases_behind_it(store_backend, monkeypatch, capsys):
    now = time.time()
    first, *behind = releases(4, now - 600)
    bad = {first.share_id}
    calls = failing_for(monkeypatch, held_deliveries, "end_held", bad)
    summary = finish(now)  # raised Boom here, every run, before the releases behind it
    assert summary["releases_failed"] == 1 and summary["releases_parked"] == 0 and summary["releases_stopped"] is None
    assert calls == [r.share_id for r in behind]
    assert webhook_releases.pending(10) == [first]  # the others are finished and consumed
    item = unit(webhook_releases.QUEUE, first.name)
    assert item.attempts == 1 and item.last_error == "Boom: " and item.next_attempt_at > now
    assert finish(now + 1)["releases_failed"] == 0
    assert item.refresh(consistent_read=True) is None and item.attempts == 1  # not due yet
    monkeypatch.setattr(pending_work, "MAX_ATTEMPTS", 2)
    summary = finish(now + pending_work.delay(1))
    assert summary["releases_failed"] == 1 and summary["releases_parked"] == 1
    assert webhook_releases.pending(10) == []
    status, [listed] = command(capsys, "list")
    assert listed["unit"] == first.key and listed["queue"] == "releases" and listed["attempts"] == 2
    bad.clear()
    assert command(capsys, "requeue", "--all") == (0, [{"requeued": first.key}])
    finish(time.time())
    assert webhook_releases.pending(10) == [] and command(capsys, "list") == (0, [])


def test_a_dependency_failing_for_every_release_charges_none(store_backend, monkeypatch):
    now = time.time()
    recorded = releases(3, now - 600)
    failing_for(monkeypatch, held_deliveries, "end_held", {"*"}, error=throttled())
    for hour in range(pending_work.MAX_ATTEMPTS * 2):
        summary = finish(now + hour * 3600)
        assert summary["releases_stopped"] == "dependency failing" and summary["releases_failed"] == 0
    assert webhook_releases.pending(10) == recorded
    assert all(not unit(webhook_releases.QUEUE, r.name).attempts for r in recorded)


def test_a_release_read_before_its_move_back_showed_is_not_charged_twice(store_backend, monkeypatch):
    now = time.time()
    stale = releases(1, now - 600)
    failing_for(monkeypatch, held_deliveries, "end_held", {stale[0].share_id})
    assert finish(now)["releases_failed"] == 1
    moved_to = unit(webhook_releases.QUEUE, stale[0].name).next_attempt_at
    monkeypatch.setattr(webhook_releases, "pending", lambda limit, due_by=None: stale)  # the index lags
    assert finish(now + 1)["releases_failed"] == 1  # it ran, and raised again
    item = unit(webhook_releases.QUEUE, stale[0].name)
    assert item.attempts == 1 and item.next_attempt_at == moved_to  # charged once, not moved further


def test_a_failure_that_cannot_be_recorded_does_not_end_the_run(store_backend, monkeypatch):
    """Recording a unit's failure was throttled: that raised out of the pass, and the units
    behind it waited for the next run. It is logged, the unit stays as read, the run goes on."""
    now = time.time()
    first, *behind = releases(3, now - 600)
    calls = failing_for(monkeypatch, held_deliveries, "end_held", {first.share_id})

    def throttled_write(*args, **kwargs):
        raise UpdateError("Failed to update item", ClientError(
            {"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "UpdateItem"))
    monkeypatch.setattr(PendingQueue, "fail", throttled_write)
    summary = finish(now)
    assert summary["releases_failed"] == 1 and summary["releases_stopped"] is None
    assert calls == [r.share_id for r in behind]
    assert webhook_releases.pending(10) == [first]
    assert not unit(webhook_releases.QUEUE, first.name).attempts  # charged by a later run


def test_a_failure_is_one_write_whatever_the_attempt(store_backend, monkeypatch, dynamodb_calls):
    """From the second attempt on, counting it and moving the release on by the doubled delay
    were two updates: a crash between them left it retrying 5 minutes later (docs/security.md 67)."""
    now = int(time.time())
    [release] = releases(1, now - 600)
    failing_for(monkeypatch, held_deliveries, "end_held", {release.share_id})
    finish(now)
    dynamodb_calls.clear()
    assert finish(now + pending_work.delay(1))["releases_failed"] == 1
    assert dynamodb_calls["UpdateItem"] == 1
    item = unit(webhook_releases.QUEUE, release.name)
    assert item.attempts == 2 and item.next_attempt_at == now + pending_work.delay(1) + pending_work.delay(2)


def test_requeuing_what_is_not_parked_is_refused(store_backend, capsys):
    assert command(capsys, "requeue", "release#sh_x@1")[0] == 1
    status, [answer] = command(capsys, "requeue", "nothing#at-all")
    assert status == 1 and "pro-features#..." in answer["error"]


def test_what_counts_as_a_dependency_failing_for_every_unit():
    def refused(code: str, status: int = 400) -> UpdateError:
        return UpdateError("Failed to update item", ClientError(
            {"Error": {"Code": code, "Message": "..."}, "ResponseMetadata": {"HTTPStatusCode": status}}, "UpdateItem"))
    for everyone in (throttled(), refused("TransactionConflictException"), refused("InternalServerError", 500),
                     refused("Unexpected", 503), DependencyUnavailable(),
                     EndpointConnectionError(endpoint_url="http://127.0.0.1:1")):
        assert outage(everyone), everyone
    for this_unit in (Boom(), KeyError("tier"), refused("ConditionalCheckFailedException"),
                      refused("ValidationException")):
        assert not outage(this_unit), this_unit


# --- the exports job's background exports ----------------------------------------------------

def test_an_export_whose_run_keeps_raising_is_parked_listed_and_requeued(client, owner_share, small_parts,
                                                                         not_in_the_request, monkeypatch, capsys):
    """The exports job parks a unit as every job does (and logs `pending.parked`, which the
    operator alarm counts), but `make parked-work` listed only the other jobs' queues: the alarm
    pointed at a command that showed nothing, and the export could not be put back."""
    from chalicelib.store import exports as export_store
    from chalicelib.store.files import Exports
    token, share_id = owner_share
    export_id = _start(client, f"?project={share_id}&format=csv", token)[1]["id"]
    real_send = Exports.send_part

    def failing(*args, **kwargs):
        raise Boom("S3 said no")
    monkeypatch.setattr(Exports, "send_part", failing)
    monkeypatch.setattr(pending_work, "MAX_ATTEMPTS", 1)
    assert _job_run()["parked"] == 1
    status, listed = command(capsys, "list")
    assert status == 0 and [(unit["unit"], unit["queue"]) for unit in listed] == [(f"export#{export_id}", "exports")]
    monkeypatch.setattr(Exports, "send_part", real_send)
    assert command(capsys, "requeue", f"export#{export_id}") == (0, [{"unit": f"export#{export_id}", "requeued": True}])
    shown, _ = _runs_until_done(client, _read(client, export_id, token)[1], token)
    assert shown["status"] == "done" and command(capsys, "list") == (0, [])
    assert export_store.QUEUE.due(10, due_by=clock.epoch()) == []  # finished: its unit is gone
