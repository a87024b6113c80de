"""A small local fake of the Stripe API for tests: the endpoints the backend calls
(customers, Checkout and portal sessions, billing meter events, and ``GET /v2/core/events/{id}``
for the v2 events a test publishes with ``publish``, as Stripe keeps them for its event
destinations' thin notifications: tests/fakes/stripe_events.py signs those).

Checkout sessions have Stripe's states: ``open`` when created, ``complete`` once paid
(``complete_checkout``, what a customer does on Stripe's page; it starts a subscription), and
``expired`` (``POST /v1/checkout/sessions/{id}/expire``, which like Stripe's refuses anything
but an open session with a 400 ``invalid_request_error``). A session that is not open has no
``url`` and cannot be paid.

It listens on 127.0.0.1 (port 0: the OS picks a free port) in a thread, parses the
form-encoded bodies the official library sends, records every request, honours
``Idempotency-Key`` for customers and meter events like Stripe does (for meter events also
refusals and errors saved once the endpoint ran, and a key reused with other parameters is an
``idempotency_error``), keeps one meter event per ``identifier`` (Stripe's deduplication), and
can be told to fail.

Stripe keeps both only for a while: idempotency keys are pruned once at least 24 hours old, and
identifiers are unique "within a rolling period of at least 24 hours". The fake forgets both
after exactly ``DEDUPE_SECONDS`` of its clock, which ``advance`` moves on: an event sent again
later is counted again, as Stripe may.
"""
from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, List, Optional, Tuple
from urllib.parse import parse_qsl, urlsplit

DEDUPE_SECONDS = 24 * 3600  # Stripe's idempotency keys and meter event identifiers: "at least 24 hours"


@dataclass
class Recorded:
    method: str
    path: str
    headers: Dict[str, str]
    form: Dict[str, str]  # flat, Stripe's bracket notation: "line_items[0][price]"


