"""Route registration and the one place where errors become the contract's envelope."""
from __future__ import annotations

import functools
import json
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Union

from botocore.exceptions import BotoCoreError, ClientError
from chalice import Blueprint, CORSConfig, Response
from pynamodb.exceptions import PynamoDBException

from chalicelib import deps
from chalicelib.api import context
from chalicelib.errors import DependencyUnavailable, InternalError, SpikesError, ValidationFailed
from chalicelib.lazy import lazy_import

# Loaded by the first request, not by `import app` (chalicelib/lazy.py).
logs = lazy_import("chalicelib.logs")
responses = lazy_import("chalicelib.api.responses")
ratelimit = lazy_import("chalicelib.services.ratelimit")

# Public API: any origin, no credentials (cookies never cross origins; see docs/security.md).
CORS = CORSConfig(
    allow_origin="*",
    allow_headers=["X-Request-Id", "X-API-Key", "X-Share-Password"],
    expose_headers=["X-Request-Id", "Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining",
                    "X-RateLimit-Reset", "Content-Disposition", "X-Next-Cursor"],
    max_age=600,
)
ANY_CONTENT_TYPE = ["*/*"]
# A redirect's empty body: Chalice would otherwise label it application/json, which it is not.
EMPTY_BODY_TYPE = "text/plain; charset=utf-8"
ALL_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
# What a page, a document or an asset answers. HEAD runs the GET's view and answers its status,
# headers and body: API Gateway sets Content-Length from the body a function returns (one the
# function sets goes out as x-amzn-Remapped-Content-Length) and sends no body for a HEAD, and so
# does `make dev`'s server (tools/devserver.py). So a HEAD changes nothing a GET would not; a GET
# that does (a poll that hands out its token once, a Checkout session) is not a READ route, and
# its HEAD is a 405 like any method a route does not serve.
READ_METHODS = ("GET", "HEAD")


def _log():
    return logs.get_logger("spikes.http")


def json_response(body: Union[responses.Out, List[responses.Out], responses.Preshaped], status: int = 200,
                  headers: Optional[Dict[str, str]] = None) -> Response:
    """The one way a JSON body is sent: a response model (or a body checked against one)."""
    wire = _wire(body)
    preshaped_text = body.text if isinstance(body, responses.Preshaped) else None
    text = preshaped_text if preshaped_text is not None else json.dumps(wire, separators=(",", ":"))
    return Response(body=text, status_code=status, headers={"Content-Type": "application/json", **(headers or {})})


def _wire(body: Any) -> Any:
    if isinstance(body, responses.Out):
        return body.wire()
    if isinstance(body, list) and all(isinstance(item, responses.Out) for item in body):  # the contract's bare arrays
        return [item.wire() for item in body]
    if isinstance(body, responses.Preshaped):
        if responses.CHECKS.preshaped:
            _check_preshaped(body)
        return body.body
    raise TypeError(f"a JSON response is a model of chalicelib/api/responses.py, not {type(body).__name__}")


def _check_preshaped(body: responses.Preshaped) -> None:
    """What the model would have sent is what is sent (the test suite turns this on)."""
    from pydantic import TypeAdapter
    adapter = TypeAdapter(body.shape)
    shaped = adapter.dump_python(adapter.validate_python(body.body))
    if json.dumps(shaped) != json.dumps(body.body):
        raise AssertionError(f"body differs from its model {body.shape}: {json.dumps(body.body)[:500]}")
    if body.text is not None and json.loads(body.text) != body.body:
        raise AssertionError(f"serialized body differs from the body: {body.text[:500]}")


def error_response(exc: SpikesError) -> Response:
    body = responses.ErrorOut(**exc.body(), request_id=context.current().request_id)
    return json_response(body, exc.status, exc.headers)


def handle(call: Callable[[], Any]) -> Response:
    """Run a view; map domain errors, dependency failures and bugs to the envelope."""
    ratelimit.begin_request()
    try:
        deps.settings()
        result = call()
    except SpikesError as exc:
        if exc.status >= 500:
            _log().warning("request.failed", code=exc.code, status=exc.status)
        return error_response(exc)
    except (PynamoDBException, BotoCoreError, ClientError) as exc:
        cause = getattr(exc, "cause", None)
        if _is_oversized_key(exc):
            # A caller's value used as a key went past DynamoDB's key size: their input, not an outage.
            # Field-level details, as every VALIDATION_ERROR of the contract has; DynamoDB does not say which.
            return error_response(ValidationFailed.field(
                "request", "A value of this request (a path segment, parameter or field) is too long to look up"))
        _log().error("dependency.failed", error=type(exc).__name__, detail=str(cause or exc)[:500],
                  aws_code=getattr(exc, "cause_response_code", None))
        return error_response(DependencyUnavailable())
    except Exception:  # noqa: BLE001 - the last line of defence: never leak a traceback
        _log().exception("request.crashed")
        return error_response(InternalError())
    finally:
        decision = ratelimit.tightest()
        if decision is not None:
            # Every rate-limited route reports its budget, on success and on refusal alike.
            context.add_response_headers(decision.headers())
    if isinstance(result, Response):
        return result
    return json_response(result)


# DynamoDB's words for it: on writes ("Size of hashkey has exceeded...") and on reads ("Hash
# primary key values must be under 2048 bytes", also DynamoDB Local's).
_KEY_SIZE_MESSAGES = ("size of hashkey", "size of rangekey", "key size", "exceeded the maximum size limit",
                      "primary key values must be under")


def _is_oversized_key(exc: Exception) -> bool:
    code = getattr(exc, "cause_response_code", None) or \
        (getattr(exc, "response", None) or {}).get("Error", {}).get("Code")
    text = " ".join(str(part) for part in (getattr(exc, "cause_response_message", None), exc)).lower()
    return code == "ValidationException" and any(message in text for message in _KEY_SIZE_MESSAGES)


def route(bp: Blueprint, path: str, methods: Iterable[str] = ("GET",), cors: bool = True) -> Callable:
    """Register ``fn`` on ``bp`` with the error mapping, CORS and any content type."""
    def decorator(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def view(**kwargs: Any) -> Response:
            return handle(lambda: fn(**kwargs))

        bp.route(path, methods=list(methods), cors=CORS if cors else None, content_types=ANY_CONTENT_TYPE)(view)
        return fn
    return decorator


def http_middleware(event: Any, get_response: Callable) -> Response:
    """Request id, access log and the headers every response carries."""
    state = context.begin(event.headers.get("x-request-id"))
    logs.bind_request(state.request_id)
    started = time.perf_counter()
    response = get_response(event)
    if isinstance(response.body, dict) and "Code" in response.body and "Message" in response.body:
        # Chalice's own error format (a framework-level refusal): re-shape it, keep status and CORS.
        error = InternalError() if response.status_code >= 500 else SpikesError(str(response.body["Message"]))
        error.status = response.status_code
        reshaped = error_response(error)
        reshaped.headers = {**{k: v for k, v in response.headers.items() if k.lower() != "content-type"},
                            **reshaped.headers}
        response = reshaped
    response.headers.update(state.response_headers)
    response.headers["X-Request-Id"] = state.request_id
    _log().info("request", method=event.method, route=event.path, status=response.status_code,
             ms=round((time.perf_counter() - started) * 1000, 1))
    return response
