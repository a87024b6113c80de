"""DynamoDB can commit a write and still answer 500 (or the connection drops after the commit);
the SDK, and ``store.transactions.run``, then send it again. ``commit_answer_lost`` makes that
happen once to a transaction, for real, on DynamoDB Local (moto ignores client request tokens);
``write_answer_lost`` to a single-item write."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator, List, Optional

import pytest
from botocore.exceptions import ClientError
from pynamodb.connection.base import Connection
from pynamodb.exceptions import TransactWriteError
from pynamodb.transactions import TransactWrite


def skip_on_moto(store_backend: str) -> None:
    if store_backend == "moto":
        pytest.skip("moto ignores a transaction's ClientRequestToken; DynamoDB Local honours it")


def _tables(tx: TransactWrite) -> List[str]:
    items = [*tx._put_items, *tx._update_items, *tx._delete_items]  # noqa: SLF001 - what it sends
    return [item["TableName"] for item in items]


@contextmanager
def commit_answer_lost(table: str, after_commit: Optional[Callable[[], None]] = None) -> Iterator[List[str]]:
    """The first transaction that writes to ``table`` (its logical name) commits, then answers
    500. Yields a list that holds that transaction's client request token (None when it sent
    none) once it happened; ``after_commit`` runs in between (a clock moving on, say)."""
    real_commit, lost = TransactWrite._commit, []

    def commit_then_lose_the_answer(self):
        answer = real_commit(self)
        if not lost and any(name.endswith(table) for name in _tables(self)):
            lost.append(self._client_request_token)
            if after_commit is not None:
                after_commit()
            raise TransactWriteError("answer lost", cause=ClientError(
                {"Error": {"Code": "InternalServerError", "Message": "answer lost"},
                 "ResponseMetadata": {"HTTPStatusCode": 500}}, "TransactWriteItems"))
        return answer
    patch = pytest.MonkeyPatch()
    patch.setattr(TransactWrite, "_commit", commit_then_lose_the_answer)
    try:
        yield lost
    finally:
        patch.undo()


@contextmanager
def write_answer_lost(operation: str, table: str) -> Iterator[List[str]]:
    """The first single-item write ``operation`` ("put_item", "update_item") to ``table`` is
    made, its answer lost, and it is sent again, as the SDK does after a 500: the caller gets
    the second answer (its own condition refusing it, where it has one). No token is involved:
    on moto and DynamoDB Local alike."""
    real, lost = getattr(Connection, operation), []

    def made_then_sent_again(self, table_name, *args, **kwargs):
        if lost or not table_name.endswith(table):
            return real(self, table_name, *args, **kwargs)
        lost.append(table_name)
        real(self, table_name, *args, **kwargs)
        return real(self, table_name, *args, **kwargs)
    patch = pytest.MonkeyPatch()
    patch.setattr(Connection, operation, made_then_sent_again)
    try:
        yield lost
    finally:
        patch.undo()