@dataclass
class FakeStripe:
    api_key: str = "sk_test_fake"
    requests: List[Recorded] = field(default_factory=list)
    customers: Dict[str, dict] = field(default_factory=dict)
    meter_events: Dict[str, dict] = field(default_factory=dict)  # identifier -> its last event
    meter_event_log: List[dict] = field(default_factory=list)  # every event counted, duplicates too
    checkout_sessions: Dict[str, dict] = field(default_factory=dict)
    subscriptions: Dict[str, dict] = field(default_factory=dict)
    v2_events: Dict[str, dict] = field(default_factory=dict)  # id -> the v2 event, as retrieved
    failures: List[Tuple[int, dict, bool]] = field(default_factory=list)  # (status, body, saved under the key)
    clock_offset: float = 0.0  # seconds ``advance``d past the real time
    # Seconds to sit on the next answers (after doing the work, as a slow Stripe would): a
    # client with a shorter timeout gives up although the request took effect.
    delays: List[float] = field(default_factory=list)
    _idempotent: Dict[str, dict] = field(default_factory=dict)
    # key -> (its first request's form, the answer, when); identifier -> when first counted
    _idempotent_meter: Dict[str, Tuple[Dict[str, str], Tuple[int, dict], float]] = field(default_factory=dict)
    _identifier_seen: Dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: Optional[ThreadingHTTPServer] = None
    _thread: Optional[threading.Thread] = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "FakeStripe":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args) -> None:  # quiet
                pass

            def do_GET(self) -> None:  # noqa: N802
                url = urlsplit(self.path)
                self.answer(Recorded("GET", url.path, {k.lower(): v for k, v in self.headers.items()},
                                     dict(parse_qsl(url.query, keep_blank_values=True))))

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode("utf-8")
                self.answer(Recorded("POST", self.path, {k.lower(): v for k, v in self.headers.items()},
                                     dict(parse_qsl(body, keep_blank_values=True))))

            def answer(self, request: Recorded) -> None:
                status, payload = fake.dispatch(request)
                data = json.dumps(payload).encode()
                with fake._lock:
                    delay = fake.delays.pop(0) if fake.delays else 0.0
                if delay:
                    time.sleep(delay)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Request-Id", "req_fake")
                self.end_headers()
                try:
                    self.wfile.write(data)
                except OSError:  # the client timed out and closed the connection
                    pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)

    def fail_next(self, status: int, error_type: str = "api_error", message: str = "boom",
                  saved: bool = False) -> None:
        """The next request fails. ``saved``: it failed once the endpoint had begun (a meter event's
        ``500``), so Stripe keeps the answer under its idempotency key and repeats it to retries."""
        self.failures.append((status, {"error": {"type": error_type, "message": message}}, saved))

    def now(self) -> float:
        return time.time() + self.clock_offset

    def advance(self, seconds: float) -> None:
        """Stripe's time moves on (what it deduplicates is forgotten after ``DEDUPE_SECONDS``)."""
        with self._lock:
            self.clock_offset += seconds

    def publish(self, event: dict) -> None:
        """A v2 event Stripe created (what its thin notification names): retrievable from now."""
        with self._lock:
            self.v2_events[event["id"]] = event

    def calls(self, path: str) -> List[Recorded]:
        return [r for r in self.requests if r.path == path]

    # --- the endpoints -------------------------------------------------------------------

    def dispatch(self, request: Recorded) -> Tuple[int, dict]:
        with self._lock:
            self.requests.append(request)
            if request.headers.get("authorization") != f"Bearer {self.api_key}":
                return 401, {"error": {"type": "invalid_request_error", "message": "Invalid API Key provided"}}
            if self.failures:
                status, body, saved = self.failures.pop(0)
                if saved and request.path == "/v1/billing/meter_events":
                    return self._create_meter_event(request, failure=(status, body))
                return status, body
            if request.path == "/v1/customers":
                return 200, self._create_customer(request)
            if request.path == "/v1/checkout/sessions":
                return self._create_checkout(request)
            if request.path.startswith("/v1/checkout/sessions/"):
                return self._checkout_session(request)
            if request.path == "/v1/billing_portal/sessions":
                return self._create_portal(request)
            if request.path == "/v1/billing/meter_events":
                return self._create_meter_event(request)
            if request.method == "GET" and request.path.startswith("/v2/core/events/"):
                found = self.v2_events.get(request.path[len("/v2/core/events/"):])
                return (200, found) if found else (404, {"error": {"type": "not_found", "code": "not_found",
                                                                    "message": "The resource wasn't found."}})
            return 404, {"error": {"type": "invalid_request_error", "message": f"Unrecognized request URL ({request.path})"}}

    def _create_customer(self, request: Recorded) -> dict:
        key = request.headers.get("idempotency-key")
        if key and key in self._idempotent:
            return self._idempotent[key]
        customer = {"id": f"cus_{secrets.token_hex(7)}", "object": "customer", "email": request.form.get("email"),
                    "metadata": {"user_id": request.form.get("metadata[user_id]")}}
        self.customers[customer["id"]] = customer
        if key:
            self._idempotent[key] = customer
        return customer

    def _create_checkout(self, request: Recorded) -> Tuple[int, dict]:
        form = request.form
        if form.get("customer") not in self.customers:
            return 400, {"error": {"type": "invalid_request_error", "code": "resource_missing",
                                   "param": "customer", "message": f"No such customer: '{form.get('customer')}'"}}
        session_id = f"cs_test_{secrets.token_hex(12)}"
        session = {"id": session_id, "object": "checkout.session", "mode": form.get("mode"), "status": "open",
                   "payment_status": "unpaid", "customer": form.get("customer"), "subscription": None,
                   "client_reference_id": form.get("client_reference_id"),
                   "metadata": {"user_id": form.get("metadata[user_id]"), "tier": form.get("metadata[tier]")},
                   "url": f"https://checkout.stripe.com/c/pay/{session_id}"}
        self.checkout_sessions[session_id] = session
        return 200, dict(session)

    def _checkout_session(self, request: Recorded) -> Tuple[int, dict]:
        """GET /v1/checkout/sessions/{id} (``expand[0]=subscription``) and POST .../{id}/expire."""
        session_id, _, action = request.path[len("/v1/checkout/sessions/"):].partition("/")
        session = self.checkout_sessions.get(session_id)
        if session is None or (request.method, action) not in (("GET", ""), ("POST", "expire")):
            return 404, {"error": {"type": "invalid_request_error", "code": "resource_missing", "param": "session",
                                   "message": f"No such checkout.session: '{session_id}'"}}
        if action == "expire":
            if session["status"] != "open":
                return 400, {"error": {"type": "invalid_request_error", "message":
                                       'Only Checkout Sessions with a status in ["open"] can be expired. '
                                       f"This Checkout Session has a status of `{session['status']}`."}}
            session.update(status="expired", url=None)
        answer = dict(session)
        if request.form.get("expand[0]") == "subscription" and session["subscription"]:
            answer["subscription"] = dict(self.subscriptions[session["subscription"]])
        return 200, answer

    # --- what happens on Stripe's side ---------------------------------------------------

    def complete_checkout(self, session_id: str) -> str:
        """The customer pays an open session on Stripe's page: it completes and starts an active
        subscription (returned). Paying a session that is not open fails, as on Stripe."""
        with self._lock:
            session = self.checkout_sessions[session_id]
            if session["status"] != "open":
                raise ValueError(f"Checkout session {session_id} is {session['status']}: it cannot be paid")
            subscription = {"id": f"sub_{secrets.token_hex(8)}", "object": "subscription", "status": "active",
                            "customer": session["customer"], "metadata": dict(session["metadata"])}
            self.subscriptions[subscription["id"]] = subscription
            session.update(status="complete", payment_status="paid", subscription=subscription["id"], url=None)
            return subscription["id"]

    def open_checkouts(self) -> List[str]:
        """The ids of the sessions a customer could still pay."""
        with self._lock:
            return [sid for sid, session in self.checkout_sessions.items() if session["status"] == "open"]

    def delete_customer(self, customer_id: str) -> None:
        """Deleted in the Stripe Dashboard: its subscriptions end with it."""
        with self._lock:
            self.customers.pop(customer_id)
            for subscription in self.subscriptions.values():
                if subscription["customer"] == customer_id:
                    subscription["status"] = "canceled"

    def _create_portal(self, request: Recorded) -> Tuple[int, dict]:
        if request.form.get("customer") not in self.customers:
            return 400, {"error": {"type": "invalid_request_error", "code": "resource_missing",
                                   "param": "customer",
                                   "message": f"No such customer: '{request.form.get('customer')}'"}}
        session_id = f"bps_{secrets.token_hex(12)}"
        return 200, {"id": session_id, "object": "billing_portal.session", "customer": request.form["customer"],
                     "return_url": request.form.get("return_url"),
                     "url": f"https://billing.stripe.com/p/session/test_{session_id}"}

    def _create_meter_event(self, request: Recorded,
                            failure: Optional[Tuple[int, dict]] = None) -> Tuple[int, dict]:
        form, now = request.form, self.now()
        key = request.headers.get("idempotency-key")
        saved = self._idempotent_meter.get(key) if key else None
        if saved and now - saved[2] < DEDUPE_SECONDS:
            # Stripe answers a key again as it did the first time, refusals and errors included,
            # and only for the same parameters.
            first_form, answer, _ = saved
            if first_form != form:
                return 400, {"error": {"type": "idempotency_error", "message": "Keys for idempotent requests can "
                                       "only be used with the same parameters they were first used with."}}
            return answer
        answer = failure or self._new_meter_event(form, now)
        if key:
            self._idempotent_meter[key] = (form, answer, now)
        return answer

    def _new_meter_event(self, form: Dict[str, str], now: float) -> Tuple[int, dict]:
        customer = form.get("payload[stripe_customer_id]")
        if not form.get("event_name") or customer not in self.customers:
            return 400, {"error": {"type": "invalid_request_error", "code": "resource_missing",
                                   "param": "payload[stripe_customer_id]",
                                   "message": f"No such customer: '{customer}'"}}
        identifier = form.get("identifier") or f"gen_{secrets.token_hex(8)}"
        if now - self._identifier_seen.get(identifier, float("-inf")) < DEDUPE_SECONDS:
            return 200, self.meter_events[identifier]  # Stripe keeps one event per identifier (for a while)
        event = {"object": "billing.meter_event", "event_name": form["event_name"], "identifier": identifier,
                 "payload": {"stripe_customer_id": customer, "value": form.get("payload[value]")},
                 "timestamp": int(form.get("timestamp") or 0), "livemode": False}
        self._identifier_seen[identifier] = now
        self.meter_events[identifier] = event
        self.meter_event_log.append(event)
        return 200, event

    def meter_totals(self) -> Dict[Tuple[str, str], int]:
        """Sum of values per (event name, customer): what Stripe would bill."""
        totals: Dict[Tuple[str, str], int] = {}
        for event in self.meter_event_log:
            key = (event["event_name"], event["payload"]["stripe_customer_id"])
            totals[key] = totals.get(key, 0) + int(event["payload"]["value"])
        return totals
