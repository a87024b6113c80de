"""The operator's command for usage events parked in the dead queue (tools/usage_events.py,
chalicelib/services/parked_usage.py): list with why, requeue (refused without --force when
Stripe may hold the event), drop. Through the command's own entry point, on moto with the
local fake of Stripe; the store's conditional writes also on DynamoDB Local."""
from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone

import pytest

from chalicelib import clock
from chalicelib.services import parked_usage
from chalicelib.store import meter_events
from chalicelib.store.models import OutboxItem, User
from chalicelib.store.transactions import run
from tests.conftest import call
from tests.fakes.stripe_api import DEDUPE_SECONDS
from tests.test_agent_tier import SHARE_EVENT, agent, configured, outbox, report  # noqa: F401 - fixtures
from tests.test_shares import share_site
from tests.test_usage_report import report_dying_before_the_delete, sends
from tools import usage_events

LATER = DEDUPE_SECONDS + 3600


def command(capsys, *argv: str):
    """Run ``python -m tools.usage_events`` in-process: (exit status, its JSON lines), every
    line of its standard output being one of its answers."""
    capsys.readouterr()
    status = usage_events.main(list(argv))
    return status, [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def park_refused(client, token, stripe) -> OutboxItem:
    """Stripe refuses the event: the account's customer was deleted at Stripe."""
    share_site(client, token)
    stripe.delete_customer("cus_agent")
    assert report()["dead"] == 1
    [dead] = outbox(meter_events.DEAD_QUEUE)
    return dead


def park_unknown(client, token, stripe) -> tuple:
    """A 5xx Stripe did not keep (it never billed the event), then a day without reports:
    parked as unknown."""
    share_site(client, token)
    stripe.fail_next(500)
    start = time.time()
    assert report(now=start)["status"] == "stripe-unavailable"
    stripe.advance(LATER)
    assert report(now=start + LATER)["dead"] == 1
    [dead] = outbox(meter_events.DEAD_QUEUE)
    return dead, start + LATER


def test_a_refused_event_is_listed_then_requeued_and_sent_under_a_new_key(client, agent, configured, capsys):
    """The customer is back (the operator fixed it): the requeued event is sent once, under a
    key of its own, since Stripe repeats the refusal it holds under the first key."""
    token, _, customer = agent
    dead = park_refused(client, token, configured)
    status, [listed] = command(capsys, "list")
    assert status == 0 and listed["identifier"] == dead.identifier and listed["parked_as"] == "refused"
    assert "No such customer" in listed["reason"] and listed["customer_id"] == customer
    configured.customers[customer] = {"id": customer, "object": "customer"}
    status, [answer] = command(capsys, "requeue", dead.identifier)
    assert status == 0 and answer == {"identifier": dead.identifier, "requeued": True, "forced": False}
    assert outbox(meter_events.DEAD_QUEUE) == []
    [pending] = outbox()
    assert (pending.unanswered_since, pending.send_timestamp, pending.lease_until) == (None, None, None)
    assert int(pending.attempts) == 0 and "had been parked: " in pending.last_error
    assert report()["sent"] == 1 and outbox() == []
    assert configured.meter_totals() == {(SHARE_EVENT, customer): 1}
    first, second = sends(configured)
    assert second[0] == f"{first[0]}-r1" and first[1]["identifier"] == second[1]["identifier"]


def test_the_commands_output_is_its_answers_alone_and_its_logs_go_to_stderr(client, agent, configured, capsys):
    """``make usage-events ... | jq`` reads standard output: the service's log lines (a requeue
    logs one) go to standard error, and later log lines go back to standard output."""
    token, _, customer = agent
    dead = park_refused(client, token, configured)
    configured.customers[customer] = {"id": customer, "object": "customer"}
    capsys.readouterr()
    assert usage_events.main(["requeue", dead.identifier]) == 0
    out, err = capsys.readouterr()
    assert out == json.dumps({"forced": False, "identifier": dead.identifier, "requeued": True}) + "\n"
    assert [json.loads(line)["event"] for line in err.splitlines()] == ["usage.requeued"]
    assert call(client, "GET", "/nope")[0] == 404
    assert '"event": "request"' in capsys.readouterr().out


@pytest.mark.parametrize("target", ["usage-events", "parked-work"])  # parked-work: tools/parked_work.py
def test_make_usage_events_writes_only_the_commands_output(tmp_path, target):
    """make does not echo the command line into what jq reads (the requirements taken as
    installed: ``STAMP`` names a fresh file)."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    installed = tmp_path / "installed"
    installed.touch()
    environment = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    made = subprocess.run(["make", "--no-print-directory", target, "STAGE=test", "ARGS=--help",
                           f"STAMP={installed}"], cwd=pathlib.Path(__file__).parent.parent, env=environment,
                          capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    assert made.stdout.startswith(f"usage: python -m tools.{target.replace('-', '_')}"), made.stdout


def test_make_usage_events_with_a_stale_venv_still_writes_only_the_commands_output(tmp_path):
    """The venv's install step runs first (requirements changed): what it prints goes to stderr.
    ``python`` is a stand-in that prints for pip and runs everything else."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    venv_bin = tmp_path / "venv" / "bin"
    venv_bin.mkdir(parents=True)
    python = venv_bin / "python"
    python.write_text(f'#!/bin/sh\nif [ "$1 $2" = "-m pip" ]; then echo "Collecting stripe"; exit 0; fi\n'
                      f'exec {sys.executable} "$@"\n')
    python.chmod(0o755)
    environment = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    made = subprocess.run(["make", "--no-print-directory", "usage-events", "STAGE=test", "ARGS=--help",
                           f"VENV={tmp_path / 'venv'}", f"STAMP={tmp_path / 'venv' / '.installed-stale'}"],
                          cwd=pathlib.Path(__file__).parent.parent, env=environment,
                          capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    assert made.stdout.startswith("usage: python -m tools.usage_events"), made.stdout
    assert "Collecting stripe" in made.stderr and "pip" not in made.stdout
    assert (tmp_path / "venv" / ".installed-stale").exists()


def test_an_event_stripe_may_hold_is_requeued_only_with_force(client, agent, configured, capsys):
    """Parked as unknown: requeue (one, or --all) refuses and leaves it parked; once the
    operator saw Stripe does not hold it, --force sends it, once, with a fresh attempt."""
    token, _, customer = agent
    dead, now = park_unknown(client, token, configured)
    status, [listed] = command(capsys, "list")
    assert listed["parked_as"] == "unknown" and listed["unanswered_since"] is not None
    status, [answer] = command(capsys, "requeue", dead.identifier)
    assert status == 1 and "Stripe may hold" in answer["error"] and "--force" in answer["error"]
    status, [answer] = command(capsys, "requeue", "--all")
    assert status == 1 and answer["identifier"] == dead.identifier and "Stripe may hold" in answer["error"]
    assert [item.identifier for item in outbox(meter_events.DEAD_QUEUE)] == [dead.identifier] and outbox() == []
    status, [answer] = command(capsys, "requeue", dead.identifier, "--force")
    assert status == 0 and answer["forced"] is True
    assert report(now=now + 60)["sent"] == 1 and outbox() == [] and outbox(meter_events.DEAD_QUEUE) == []
    assert configured.meter_totals() == {(SHARE_EVENT, customer): 1}


def test_an_event_refused_under_its_unanswered_attempts_key_is_parked_as_refused(client, agent, configured, capsys):
    """A 5xx Stripe did not keep, then the customer was deleted at Stripe: the retry, the same
    request under the same key, is refused. Had Stripe accepted the first, it would have
    answered the retry with that acceptance: Stripe holds nothing, requeue needs no --force."""
    token, _, customer = agent
    share_site(client, token)
    configured.fail_next(500)
    start = time.time()
    assert report(now=start)["status"] == "stripe-unavailable"
    configured.delete_customer(customer)
    assert report(now=start + 120)["dead"] == 1
    first, second = sends(configured)
    assert first[0] == second[0]
    status, [listed] = command(capsys, "list")
    assert listed["parked_as"] == "refused" and listed["unanswered_since"] is None
    assert "No such customer" in listed["reason"]
    assert "refused under the key of the attempt unanswered" in listed["reason"]
    configured.customers[customer] = {"id": customer, "object": "customer"}
    status, [answer] = command(capsys, "requeue", listed["identifier"])
    assert status == 0 and answer["forced"] is False
    assert report(now=start + 240)["sent"] == 1 and configured.meter_totals() == {(SHARE_EVENT, customer): 1}


def test_an_event_refused_under_another_key_than_its_unanswered_attempt_stays_unknown(client, agent, configured):
    """The unanswered attempt went to the account's first customer; the retry to its new one
    is refused under a key of its own, which says nothing of the first: still unknown."""
    token, uid, customer = agent
    share_site(client, token)
    configured.fail_next(500)
    start = time.time()
    assert report(now=start)["status"] == "stripe-unavailable"
    User(uid).update(actions=[User.stripe_customer_id.set("cus_gone")])  # not at Stripe
    assert report(now=start + 120)["dead"] == 1
    [dead] = outbox(meter_events.DEAD_QUEUE)
    assert parked_usage.parked_as(dead) == parked_usage.UNKNOWN and dead.unanswered_since == int(start)
    assert [key for key, _ in sends(configured)] == [f"spikes-meter-{dead.identifier}-{customer}",
                                                     f"spikes-meter-{dead.identifier}-cus_gone"]


def test_requeue_all_sends_the_refused_and_leaves_the_unknown(client, agent, configured, capsys):
    token, _, customer = agent
    unknown, now = park_unknown(client, token, configured)
    share_site(client, token, name="Second")
    configured.delete_customer(customer)
    assert report(now=now)["dead"] == 1
    [refused] = [item for item in outbox(meter_events.DEAD_QUEUE) if item.identifier != unknown.identifier]
    configured.customers[customer] = {"id": customer, "object": "customer"}
    status, answers = command(capsys, "requeue", "--all")
    assert status == 1
    assert {"requeued": refused.identifier} in answers
    assert [a["identifier"] for a in answers if "error" in a] == [unknown.identifier]
    assert [item.identifier for item in outbox()] == [refused.identifier]


def test_unknown_events_are_forced_one_by_one_and_told_when_stripe_no_longer_dedupes(client, agent, configured,
                                                                                    capsys):
    """Parked as unknown, an event's first attempt is past Stripe's 24 hours: a resend of one
    Stripe has is billed twice, so the operator's lookup is the only guard. ``--all --force``
    is refused (nothing requeued), the refusal and the forced answer say Stripe will not
    deduplicate it."""
    token, _, customer = agent
    dead, now = park_unknown(client, token, configured)
    with pytest.raises(SystemExit) as exited:
        usage_events.main(["requeue", "--all", "--force"])
    assert exited.value.code == 2 and "--force takes one event by its identifier" in capsys.readouterr().err
    assert [item.identifier for item in outbox(meter_events.DEAD_QUEUE)] == [dead.identifier] and outbox() == []
    clock.use(lambda: datetime.fromtimestamp(now, timezone.utc))
    try:
        status, [answer] = command(capsys, "requeue", dead.identifier)
        assert status == 1 and "would not recognise a resend as a duplicate" in answer["error"]
        status, [answer] = command(capsys, "requeue", dead.identifier, "--force")
        assert status == 0 and answer["forced"] is True and answer["deduplicated_by_stripe"] is False
    finally:
        clock.use(None)


def test_dropping_a_parked_event_that_stripe_has(client, agent, configured, capsys, monkeypatch):
    """Stripe accepted it, the run died before the delete, a day went by: the operator finds
    it at Stripe and drops it. Unknown identifiers are refused."""
    token, _, customer = agent
    share_site(client, token)
    start = report_dying_before_the_delete(monkeypatch)
    configured.advance(LATER)
    assert report(now=start + LATER)["dead"] == 1
    [dead] = outbox(meter_events.DEAD_QUEUE)
    status, [answer] = command(capsys, "drop", "share-nope")
    assert status == 1 and "No parked usage event" in answer["error"]
    status, [answer] = command(capsys, "drop", dead.identifier)
    assert status == 0 and answer == {"identifier": dead.identifier, "dropped": True}
    assert outbox(meter_events.DEAD_QUEUE) == [] and outbox() == []
    assert configured.meter_totals() == {(SHARE_EVENT, customer): 1}


def test_a_stage_reads_its_own_ssm_parameters(monkeypatch):
    monkeypatch.delenv("SPIKES_SSM_PARAMETER_PATH", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    assert usage_events.stage_environment("prod") == {"SPIKES_STAGE": "prod", "AWS_DEFAULT_REGION": "eu-west-1",
                                                      "SPIKES_SSM_PARAMETER_PATH": "/spikes/prod/"}
    assert usage_events.stage_environment("local") == {"SPIKES_STAGE": "local"}


def _parked(identifier: str, unanswered_since=None) -> OutboxItem:
    run(lambda tx: meter_events.add(tx, identifier, SHARE_EVENT, "u1", "cus_1", 1_000))
    [item] = list(OutboxItem.query(meter_events.queue_of(identifier)))
    item.unanswered_since = unanswered_since
    meter_events.bury(item, "APIError: boom")
    return meter_events.parked_event(identifier)


def test_requeue_and_drop_act_only_on_the_parked_event_as_read(store_backend):
    """On moto and DynamoDB Local: a requeue puts the event back as new (no attempt, no lease,
    one more requeue for its key) and removes it from the dead queue, atomically; a copy read
    before, or one parked again since, is refused; so is a drop of it."""
    dead = _parked("share-sh_parked", unanswered_since=5_000)
    stale = meter_events.parked_event("share-sh_parked")
    assert meter_events.requeue(dead, "requeued") is True
    assert list(meter_events.parked()) == []
    [pending] = list(OutboxItem.query(meter_events.queue_of("share-sh_parked")))
    assert (pending.unanswered_since, pending.send_timestamp, pending.lease_until) == (None, None, None)
    assert (int(pending.attempts), int(pending.requeues), pending.last_error) == (0, 1, "requeued")
    assert (pending.event_key, pending.timestamp, pending.customer_id) == (dead.event_key, 1_000, "cus_1")
    assert meter_events.requeue(stale, "again") is False and meter_events.drop(stale) is False
    # Sent again, parked again: the copy read before the requeue still acts on nothing.
    assert meter_events.lease(pending, 6_000, 120) and meter_events.record_attempt(pending, 6_000, 1_000, "cus_1")
    meter_events.bury(pending, "APIError: boom")
    assert meter_events.requeue(stale, "again") is False and meter_events.drop(stale) is False
    again = meter_events.parked_event("share-sh_parked")
    assert int(again.requeues) == 1 and again.unanswered_since == 6_000
    assert meter_events.drop(again) is True and list(meter_events.parked()) == []
