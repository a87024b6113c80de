"""Work the scheduled jobs owe, one small item per unit, in a partition of the deliveries
table's ``due_index``: ``delivery_id`` = ``<prefix><name>`` carrying only ``due`` = the
partition and ``next_attempt_at`` = the unit's time (no ``share_id``, so no delivery log lists
it). A job queries the partition oldest first, a page at a time (no Scan), and consumes each
unit with a conditional delete, so however many are pending no item grows and no read is
unbounded. Units an earlier version kept as members of one ledger set (which DynamoDB's 400 KB
item limit bounded) are moved into items, a bounded number per run, until the set is empty.
A process stops reading the set once it has found it empty on every read for
``LEGACY_SETTLE_SECONDS``: only this version runs in it, and that is longer than a deploy and
the last invocations of the version before (which may still write there) take, so nothing
written meanwhile is left behind; a process after a rollback and a new deploy starts reading
again.

A unit whose step raised is moved back (``fail``: ``attempts`` counted, ``last_error`` and
``last_attempt_at`` set, ``next_attempt_at`` pushed later), and after too many attempts parked
(``park``): the same item in the partition ``parked#<partition>``, by the time it was parked,
which no job reads and an operator lists and requeues (services/parked_work.py). Each is one
conditional update, never a read then a write (docs/security.md 65). ``fail`` charges the unit
only while it is as the job's query read it (its time and attempts), so a run that read it from
the index before another run's move-back showed does not charge it twice.

Used by store/webhook_releases.py, store/pro_feature_runs.py and store/share_work.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.exceptions import PynamoDBException, UpdateError

from chalicelib.errors import DependencyUnavailable
from chalicelib.store import ledger
from chalicelib.store.models import Delivery
from chalicelib.store.transactions import Transaction, conditional_failed, delete_if, update_if

PARKED_PREFIX = "parked#"
LEGACY_SETTLE_SECONDS = 60 * 60
# In this process: when each legacy set was first found empty, every read since finding it so.
_legacy_empty_since: Dict[str, float] = {}
# DynamoDB's answers that say it (not the unit) is failing, or busy for a moment: throttled,
# failing inside, the item in another transaction.
_OUTAGE_CODES = ("ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded",
                 "InternalServerError", "ServiceUnavailable", "TransactionInProgressException",
                 "TransactionConflictException")


def outage(exc: BaseException) -> bool:
    """Whether ``exc`` says a dependency is failing for everything (throttled, unavailable,
    unreachable) rather than that one unit's step fails: such a failure costs no unit an
    attempt."""
    if isinstance(exc, (DependencyUnavailable, BotoCoreError)):  # BotoCoreError: no connection, timeouts
        return True
    cause = exc.cause if isinstance(exc, PynamoDBException) and exc.cause is not None else exc
    if isinstance(cause, BotoCoreError):
        return True
    if not isinstance(cause, ClientError):
        return False
    response = cause.response or {}
    return response.get("Error", {}).get("Code") in _OUTAGE_CODES or \
        int(response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0) >= 500


@dataclass(frozen=True)
class Unit:
    """A pending unit as the job's query read it."""
    name: str
    at: int  # its next_attempt_at then
    attempts: int


