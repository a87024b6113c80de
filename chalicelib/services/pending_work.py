"""One invocation's pass over a job's pending units (store/pending_queue.py), each unit's step
isolated from the others: a unit whose step raises is logged with the error, counted, and moved
back with a growing delay, so the units behind it go on in the same invocation; after
``MAX_ATTEMPTS`` failures in a row (a step that runs sets the count back to zero: a long claim
or deletion failing now and then advances) it is parked, kept for an operator
(services/parked_work.py) with why.

"This unit fails" is told from "everything fails" two ways (docs/security.md 65):

- an error that says a dependency is failing for every unit (DynamoDB throttled, failing inside,
  unreachable, or the item in another transaction: ``pending_queue.outage``) costs the unit nothing and stops the pass: the unit
  keeps its place and the next invocation tries again;
- any other error counts, but ``FAILURES_IN_A_ROW`` of them with no unit succeeding in between
  (one left uncharged by a stale read included: its step did fail) stop the pass too: something all units share may be broken, so an invocation charges at most
  that many units an attempt, and parking one takes ``MAX_ATTEMPTS`` failures spread over the
  backoff (over 10 hours), not one invocation.

A unit is charged only while it is as the job's query read it: a run that read it from the
eventually consistent index before another run's move-back showed does not charge it again
(docs/security.md 65). A charge that itself fails (a throttle on that write) is logged and the
pass goes on: the unit stays as read, and a later run charges it.

Used by services/quota_reset.py (Stripe events' pro-feature runs),
services/held_deliveries.py (webhook releases) and services/share_cleanup.py (share deletions
and unfinished uploads).
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Tuple

from chalicelib.logs import get_logger
from chalicelib.store.pending_queue import PendingQueue, Unit, outage

log = get_logger("spikes.pending_work")

MAX_ATTEMPTS = 8
FIRST_DELAY_SECONDS = 5 * 60
MAX_DELAY_SECONDS = 6 * 60 * 60
FAILURES_IN_A_ROW = 3


def delay(attempts: int) -> int:
    """How long a unit failed ``attempts`` times waits: 5 minutes, doubled each time, 6 hours
    at most."""
    return min(MAX_DELAY_SECONDS, FIRST_DELAY_SECONDS * 2 ** max(0, attempts - 1))


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:1000]


class Pass:
    """``attempt`` each unit's step; once ``stopped`` says why, the invocation takes no more."""

    def __init__(self, queue: PendingQueue, now: float) -> None:
        self.queue, self.now = queue, int(now)
        self.in_a_row = 0
        self.failed = self.parked = 0
        self.stopped: Optional[str] = None

    def attempt(self, unit: Unit, step: Callable[[], Any]) -> Tuple[bool, Any]:
        """``(True, step())``, or ``(False, None)`` when the step raised (the unit, as the job's
        query read it, is then moved back, parked, or left as it is when the error was an
        outage)."""
        try:
            result = step()
        except Exception as exc:  # noqa: BLE001 - one unit's failure must not stop the others
            self._failed(unit, exc)
            return False, None
        self.in_a_row = 0
        self._forget_failures(unit)
        return True, result

    def _forget_failures(self, unit: Unit) -> None:
        """Its step ran: a unit still pending counts its failures from zero (docs/security.md
        349). A throttle on this write costs nothing but the reset: the next failure counts on."""
        try:
            self.queue.succeeded(unit)
        except Exception as unrecorded:  # noqa: BLE001 - the step's work is done; the run goes on
            log.warning("pending.success_unrecorded", queue=self.queue.partition, unit=unit.name,
                        error=describe(unrecorded))

    def _failed(self, unit: Unit, exc: Exception) -> None:
        fields = {"queue": self.queue.partition, "unit": unit.name, "error": describe(exc)}
        if outage(exc):
            self.stopped = "dependency failing"
            log.error("pending.outage", **fields)
            return
        self.failed += 1
        self.in_a_row += 1
        try:
            self._charge(unit, fields)
        except Exception as unrecorded:  # noqa: BLE001 - a throttle on this write must not end the run
            # The unit stays as read (or counted, not yet parked): a later run charges or parks it.
            log.error("pending.failure_unrecorded", unrecorded=describe(unrecorded), **fields)
        if self.in_a_row >= FAILURES_IN_A_ROW:
            self.stopped = f"{self.in_a_row} units failed in a row"
            log.error("pending.stopped", queue=self.queue.partition, reason=self.stopped)

    def _charge(self, unit: Unit, fields: dict) -> None:
        attempts = self.queue.fail(unit, fields["error"], self.now, self.now + delay(unit.attempts + 1))
        if attempts is None:  # changed since read (a stale index): whoever changed it charged it
            log.warning("pending.failed", attempts=None, charged=False, exc_info=True, **fields)
        elif attempts >= MAX_ATTEMPTS:
            self.parked += self.queue.park(unit.name, attempts, self.now)
            log.error("pending.parked", attempts=attempts, exc_info=True, **fields)
        else:
            log.warning("pending.failed", attempts=attempts, retry_in=delay(attempts), exc_info=True, **fields)

    def summary(self) -> dict:
        return {"failed": self.failed, "parked": self.parked, "stopped": self.stopped}
