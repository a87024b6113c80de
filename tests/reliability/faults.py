"""Faults at the client layer: a botocore ``before-send`` handler on every AWS client.

The handler is added to botocore's built-in handlers (the way moto's own stubber is, and just
before it), so every client created afterwards carries it: the ones ``chalicelib.deps`` injects
(S3, SES, DynamoDB) and the ones PynamoDB builds for the models and the transaction runner.
Nothing of ours is patched: the app's code sees exactly what it would see from AWS, an HTTP
error answer that botocore parses and retries by its own rules, or a dropped connection.

    with FAULTS.injecting(Fault("dynamodb", "throttle", operations={"TransactWriteItems"}, times=5)):
        ...                                    # the next 5 matching sends are throttled
    with FAULTS.crashing_at(3):                # the 3rd write raises SimulatedCrash: the
        ...                                    # function is dead, every later call dies too
    with FAULTS.counting() as counter: ...     # counter.writes: writes an operation makes

Dormant (one attribute read per send) when no fault is armed.
"""
from __future__ import annotations

import contextlib
import io
import json
import random
import re
import threading
from dataclasses import dataclass, field
from typing import Iterator, List, Optional, Set

import botocore.handlers
from botocore.awsrequest import AWSResponse
from botocore.exceptions import EndpointConnectionError

from tests.reliability import summary

WRITES = {
    "dynamodb": {"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"},
    "s3": {"PutObject", "DeleteObject", "DeleteObjects", "CopyObject", "CreateMultipartUpload", "UploadPart",
           "CompleteMultipartUpload", "AbortMultipartUpload"},
    "ses": {"SendEmail", "SendRawEmail"},
}


FAULTED = "reliability_fault_answered"


class SimulatedCrash(BaseException):
    """The function was killed here (a BaseException: no ``except Exception`` of ours sees it)."""


class _Raw(io.BytesIO):
    def stream(self, **_kwargs):
        chunk = self.read()
        while chunk:
            yield chunk
            chunk = self.read()


