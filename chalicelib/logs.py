"""Structured JSON logging. Every line of a request carries its ``request_id``; callers
log identifiers and hashes, never tokens, passwords or full e-mail addresses."""
from __future__ import annotations

import contextlib
import functools
import logging
import sys
from typing import Iterator, TextIO

import structlog


class _Output:
    """Where log lines go, looked up at each line: standard output (which Lambda collects),
    unless a command whose standard output is its answers sends them to standard error."""

    def __init__(self) -> None:
        self.to_stderr = False

    def stream(self) -> TextIO:
        return sys.stderr if self.to_stderr else sys.stdout

    def write(self, text: str) -> int:
        return self.stream().write(text)

    def flush(self) -> None:
        self.stream().flush()


_output = _Output()


@contextlib.contextmanager
def logging_to_stderr() -> Iterator[None]:
    """Log lines go to standard error within: a command's standard output carries its answers
    alone (tools/usage_events.py, read with jq)."""
    previous, _output.to_stderr = _output.to_stderr, True
    try:
        yield
    finally:
        _output.to_stderr = previous


@functools.lru_cache(maxsize=1)
def configure_logging(level: str = "INFO") -> None:
    logging.basicConfig(format="%(message)s", stream=_output, level=getattr(logging, level, logging.INFO))
    for noisy in ("botocore", "boto3", "urllib3", "pynamodb", "werkzeug"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level, logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(file=_output),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str):
    return structlog.get_logger(name)


def bind_request(request_id: str) -> None:
    """Every line logged from here until the next request carries ``request_id``."""
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id)


def mask_email(email: str) -> str:
    """``jane.doe@example.com`` -> ``j***@example.com``: enough to debug, not to harvest."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"
