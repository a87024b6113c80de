"""DynamoDB transactions and what every caller needs to handle their outcome."""
from __future__ import annotations

import random
import time
from typing import List, Optional

from pynamodb.connection import Connection
from pynamodb.exceptions import TransactWriteError
from pynamodb.transactions import TransactWrite

from chalicelib.store.models import User

CONDITION_FAILED = "ConditionalCheckFailed"
MAX_ATTEMPTS = 8

_connection: dict = {}


def transaction(client_request_token: Optional[str] = None) -> TransactWrite:
    """A DynamoDB transaction on the configured endpoint: all of its writes happen, or none.
    Retries that pass the same ``client_request_token`` are idempotent for ten minutes."""
    key = (User.Meta.region, getattr(User.Meta, "host", None))
    connection = _connection.get(key)
    if connection is None:
        connection = Connection(region=key[0], host=key[1], max_retry_attempts=2)
        _connection.clear()
        _connection[key] = connection
    return TransactWrite(connection=connection, client_request_token=client_request_token)


def cancellation_codes(exc: TransactWriteError) -> List[Optional[str]]:
    """Why each item of a cancelled transaction failed (None where it did not), in order."""
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
