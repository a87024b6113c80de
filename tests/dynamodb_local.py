"""Amazon's DynamoDB Local (fetched by `make test` from npm) in memory, for the test session."""
from __future__ import annotations

import contextlib
from typing import Iterator

from tools.dynamodb_local import DynamoDBLocal, find_jar_dir, unavailable_reason

__all__ = ["find_jar_dir", "running"]


@contextlib.contextmanager
def running() -> Iterator[str]:
    reason = unavailable_reason()
    if reason is not None:
        raise RuntimeError(f"DynamoDB Local cannot run: {reason}. Run `make test` (it fetches it) "
                           "or pass --no-dynamodb-local")
    engine = DynamoDBLocal(jvm_options=[]).start(timeout=30)
    try:
        yield engine.endpoint
    finally:
        engine.stop()
