"""Per-request state shared by the middleware, the route wrapper and the views."""
from __future__ import annotations

import contextvars
import re
import uuid
from dataclasses import dataclass, field
from typing import Dict, Optional

_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{8,128}")


@dataclass
class RequestState:
    request_id: str
    response_headers: Dict[str, str] = field(default_factory=dict)


_current: contextvars.ContextVar[Optional[RequestState]] = contextvars.ContextVar("spikes_request", default=None)


def begin(caller_request_id: Optional[str]) -> RequestState:
    """Start a request: keep the caller's id when it is sane, else mint one."""
    request_id = caller_request_id if caller_request_id and _SANE_REQUEST_ID.fullmatch(caller_request_id) \
        else f"req_{uuid.uuid4().hex}"
    state = RequestState(request_id=request_id)
    _current.set(state)
    return state


def current() -> RequestState:
    state = _current.get()
    if state is None:  # Called outside the middleware (e.g. a direct view call in a test).
        state = begin(None)
    return state


def add_response_headers(headers: Dict[str, str]) -> None:
    current().response_headers.update(headers)
