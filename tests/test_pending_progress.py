"""A pending unit's ``attempts`` count its failures in a row: a very long claim (docs/security.md
333) or share deletion whose step fails now and then, while each run in between advances it, is
not parked after ``MAX_ATTEMPTS`` failures spread over its life (docs/security.md 349). On moto
and DynamoDB Local."""
from __future__ import annotations

import time

import pytest

from chalicelib.services import pending_work
from chalicelib.store.models import Delivery
from chalicelib.store.pending_queue import PendingQueue

QUEUE = PendingQueue(partition="progress-test", prefix="progress-test#", legacy_item="")


class DependencyBroke(Exception):
    """What the stubbed dependency raises on the runs it fails (not an outage: it is charged)."""


def run_each_time(steps, postpone: bool):
    """Runs of a job over one long unit: ``steps`` says, run by run, whether its dependency fails.
    A run whose step goes through advances it (``postpone``: as claims and exports do; else it
    stays due as it is, as a deletion cut short by its run's time does). Each run is due when the
    unit is. The unit's item at the end, or None when gone."""
    now = int(time.time())
    QUEUE.record("long", now)
    for failing in steps:
        [unit] = QUEUE.due(10, due_by=now)

        def step(unit=unit, failing=failing, now=now):
            if failing:
                raise DependencyBroke("the dependency failed this time")
            if postpone:
                QUEUE.postpone(unit, now)
            return False  # not done: more to move
        pending_work.Pass(QUEUE, now).attempt(unit, step)
        now += pending_work.MAX_DELAY_SECONDS
    return Delivery.get(QUEUE.prefix + "long", consistent_read=True)


@pytest.mark.parametrize("postpone", [True, False], ids=["postponed", "left-due"])
def test_a_unit_advancing_between_failures_is_not_parked(store_backend, postpone):
    """Every other run failed: its attempts were never reset, and after 8 failures over days of
    progress the unit was parked, the claim or deletion left half done for an operator."""
    item = run_each_time([True, False] * (pending_work.MAX_ATTEMPTS + 1), postpone)
    assert item.due == QUEUE.partition and not item.attempts


def test_failures_in_a_row_still_park_it(store_backend):
    item = run_each_time([False] + [True] * pending_work.MAX_ATTEMPTS, postpone=False)
    assert item.due == QUEUE.parked_partition and item.attempts == pending_work.MAX_ATTEMPTS


def test_a_unit_read_before_another_run_charged_it_keeps_its_count(store_backend):
    """The reset is conditioned on the unit as read: a run that read it before another run's
    failure showed does not wipe that failure."""
    now = int(time.time())
    QUEUE.record("long", now)
    [unit] = QUEUE.due(10, due_by=now)
    QUEUE.fail(unit, "boom", now, now + 60)
    [charged] = QUEUE.due(10)
    QUEUE.fail(charged, "boom again", now + 60, now + 120)
    assert not QUEUE.succeeded(charged)  # read before the second failure: stale
    item = Delivery.get(QUEUE.prefix + "long", consistent_read=True)
    assert item.attempts == 2
    [fresh] = QUEUE.due(10)
    assert QUEUE.succeeded(fresh)
    assert not Delivery.get(QUEUE.prefix + "long", consistent_read=True).attempts
