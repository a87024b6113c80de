"""The API function's 25 s (under API Gateway's 29 s) holds when Stripe hangs: each call is cut
at the client's timeout, retried as configured, and the route answers 503 with Retry-After
(the arithmetic for the defaults: tests/deploy/test_stack.py)."""
from __future__ import annotations

import socket
import threading
import time

from tests.conftest import call


class SilentServer:
    """Accepts connections and reads requests, never answers (bounded: closes after 10 s)."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.listener.settimeout(0.2)
        self.accepted = 0
        self.open = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}"

    def _serve(self) -> None:
        deadline = time.monotonic() + 10
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                connection, _ = self.listener.accept()
            except socket.timeout:
                continue
            self.accepted += 1
            self.open.append(connection)

    def close(self) -> None:
        self._stop.set()
        self.thread.join(timeout=5)
        for connection in self.open:
            connection.close()
        self.listener.close()


def test_a_hanging_stripe_is_cut_at_the_timeout_and_answers_503(client, user_token, env):
    server = SilentServer()
    try:
        env(STRIPE_SECRET_KEY="sk_test_fake", STRIPE_PRICE_ID="price_pro", STRIPE_API_BASE=server.url,
            STRIPE_TIMEOUT_SECONDS="0.5", STRIPE_MAX_NETWORK_RETRIES="1")
        started = time.monotonic()
        status, body, headers = call(client, "POST", "/billing/checkout", token=user_token)
        elapsed = time.monotonic() - started
    finally:
        server.close()
    assert status == 503 and body["code"] == "SERVICE_UNAVAILABLE" and headers["Retry-After"], body
    assert server.accepted == 2, "one attempt and the one retry configured"
    # Two timeouts of 0.5 s and stripe's backoff before the retry (at most 2 s): nowhere near 25 s.
    assert 1.0 <= elapsed < 5, elapsed