def _dynamodb_error(kind: str, request) -> tuple:
    if kind == "throttle":
        return 400, {"__type": "com.amazonaws.dynamodb.v20120810#ThrottlingException",
                     "message": "Rate of requests exceeds the allowed throughput."}
    if kind == "conflict":
        if request is not None and b"TransactItems" in (request.body or b""):
            items = len(json.loads(request.body)["TransactItems"])
            reasons = [{"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}]
            reasons += [{"Code": "None"}] * (items - 1)
            return 400, {"__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
                         "message": "Transaction cancelled, please refer cancellation reasons for specific reasons "
                                    f"[{', '.join(r['Code'] for r in reasons)}]", "CancellationReasons": reasons}
        return 400, {"__type": "com.amazonaws.dynamodb.v20120810#TransactionConflictException",
                     "message": "Transaction is ongoing for the item"}
    if kind == "unavailable":
        return 500, {"__type": "com.amazonaws.dynamodb.v20120810#InternalServerError",
                     "message": "Internal server error"}
    raise ValueError(kind)


def _xml_error(service: str, kind: str) -> tuple:
    code, status, message = {
        "throttle": ("SlowDown" if service == "s3" else "Throttling", 503 if service == "s3" else 400,
                     "Please reduce your request rate." if service == "s3" else "Maximum sending rate exceeded."),
        "unavailable": ("InternalError" if service == "s3" else "ServiceUnavailable", 500 if service == "s3" else 503,
                        "We encountered an internal error. Please try again."),
    }[kind]
    if service == "s3":
        return status, f"<Error><Code>{code}</Code><Message>{message}</Message></Error>".encode()
    return status, (f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message>"
                    "</Error><RequestId>fault</RequestId></ErrorResponse>").encode()


def error_response(service: str, kind: str, request) -> AWSResponse:
    """What AWS answers for this kind of failure, as bytes on the wire."""
    if service == "dynamodb":
        status, payload = _dynamodb_error(kind, request)
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": "fault"}
    else:
        status, body = _xml_error(service, kind)
        headers = {"Content-Type": "text/xml", "x-amzn-RequestId": "fault", "x-amz-request-id": "fault"}
        if request is not None and request.method == "HEAD":
            body = b""
    headers["Content-Length"] = str(len(body))
    return AWSResponse(request.url if request is not None else "", status, headers, _Raw(body))


@dataclass
class Fault:
    """``kind``: throttle, conflict (DynamoDB), unavailable (a 5xx), or disconnect (the endpoint
    does not answer). ``times``: how many matching sends fail (None: all of them while armed);
    ``probability``: the share of matching sends that fail (seeded, so a run repeats)."""
    service: str
    kind: str
    operations: Optional[Set[str]] = None
    times: Optional[int] = None
    probability: float = 1.0
    seed: int = 14
    injected: int = 0
    _rng: random.Random = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def matches(self, service: str, operation: str) -> bool:
        if service != self.service or (self.operations is not None and operation not in self.operations):
            return False
        if self.times is not None and self.injected >= self.times:
            return False
        return self.probability >= 1.0 or self._rng.random() < self.probability


class FaultInjector:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.faults: List[Fault] = []
        self.crash_at: Optional[int] = None
        self.dead = False
        self.writes = 0
        self.sends = 0
        self.write_log: List[str] = []
        self.armed = False

    def _rearm(self) -> None:
        self.armed = bool(self.faults) or self.crash_at is not None or self.dead or self._counting

    _counting = False

    # --- the handler -------------------------------------------------------------------------

    def before_send(self, request=None, event_name: str = "", **_kwargs):
        if not self.armed:
            return None
        _, service, operation = (event_name.split(".", 2) + ["", ""])[:3]
        with self._lock:
            self.sends += 1
            if self.dead:
                raise SimulatedCrash(f"{service}.{operation} after the crash")
            if operation in WRITES.get(service, ()):
                self.writes += 1
                self.write_log.append(f"{service}.{operation}")
                if self.crash_at is not None and self.writes == self.crash_at:
                    self.dead = True
                    raise SimulatedCrash(f"killed before write {self.writes} ({service}.{operation})")
            for fault in self.faults:
                if fault.matches(service, operation):
                    fault.injected += 1
                    summary.add("faults injected")
                    if fault.kind == "disconnect":
                        raise EndpointConnectionError(endpoint_url=getattr(request, "url", service))
                    if request is not None:
                        setattr(request, FAULTED, True)  # not carried out: see _after_faults
                    return error_response(service, fault.kind, request)
        return None

    # --- arming ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def injecting(self, *faults: Fault) -> Iterator[List[Fault]]:
        with self._lock:
            self.faults.extend(faults)
            self._rearm()
        try:
            yield list(faults)
        finally:
            with self._lock:
                for fault in faults:
                    self.faults.remove(fault)
                self._rearm()

    @contextlib.contextmanager
    def counting(self) -> Iterator["FaultInjector"]:
        with self._lock:
            self.writes, self.sends, self.write_log = 0, 0, []
            self._counting = True
            self._rearm()
        try:
            yield self
        finally:
            with self._lock:
                self._counting = False
                self._rearm()

    @contextlib.contextmanager
    def crashing_at(self, write_number: int) -> Iterator["FaultInjector"]:
        """The ``write_number``-th write (1-based) is never sent: the function dies before it,
        and every AWS call after it dies too, until the block ends."""
        with self._lock:
            self.writes, self.sends, self.write_log = 0, 0, []
            self.crash_at, self.dead = write_number, False
            self._rearm()
        try:
            yield self
        finally:
            with self._lock:
                self.crash_at, self.dead = None, False
                self._rearm()


FAULTS = FaultInjector()
_installed = {"done": False}
# moto's backends are not thread-safe (shared/ENVIRONMENT.md): tests that run jobs in threads
# have moto answer S3 and SES one call at a time (DynamoDB Local needs no such care).
_MOTO_LOCK = threading.Lock()


def _after_faults(stubber):
    """moto's in-process answer, unless a fault answered the send already. botocore calls every
    ``before-send`` handler and keeps the first answer: without this, a faulted S3 or SES call
    was still carried out by moto (a "throttled" PutObject stored its object) and, retried,
    ran twice: a body stream read by the first run stored an empty object the second time."""
    def answer(event_name: str = "", request=None, **kwargs):
        if getattr(request, FAULTED, False):
            setattr(request, FAULTED, False)
            return None
        if event_name.split(".")[1:2] not in (["s3"], ["ses"]):
            return stubber(event_name=event_name, request=request, **kwargs)
        with _MOTO_LOCK:
            return stubber(event_name=event_name, request=request, **kwargs)
    return answer


def install() -> None:
    """Put the handler among botocore's built-in ones, before moto's stubber (so a fault wins
    over an in-process moto answer), and moto's stubber behind ``_after_faults``. Only clients
    created afterwards carry it: call it before any exists (the reliability conftest does, at
    collection)."""
    if _installed["done"]:
        return
    entry = ("before-send", FAULTS.before_send)
    handlers = botocore.handlers.BUILTIN_HANDLERS
    position = next((i for i, (event, handler, *_) in enumerate(handlers)
                     if event == "before-send" and re.search(r"moto", getattr(handler, "__module__", "") or "")),
                    len(handlers))
    if position < len(handlers):
        handlers[position] = ("before-send", _after_faults(handlers[position][1]))
    handlers.insert(position, entry)
    _installed["done"] = True
