"""Every route's answers against the document: a tour calls each route of the API the way its
clients do, and every JSON answer must validate against the model GET /openapi.json names for
that route and status, strictly (a field the model lacks fails too). The shapes the tour sees
(field names in order, nulls, types) must also equal tests/snapshots/response_shapes.json,
recorded before the views answered through models: the wire format the clients parse
(docs/clients.md) does not move by accident. After an intended change:
``UPDATE_RESPONSE_SHAPES=1 .venv/bin/python -m pytest tests/test_response_models.py``."""
from __future__ import annotations

import inspect
import json
import os
import time
from pathlib import Path
from typing import Any, List, Optional, Tuple

import jsonschema
import pytest
import requests
from chalice.local import RouteMatcher

from chalicelib import deps, errors
from chalicelib.api import openapi, versioning
from chalicelib.services import webhook_delivery
from chalicelib.services.accounts import user_id_for
from tests.conftest import ADMIN_TOKEN, login_token_from_mail, sent_mails, sign_in
from tests.fakes.stripe_api import FakeStripe
from tests.fakes.stripe_events import (DESTINATION_SECRET, WEBHOOK_SECRET, checkout_session, event,
                                      meter_error_report, sign, signed, thin)
from tests.test_outbound_webhooks import Receiver
from tests.test_shares import INDEX, make_pro, multipart

SNAPSHOT = Path(__file__).parent / "snapshots" / "response_shapes.json"
UREQ = "ureq/2.12.1"


class Tour:
    """Calls routes through the test client and keeps every answer with the route it matched."""

    def __init__(self, client) -> None:
        from app import app
        self.client = client
        self.matcher = RouteMatcher(list(app.routes))
        self.answers: List[Tuple[str, str, int, dict, bytes]] = []

    def call(self, method: str, path: str, body: Any = None, token: Optional[str] = None,
             headers: Optional[dict] = None, raw: Optional[bytes] = None, expect: int = 200) -> Any:
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        payload = raw if raw is not None else (json.dumps(body) if body is not None else None)
        response = self.client.http.request(method, path, headers=all_headers, body=payload)
        route = self.matcher.match_route(path).route
        if versioning.is_versioned(route):
            route = route[len(versioning.PREFIX):] or "/"
        self.answers.append((method, route, response.status_code, dict(response.headers), response.body))
        assert response.status_code == expect, (method, path, response.status_code, response.body[:500])
        is_json = response.headers.get("Content-Type", "").startswith("application/json")
        return json.loads(response.body) if is_json else response.body


