"""Every answer of the in-process tests against GET /openapi.json: the route and method that
answered are documented, and so is the status, or the test that made the request fails.

Installed by tests/conftest.py around the Chalice test client, so the whole suite (every
refusal, fault and edge the other tests provoke) checks the document's status codes, not only
the tour of tests/test_response_models.py; a VALIDATION_ERROR must also carry the contract's
field-level details. A 404 or 405 of a path or method no route has (and a
500 or 503 before the route ran) is the envelope's, documented once under components.
"""
from __future__ import annotations

import json
from typing import Any, Dict, Optional

from chalice import test as chalice_test

# What a path or method the document does not describe may answer: the catch-alls' 404, the
# fallbacks' 405, and a failure before the view ran (settings, a dependency).
UNROUTED_STATUSES = frozenset({404, 405, 500, 503})

_state: Dict[str, Any] = {"installed": False, "doc": None, "matcher": None}


def document() -> Dict[str, Any]:
    if _state["doc"] is None:
        from chalice.local import RouteMatcher

        from app import app
        from chalicelib.api import openapi
        _state["doc"] = openapi.build("http://localhost", app.routes)
        _state["matcher"] = RouteMatcher(list(app.routes))
    return _state["doc"]


def forget() -> None:
    """Build the document again on the next check (after a test changed it)."""
    _state["doc"] = None


def undocumented(method: str, path: str, status: int) -> Optional[str]:
    """Why the answer ``status`` to ``method path`` is not in the document, or None."""
    doc = document()
    try:
        route = _state["matcher"].match_route(path.split("?", 1)[0]).route
    except ValueError:  # deeper than any route: answered by API Gateway itself
        return None
    operation = doc["paths"].get(route, {}).get(method.lower())
    if operation is None and method.upper() == "HEAD":  # a page's HEAD: its GET's, stated once (openapi.listed)
        operation = doc["paths"].get(route, {}).get("get")
    if operation is None:
        if status in UNROUTED_STATUSES:
            return None
        return f"{method} {route} answered {status}, and the document has no such operation"
    if str(status) not in operation["responses"]:
        return (f"{method} {route} answered {status}, which GET /openapi.json does not list for it "
                f"(chalicelib/api/openapi.py); it lists {sorted(operation['responses'])}")
    return None


def without_details(response) -> Optional[str]:
    """The contract: "Validation errors include field-level details" ({field, message, code})."""
    if response.status_code != 400 or not response.headers.get("Content-Type", "").startswith("application/json"):
        return None
    body = json.loads(response.body)
    if body.get("code") != "VALIDATION_ERROR":
        return None
    details = body.get("details")
    if details and all(isinstance(detail, dict) and set(detail) == {"field", "message", "code"}
                       for detail in details):
        return None
    return f"a VALIDATION_ERROR without the contract's field-level details: {response.body[:300]!r}"


def install() -> None:
    if _state["installed"]:
        return
    request = chalice_test.TestHTTPClient.request

    def checked_request(self, method, path, *args, **kwargs):
        response = request(self, method, path, *args, **kwargs)
        problem = undocumented(method, path, response.status_code) or without_details(response)
        assert problem is None, problem
        return response

    chalice_test.TestHTTPClient.request = checked_request
    _state["installed"] = True
