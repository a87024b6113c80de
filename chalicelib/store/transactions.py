"""The one way to write several items together: ``run`` a transaction of named writes.

Every write in a transaction has a name ("spike", "quota", "slug", ...). When conditions fail,
``ConditionFailed.failed`` says which names failed, so no caller decodes cancellation reasons
or depends on the order PynamoDB sends items in. Conflicts with concurrent transactions,
throttling and server errors are retried here, with backoff and the same client request token.
"""
from __future__ import annotations

import random
import secrets
import time
from typing import Any, Callable, FrozenSet, Iterable, List, Optional, TypeVar

from pynamodb.connection import Connection
from pynamodb.exceptions import DeleteError, TransactWriteError, UpdateError
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from chalicelib.errors import DependencyUnavailable
from chalicelib.store.models import User

CONDITION_FAILED = "ConditionalCheckFailed"
MAX_ATTEMPTS = 8
T = TypeVar("T")

_connection: dict = {}


class ConditionFailed(Exception):
    """The transaction was cancelled because the conditions of these named writes failed."""

    def __init__(self, failed: Iterable[str]):
        self.failed: FrozenSet[str] = frozenset(failed)
        super().__init__(", ".join(sorted(self.failed)))

    def __contains__(self, name: str) -> bool:
        return name in self.failed


class Transaction:
    """Named writes; all of them happen, or none."""

    def __init__(self, tx: TransactWrite):
        self._tx = tx
        # PynamoDB sends condition checks, then deletes, puts and updates: names kept the same way.
        self._names: dict = {"check": [], "delete": [], "put": [], "update": []}

    def check(self, name: str, model_class: type, hash_key: Any, condition: Any) -> None:
        self._names["check"].append(name)
        self._tx.condition_check(model_class, hash_key, condition=condition)

    def save(self, name: str, model: Model, condition: Any = None) -> None:
        self._names["put"].append(name)
        self._tx.save(model, condition=condition)

    def update(self, name: str, model: Model, actions: List[Any], condition: Any = None) -> None:
        self._names["update"].append(name)
        self._tx.update(model, actions=actions, condition=condition)

    def delete(self, name: str, model: Model, condition: Any = None) -> None:
        self._names["delete"].append(name)
        self._tx.delete(model, condition=condition)

    def names(self) -> List[str]:
        return [*self._names["check"], *self._names["delete"], *self._names["put"], *self._names["update"]]


Writes = Callable[[Transaction], None]


def together(*writes: Optional[Writes]) -> Writes:
    """Several callers' writes (each optional) as one transaction's."""
    def write(tx: Transaction) -> None:
        for each in writes:
            if each is not None:
                each(tx)
    return write


def _open(client_request_token: Optional[str]) -> TransactWrite:
    """A DynamoDB transaction on the configured endpoint (every model shares region and host).
    Retries that pass the same ``client_request_token`` are idempotent for ten minutes."""
    key = (User.Meta.region, getattr(User.Meta, "host", None))
    connection = _connection.get(key)
    if connection is None:
        connection = Connection(region=key[0], host=key[1], max_retry_attempts=2)
        _connection.clear()
        _connection[key] = connection
    return TransactWrite(connection=connection, client_request_token=client_request_token)


def run(build: Callable[[Transaction], T], *, idempotent: bool = False, attempts: int = MAX_ATTEMPTS,
        busy_message: str = "The store is busy; retry shortly") -> T:
    """Call ``build`` to add writes (anew on every attempt), commit, and return what it returned.

    Raises ``ConditionFailed`` naming the writes whose conditions failed; retries conflicts,
    throttling and server errors up to ``attempts`` times, then ``DependencyUnavailable``;
    anything else (the store unreachable) is raised as it is.

    ``idempotent``: every attempt sends one client request token, so a commit whose answer was
    lost (DynamoDB can commit and answer 500) is answered as done when sent again, not refused
    by the conditions it met itself. ``build`` must then write the same on every attempt (read
    the clock before, not in it): the same token with other writes is IdempotentParameterMismatch."""
    token = secrets.token_hex(16) if idempotent else None
    for attempt in range(attempts):
        tx_write = _open(token)
        tx = Transaction(tx_write)
        try:
            with tx_write:
                result = build(tx)
            return result
        except TransactWriteError as exc:
            failed = [name for name, code in zip(tx.names(), cancellation_codes(exc)) if code == CONDITION_FAILED]
            if failed:
                raise ConditionFailed(failed) from None
            if not retryable(exc):
                raise
            backoff(attempt)
    raise DependencyUnavailable(busy_message)


def cancellation_codes(exc: TransactWriteError) -> List[Optional[str]]:
    """Why each item of a cancelled transaction failed (None where it did not), in send order."""
    return [reason.code if reason else None for reason in (exc.cancellation_reasons or [])]


def retryable(exc: TransactWriteError) -> bool:
    """Conflicts with concurrent transactions on the same item, throttling and server-side
    errors: worth another attempt (with the same client request token)."""
    codes = cancellation_codes(exc)
    if any(code in ("TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded") for code in codes):
        return True
    if exc.cause_response_code in ("TransactionInProgressException", "ThrottlingException",
                                   "ProvisionedThroughputExceededException", "InternalServerError"):
        return True
    status = getattr(exc.cause, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return status >= 500


def backoff(attempt: int) -> None:
    """Full-jitter exponential backoff, capped at half a second."""
    time.sleep(random.uniform(0, min(0.5, 0.01 * (2 ** attempt))))


def conditional_failed(exc: Exception) -> bool:
    """A single-item write (PutError, UpdateError, DeleteError) refused by its condition."""
    return getattr(exc, "cause_response_code", None) == "ConditionalCheckFailedException"


def update_if(item: Model, actions: List[Any], condition: Any) -> bool:
    """One conditional UpdateItem: True when it was made, False when its condition did not hold
    (any other failure raises)."""
    try:
        item.update(actions=actions, condition=condition)
        return True
    except UpdateError as exc:
        if conditional_failed(exc):
            return False
        raise


def delete_if(item: Model, condition: Any) -> bool:
    """One conditional DeleteItem: True when it was made, False when its condition did not hold
    (another run deleted it first; any other failure raises)."""
    try:
        item.delete(condition=condition)
        return True
    except DeleteError as exc:
        if conditional_failed(exc):
            return False
        raise