def shape(value: Any) -> Any:
    """Field names in order, and each value's JSON type (lists: the set of their items' shapes)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list):
        return ["list", sorted({json.dumps(shape(item)) for item in value})]
    return ["object", [[key, shape(item)] for key, item in value.items()]]


def _upload(tour: Tour, token: str, name: str, **metadata) -> dict:
    content_type, body = multipart([("metadata", None, json.dumps({"name": name, **metadata}).encode()),
                                    ("files", "index.html", INDEX)])
    return tour.call("POST", "/shares", token=token, raw=body, headers={"Content-Type": content_type}, expect=201)


def take_the_tour(tour: Tour, env, receiver: Receiver, stripe_api: FakeStripe) -> None:
    env(WEBHOOK_ALLOW_LOOPBACK="true", WEBHOOK_TIMEOUT_SECONDS="3", STRIPE_SECRET_KEY=stripe_api.api_key,
        STRIPE_PRICE_ID="price_pro", STRIPE_API_BASE=stripe_api.url, STRIPE_MAX_NETWORK_RETRIES="0",
        STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET, STRIPE_EVENT_DESTINATION_SECRET=DESTINATION_SECRET,
        BILLING_SUCCESS_URL="https://app.example/thanks",
        BILLING_CANCEL_URL="https://app.example/pricing")
    tour.call("GET", "/")
    tour.call("GET", "/health")
    tour.call("GET", "/v1/health")
    # Pages and assets for people: their media types are the document's too.
    for path in ("/docs", "/v1/docs", "/docs/swagger-ui.css", "/docs/swagger-ui-bundle.js", "/docs/init.js",
                 "/docs/LICENSE", "/dashboard", "/dashboard/app.js", "/dashboard/dashboard.css", "/widget.js",
                 "/auth/device?code=ABCD-EFGH"):
        tour.call("GET", path)

    # Accounts: a magic link the CLI polls for, recovery, the device flow.
    email = "owner@example.com"
    login = tour.call("POST", "/auth/login", {"email": email})
    poll = f"/auth/poll?email={email}&poll_token={login['poll_token']}"
    tour.call("GET", poll, expect=202)
    session = tour.call("POST", "/auth/verify", {"login_token": login_token_from_mail(email), "approve": True})
    tour.call("GET", poll)
    token = session["token"]
    tour.call("POST", "/auth/recover", {"email": email})
    tour.call("GET", f"/auth/verify?token={login_token_from_mail(email)}")  # the page; the token stays unused
    device = tour.call("POST", "/auth/device")
    device_poll = f"/auth/device/poll?device_code={device['device_code']}"
    tour.call("GET", device_poll, expect=202)
    tour.call("POST", "/auth/device/confirm", {"user_code": device["user_code"], "email": email})
    tour.call("POST", "/auth/verify", {"login_token": login_token_from_mail(email), "approve": True})
    tour.call("GET", device_poll)
    token = tour.call("POST", "/auth/rotate-token", token=token)["token"]
    tour.call("GET", "/me", token=token)
    tour.call("PATCH", "/me", {"monthly_cap_cents": 2500}, token=token)

    # Feedback: the widget's page and element posts, the MCP server's, listings of every kind.
    tour.call("POST", "/spikes", {
        "id": "V1StGXR8_Z5jdHi6B-myT", "type": "element", "projectKey": "tour", "page": "Home",
        "url": "https://example.com/?x", "reviewer": {"id": "r1", "name": "Jane", "email": "jane@example.com"},
        "rating": "love", "comments": "Nice", "timestamp": "2026-03-10T13:02:29.123Z",
        "selector": "h1", "xpath": "/html/body/h1", "elementText": "Hi",
        "boundingBox": {"x": 1.5, "y": 2, "width": 30, "height": 10}, "viewport": {"width": 1440, "height": 900}},
        expect=201)
    tour.call("POST", "/spikes", {"type": "page", "projectKey": "tour", "page": "About", "url": "", "rating": None,
                                  "reviewer": {"id": "r2", "name": "Sam"}, "comments": ""}, expect=201)
    mine = tour.call("POST", "/spikes", {"type": "page", "projectKey": "default", "page": "Docs",
                                         "comments": "From the MCP server", "reviewerName": "Agent"},
                     token=token, expect=201)
    tour.call("GET", "/spikes?project=tour")
    tour.call("GET", "/spikes", token=token)
    tour.call("GET", "/spikes?rating=love&resolved=false&page=Home", token=token)
    tour.call("GET", f"/spikes?token={ADMIN_TOKEN}&limit=1")
    tour.call("GET", f"/spikes?token={ADMIN_TOKEN}", headers={"User-Agent": UREQ})
    tour.call("GET", f"/spikes/{mine['id']}", token=token)
    tour.call("PATCH", f"/spikes/{mine['id']}", {"resolved": True}, token=token)
    tour.call("GET", f"/spikes/{mine['id']}", token=token)
    tour.call("PATCH", f"/spikes/{mine['id']}", {"resolved": False}, token=token)
    tour.call("GET", "/spikes/export?format=jsonl", token=token)
    tour.call("GET", "/spikes/export", token=token)
    started_export = tour.call("POST", "/exports", {"format": "jsonl"}, token=token, expect=202)
    tour.call("GET", f"/exports/{started_export['id']}", token=token)
    tour.call("DELETE", f"/spikes/{mine['id']}", token=token)

    # Shares: multipart, presigned uploads, reading, renaming, the webhook, deleting.
    share = _upload(tour, token, "Tour site")
    tour.call("POST", "/spikes", {"type": "element", "projectKey": share["share_id"], "page": "Tour",
                                  "selector": "h1", "rating": "meh"}, expect=201)
    started = tour.call("POST", "/shares/uploads", {"name": "Big", "files": [
        {"path": "index.html", "size": len(INDEX), "content_type": "text/html"}]}, token=token, expect=201)
    for target in started["uploads"]:
        assert requests.put(target["url"], data=INDEX, headers=target["headers"], timeout=10).status_code == 200
    tour.call("POST", f"/shares/{started['share_id']}/complete", token=token)
    tour.call("GET", "/shares", token=token)
    tour.call("GET", f"/shares/{share['share_id']}", token=token)
    tour.call("PATCH", f"/shares/{share['slug']}", {"name": "Renamed"}, token=token)
    make_pro(email)
    hooked = _upload(tour, token, "Hooked", webhook_url=receiver.url, password="open sesame")
    tour.call("PATCH", f"/shares/{share['share_id']}", {"webhook_url": receiver.url}, token=token)
    hooked_spike = tour.call("POST", "/spikes", {"type": "page", "projectKey": share["slug"], "comments": "Hook",
                                                 "reviewer": {"id": "r3", "name": "Kim", "email": "kim@example.com"}},
                             expect=201)
    tour.call("PATCH", f"/spikes/{hooked_spike['id']}?project={share['share_id']}", {"resolved": True}, token=token)
    tour.call("GET", f"/shares/{hooked['share_id']}/webhook", token=token)
    tour.call("POST", f"/shares/{hooked['share_id']}/webhook/rotate", token=token)
    tour.call("GET", f"/shares/{hooked['share_id']}/webhook", token=token)
    tour.call("POST", f"/shares/{hooked['share_id']}/webhook/test", token=token)
    receiver.answers = [500]
    tour.call("POST", f"/shares/{hooked['share_id']}/webhook/test", token=token)
    tour.call("POST", f"/shares/{hooked['share_id']}/webhook/resume", token=token)
    tour.call("GET", f"/shares/{hooked['share_id']}/webhook/deliveries?limit=10", token=token)
    tour.call("GET", f"/shares/{hooked['share_id']}", token=token)
    # A protected share's feedback and pages, with its password (rate limited per share and address).
    tour.call("GET", f"/spikes?project={hooked['slug']}", headers={"X-Share-Password": "open sesame"})
    tour.call("GET", f"/spikes/export?project={hooked['slug']}&password=open%20sesame")
    tour.call("POST", f"/s/{hooked['slug']}/", raw=b"password=open+sesame",
              headers={"Content-Type": "application/x-www-form-urlencoded"}, expect=303)
    tour.call("GET", f"/s/{share['slug']}/")
    tour.call("GET", f"/s/{share['slug']}/index.html")
    tour.call("POST", f"/s/{share['slug']}/", raw=b"", headers={"Content-Type": "application/x-www-form-urlencoded"})
    tour.call("POST", f"/s/{share['slug']}/index.html", raw=b"",
              headers={"Content-Type": "application/x-www-form-urlencoded"})
    tour.call("GET", f"/s/{share['slug']}/css/site.css", expect=404)
    tour.call("DELETE", f"/shares/{share['share_id']}", token=token)
    report = webhook_delivery.run_due(deps.settings(), mailer=deps.mailer())
    assert report.delivered >= 3, report  # spike.created, spike.resolved, share.deleted

    # API keys: the CLI's create/list/revoke, a change, an agent's self-signup and its claim.
    created = tour.call("POST", "/auth/api-key", {"name": "laptop"}, token=token, expect=201)
    tour.call("POST", "/auth/api-key", {}, token=token, expect=201)
    tour.call("GET", "/auth/api-keys", token=token)
    tour.call("GET", "/me", token=created["api_key"])
    tour.call("GET", "/usage", token=created["api_key"])  # with the key's own usage
    tour.call("PATCH", f"/auth/api-key/{created['key_id']}", {"name": "desk", "monthly_cap_cents": 500}, token=token)
    tour.call("DELETE", f"/auth/api-key/{created['key_id']}", token=token)
    agent = tour.call("POST", "/auth/api-key", {}, expect=201)
    tour.call("GET", "/me", token=agent["api_key"])
    tour.call("POST", "/auth/link-key", {"api_key": agent["api_key"]}, token=token)

    # Billing: usage, Checkout, Stripe's event, then the portal of the customer it made.
    tour.call("GET", "/usage", token=token)
    free = sign_in(tour.client, "free@example.com")
    tour.call("GET", "/usage", token=free)
    tour.call("POST", "/billing/checkout", token=free)
    tour.call("GET", "/billing/checkout", token=token)
    raw, headers = signed(event("checkout.session.completed", checkout_session(user_id_for(email)), int(time.time())))
    tour.call("POST", "/webhooks/stripe", raw=raw, headers=headers)
    report = meter_error_report({"meter_event_customer_not_found": ["share-not-ours"]})
    stripe_api.publish(report)
    notification = json.dumps(thin(report))
    tour.call("POST", "/webhooks/stripe/meter-errors", raw=notification.encode(),
              headers={"Stripe-Signature": sign(notification, DESTINATION_SECRET)})
    tour.call("GET", "/billing/portal", token=free)
    tour.call("POST", "/billing/portal", token=free)

    # Errors: the envelope with and without details, a 405, a 404, a 429's retry_after.
    tour.call("POST", "/spikes", {"type": "nope"}, expect=400)
    tour.call("GET", "/spikes", expect=401)
    tour.call("PUT", "/spikes", expect=405)
    tour.call("GET", "/nowhere/at/all", expect=404)
    tour.call("POST", "/auth/logout", {"everywhere": True}, token=token)
    assert sent_mails(email)


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


def _strict(node: Any) -> Any:
    """The document with every object of listed properties closed: nothing undocumented passes."""
    if isinstance(node, dict):
        node = {key: _strict(value) for key, value in node.items()}
        if "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
    elif isinstance(node, list):
        node = [_strict(item) for item in node]
    return node


def _documented_response(doc: dict, method: str, route: str, status: int) -> Optional[dict]:
    operation = doc["paths"].get(route, {}).get(method.lower())
    if operation is None:
        return None
    response = operation["responses"].get(str(status))
    if response is not None and "$ref" in response:
        response = doc["components"]["responses"][response["$ref"].rsplit("/", 1)[-1]]
    return response


def _media_matches(media: str, content: dict) -> bool:
    return any(documented == media or documented == "*/*" or
               (documented.endswith("/*") and media.startswith(documented[:-1])) for documented in content)


def _documented_headers(doc: dict, method: str, route: str, status: int) -> set:
    response = _documented_response(doc, method, route, status)
    if response is None:  # a 404 or 405 of a route or method that does not exist: the envelope's
        response = doc["components"]["responses"][f"Error{status}"]
    return set(response.get("headers") or {})


def _documented_schema(doc: dict, method: str, route: str, status: int) -> Optional[dict]:
    operation = doc["paths"].get(route, {}).get(method.lower())
    if operation is None:  # a method a route lacks (405), a path no route has (404): the envelope
        assert status in (404, 405), (method, route, status)
        return {"$ref": "#/components/schemas/ErrorOut"}
    responses = operation["responses"]
    response = responses.get(str(status))
    assert response is not None, f"{method} {route} answered {status}, which the document does not list"
    if "$ref" in response:
        response = doc["components"]["responses"][response["$ref"].rsplit("/", 1)[-1]]
    return (response.get("content") or {}).get("application/json", {}).get("schema")


def _deliveries_against_the_document(doc: dict, strict_components: dict, receiver: Receiver) -> List[str]:
    """What the receiver got: each event's body is the document's webhook model, with its headers."""
    problems, seen = [], set()
    for request in receiver.requests:
        body = json.loads(request["body"])
        seen.add(body.get("type"))
        described = doc["webhooks"].get(body.get("type"), {}).get("post")
        if described is None:
            problems.append(f"webhook {body.get('type')}: not in the document's webhooks")
            continue
        schema = described["requestBody"]["content"]["application/json"]["schema"]
        for error in jsonschema.Draft202012Validator({**schema, "components": strict_components}).iter_errors(body):
            problems.append(f"webhook {body['type']}: {error.json_path}: {error.message[:300]}")
        missing = [p["name"] for p in described["parameters"] if p["name"] not in request["headers"]]
        if missing:
            problems.append(f"webhook {body['type']}: headers {missing} missing")
    if seen != set(doc["webhooks"]):
        problems.append(f"webhook events delivered {sorted(seen)}, documented {sorted(doc['webhooks'])}")
    return problems


def _operations_with_a_body(doc: dict) -> List[Tuple[str, str]]:
    """Every operation whose success has a body (share pages: at their first two depths)."""
    found = []
    for route, methods in doc["paths"].items():
        if versioning.is_versioned(route) or route.count("/") > 3 and route.startswith("/s/"):
            continue
        for method, operation in methods.items():
            if any(status.startswith("2") and "content" in response
                   for status, response in operation["responses"].items()):
                found.append((method.upper(), route))
    return found


def test_every_answer_is_its_documented_model_and_the_shapes_hold(client, env, receiver, stripe_api):
    tour = Tour(client)
    take_the_tour(tour, env, receiver, stripe_api)
    doc = json.loads(client.http.get("/openapi.json").body)
    strict_components = _strict(doc["components"])
    problems, shapes, answered = [], {}, set()
    for method, route, status, headers, body in tour.answers:
        documented_headers = _documented_headers(doc, method, route, status)
        for header in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "Retry-After"):
            if header in headers and header not in documented_headers:
                problems.append(f"{method} {route} {status}: sends {header}, which the document does not list")
        media = headers.get("Content-Type", "").split(";")[0].strip()
        if 200 <= status < 300:
            answered.add((method, route))
        if 200 <= status < 300 and media != "application/json":
            documented = _documented_response(doc, method, route, status) or {}
            if not _media_matches(media, documented.get("content") or {}):
                problems.append(f"{method} {route} {status}: sends {media}, documented "
                                f"{sorted(documented.get('content') or {})}")
        if media != "application/json" or route == "/openapi.json":
            continue
        data = json.loads(body)
        if body != json.dumps(data, separators=(",", ":")).encode():
            problems.append(f"{method} {route} {status}: not compact ASCII JSON")
        schema = _documented_schema(doc, method, route, status)
        if schema is None:
            problems.append(f"{method} {route} {status}: JSON answer, documented without a JSON body")
            continue
        validator = jsonschema.Draft202012Validator({**schema, "components": strict_components})
        for error in validator.iter_errors(data):
            problems.append(f"{method} {route} {status}: {error.json_path}: {error.message[:300]}")
        shapes.setdefault(f"{method} {route} {status}", set()).add(json.dumps(shape(data)))
    recorded = {key: sorted(values) for key, values in sorted(shapes.items())}
    if os.environ.get("UPDATE_RESPONSE_SHAPES"):
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(json.dumps(recorded, indent=1) + "\n")
    problems += _deliveries_against_the_document(doc, strict_components, receiver)
    assert problems == [], "\n".join(problems)
    untoured = sorted(set(_operations_with_a_body(doc)) - answered - {("GET", "/openapi.json")})
    assert untoured == [], f"add these routes to the tour: {untoured}"

    expected = json.loads(SNAPSHOT.read_text())
    changed = {key: {"was": expected.get(key), "now": recorded.get(key)}
               for key in sorted(set(expected) | set(recorded)) if expected.get(key) != recorded.get(key)}
    assert changed == {}, "the wire format changed (see the module's docstring if that is intended)"


def _sample_error(cls: type) -> errors.SpikesError:
    """One instance of an error class, whatever its constructor asks for."""
    samples = {int: 3, "int": 3, str: "x", "str": "x"}
    arguments = {}
    for name, parameter in inspect.signature(cls.__init__).parameters.items():
        if name == "self" or parameter.kind in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
            continue
        if parameter.default is not parameter.empty:
            continue
        arguments[name] = samples.get(parameter.annotation, "x")
    return cls(**arguments)


def _error_classes() -> List[type]:
    found, stack = [], [errors.SpikesError]
    while stack:
        cls = stack.pop()
        found.append(cls)
        stack.extend(cls.__subclasses__())
    return found


@pytest.mark.parametrize("cls", _error_classes(), ids=lambda cls: cls.__name__)
def test_every_error_answers_in_the_documented_envelope(client, cls):
    from chalicelib.api.responses import ErrorOut
    from chalicelib.api.routing import error_response
    doc = json.loads(client.http.get("/openapi.json").body)
    error = _sample_error(cls)
    body = json.loads(error_response(error).body)
    schema = {"$ref": "#/components/schemas/ErrorOut", "components": _strict(doc["components"])}
    jsonschema.Draft202012Validator(schema).validate(body)
    assert list(body)[:2] == ["error", "code"] and list(body)[-1] == "request_id"
    assert ErrorOut.model_validate(body).model_dump() == body


def test_a_json_answer_is_a_model_never_a_bare_dict():
    from chalicelib.api.responses import OkOut
    from chalicelib.api.routing import json_response
    assert json_response(OkOut()).body == '{"ok":true}'
    with pytest.raises(TypeError):
        json_response({"ok": True})
    with pytest.raises(TypeError):
        json_response([{"ok": True}])