@dataclass(frozen=True)
class PendingQueue:
    partition: str  # the due_index partition
    prefix: str  # of the items' keys
    legacy_item: str  # the ledger set an earlier version listed the units in

    @property
    def parked_partition(self) -> str:
        return PARKED_PREFIX + self.partition

    def record(self, name: str, at: int, tx: Optional[Transaction] = None) -> None:
        """List a unit (in ``tx`` when given), written as an update so only its partition and
        time are set, and only when it has none: the same name again is the same item, a unit
        moved back keeps its later time and a parked one stays parked."""
        item = Delivery(self.prefix + name)
        actions = [Delivery.due.set(Delivery.due | self.partition),
                   Delivery.next_attempt_at.set(Delivery.next_attempt_at | int(at))]
        if tx is None:
            item.update(actions=actions)
        else:
            tx.update(f"pending-{self.partition}", item, actions=actions)

    def due(self, limit: int, due_by: Optional[float] = None, early: int = 0) -> List[Unit]:
        """Up to ``limit`` units, oldest first (``due_by``: only those whose time has come;
        ``early``: and those never failed dated up to that many seconds later, by a clock ahead
        of ours, while one moved back waits its whole delay). The index is eventually
        consistent: one recorded a moment ago may show on the next run, one consumed or moved
        back may show once more, as it was."""
        condition = None if due_by is None else Delivery.next_attempt_at <= int(due_by) + early
        items = Delivery.due_index.query(self.partition, condition, limit=limit, page_size=limit)
        units = [Unit(item.delivery_id[len(self.prefix):], int(item.next_attempt_at), int(item.attempts or 0))
                 for item in items]
        return [unit for unit in units if due_by is None or unit.at <= int(due_by) or not unit.attempts]

    def consume(self, name: str) -> bool:
        """Forget a finished unit; False when another run consumed it first."""
        return delete_if(Delivery(self.prefix + name), Delivery.due == self.partition)

    def finish(self, name: str) -> bool:
        """Forget a unit whose work is done, pending or parked (a retried request may finish
        what the job parked: left behind, it was listed for an operator and still read as
        unfinished). False when it was neither (gone already)."""
        return delete_if(Delivery(self.prefix + name), Delivery.due.is_in(self.partition, self.parked_partition))

    def fail(self, unit: Unit, error: str, now: int, retry_at: int) -> Optional[int]:
        """Count a failed attempt at a pending unit and move it back to ``retry_at``, in one
        update: its attempts so far (``unit.attempts + 1``), or None when it is no longer as
        ``unit`` was read (moved back, consumed, parked or requeued by another run: that run
        charged it, not this one)."""
        item = Delivery(self.prefix + unit.name)
        attempts_as_read = Delivery.attempts == unit.attempts if unit.attempts else \
            Delivery.attempts.does_not_exist() | (Delivery.attempts == 0)
        as_read = (Delivery.next_attempt_at == unit.at) & attempts_as_read
        try:
            item.update(actions=[Delivery.attempts.add(1), Delivery.last_error.set(error[:1000]),
                                 Delivery.last_attempt_at.set(int(now)), Delivery.next_attempt_at.set(int(retry_at))],
                        condition=(Delivery.due == self.partition) & as_read)
        except UpdateError as exc:
            if conditional_failed(exc):
                return None
            raise
        return int(item.attempts or 0)

    def postpone(self, unit: Unit, at: int) -> bool:
        """A unit whose work goes on, due again at ``at``: behind those due before it, so units
        take turns, its failures in a row ended (it advanced). False when it changed since
        ``unit`` was read (another run moved it)."""
        return update_if(Delivery(self.prefix + unit.name),
                         [Delivery.next_attempt_at.set(int(at)), Delivery.attempts.set(0)],
                         (Delivery.due == self.partition) & (Delivery.next_attempt_at == unit.at))

    def succeeded(self, unit: Unit) -> bool:
        """A unit failed before whose step ran and which is still pending (a long claim or
        deletion going on): its attempts count from zero again, so only failures in a row park
        it. One conditional update, only while it is as read; False when it changed (consumed,
        postponed, charged by another run) or had no failure to forget."""
        if not unit.attempts:
            return False
        return update_if(Delivery(self.prefix + unit.name), [Delivery.attempts.set(0)],
                         (Delivery.due == self.partition) & (Delivery.next_attempt_at == unit.at)
                         & (Delivery.attempts == unit.attempts))

    def park(self, name: str, attempts: int, now: int) -> bool:
        """Park a unit failed ``attempts`` times: kept, in the parked partition by the time it
        was parked, read by no job. False when it changed since."""
        return update_if(Delivery(self.prefix + name),
                         [Delivery.due.set(self.parked_partition), Delivery.next_attempt_at.set(int(now))],
                         (Delivery.due == self.partition) & (Delivery.attempts == attempts))

    def parked(self, limit: int) -> List[Delivery]:
        """Up to ``limit`` parked units, the first parked first (eventually consistent)."""
        return list(Delivery.due_index.query(self.parked_partition, limit=limit, page_size=limit))

    def parked_unit(self, name: str) -> Optional[Delivery]:
        """The unit's item, read consistently, when it is parked."""
        try:
            item = Delivery.get(self.prefix + name, consistent_read=True)
        except Delivery.DoesNotExist:
            return None
        return item if item.due == self.parked_partition else None

    def requeue(self, name: str, note: str, now: int) -> bool:
        """Put a parked unit back, due now with its attempts counted from zero; ``note`` becomes
        its ``last_error``. False when it is not parked (requeued by another operator, gone)."""
        return update_if(Delivery(self.prefix + name),
                         [Delivery.due.set(self.partition), Delivery.next_attempt_at.set(int(now)),
                          Delivery.attempts.set(0), Delivery.last_error.set(note[:1000])],
                         Delivery.due == self.parked_partition)

    def move_legacy(self, time_of: Callable[[str], int], limit: int, now: float) -> int:
        """Move up to ``limit`` members of the legacy set into items (their times from
        ``time_of``), each kept in the set until its item is written. How many moved. Not read
        once found empty for ``LEGACY_SETTLE_SECONDS`` in this process."""
        since = _legacy_empty_since.get(self.legacy_item)
        if since is not None and now - since >= LEGACY_SETTLE_SECONDS:
            return 0
        members = ledger.members(self.legacy_item)[:limit]
        if not members:
            _legacy_empty_since.setdefault(self.legacy_item, now)
        else:
            _legacy_empty_since.pop(self.legacy_item, None)
        for member in members:
            self.record(member, time_of(member))
            ledger.forget(self.legacy_item, member)
        return len(members)


def forget_legacy() -> None:
    """Read the legacy sets again (another table: tests, the local runner)."""
    _legacy_empty_since.clear()
