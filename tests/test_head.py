"""HEAD on the pages, documents and assets (api/routing.READ_METHODS) answers what the GET
answers, body aside, and so do the catch-alls' 404s; a HEAD on any other route is a 405 that
names its methods. Share pages and /widget.js: tests/test_serving_head.py."""
from __future__ import annotations

import http.client
import re
import threading

import pytest
from chalice.config import Config
from chalice.local import LocalDevServer

from tools import devserver

READ_PATHS = [
    ("/", 200), ("/v1", 200), ("/health", 200), ("/v1/health", 200), ("/openapi.json", 200), ("/docs", 200),
    ("/v1/docs", 200), ("/docs/init.js", 200), ("/docs/nope.js", 404), ("/dashboard", 200),
    ("/dashboard/app.js", 200), ("/dashboard/nope.js", 404), ("/auth/verify?token=not-a-token", 400),
    ("/auth/device", 200), ("/auth/device?code=BCDF-GHJK", 200), ("/nope", 404), ("/a/b/c/d", 404),
]


def answers(client, path):
    """The GET's and the HEAD's answers, (status, headers, body), under one request id."""
    return [client.http.request(method, path, headers={"X-Request-Id": "same-request-id"})
            for method in ("GET", "HEAD")]


@pytest.mark.parametrize("path,status", READ_PATHS)
def test_head_answers_what_get_answers(client, path, status):
    got, head = answers(client, path)
    assert got.status_code == status
    # The function returns the GET's body too: API Gateway takes Content-Length from it and drops it.
    assert (head.status_code, _but_budget(head.headers), _but_nonce(head.body)) == \
        (got.status_code, _but_budget(got.headers), _but_nonce(got.body))


def _but_budget(headers):
    """The headers but a rate limit's budget left, which the GET before the HEAD used, and the
    dashboard's nonce, new in every answer (docs/security.md, 161)."""
    return {name: _but_nonce(value) for name, value in headers.items()
            if name not in ("X-RateLimit-Remaining", "X-RateLimit-Reset")}


def _but_nonce(text):
    return re.sub(r"nonce-[A-Za-z0-9_-]+|nonce=\"[A-Za-z0-9_-]+\"", "nonce", text) if isinstance(text, str) else \
        re.sub(rb"nonce=\"[A-Za-z0-9_-]+\"", b"nonce", text)


@pytest.mark.parametrize("path,allowed", [
    ("/me", "GET, PATCH"), ("/auth/poll", "GET"), ("/auth/device/poll", "GET"), ("/billing/checkout", "GET, POST"),
    ("/spikes/export", "GET"), ("/auth/login", "POST"), ("/v1/me", "GET, PATCH"),
])
def test_head_on_a_route_that_is_no_read_is_a_405(client, path, allowed):
    """A poll hands out its token once and a checkout makes a Stripe session: a HEAD that ran
    them would do so with the answer dropped."""
    head = client.http.request("HEAD", path)
    assert head.status_code == 405 and head.headers["Allow"] == allowed


@pytest.fixture
def local_app(aws):
    """The app on `make dev`'s HTTP handler (tools/devserver.py), on a loopback port."""
    from app import app
    server = LocalDevServer(app, Config.create(chalice_app=app), "127.0.0.1", 0,
                            handler_cls=devserver.handler_class(), server_cls=devserver.server_class())
    thread = threading.Thread(target=server.server.serve_forever, daemon=True)
    thread.start()
    connection = http.client.HTTPConnection("127.0.0.1", server.server.server_address[1], timeout=10)
    yield connection
    connection.close()
    server.server.shutdown()
    server.server.server_close()
    thread.join(5)


@pytest.mark.parametrize("path,status", [
    ("/health", 200), ("/docs", 200), ("/dashboard", 200), ("/dashboard/app.js", 200), ("/nope", 404),
])
def test_head_through_the_local_server_has_the_gets_headers_and_no_body(local_app, path, status):
    local_app.request("GET", path, headers={"X-Request-Id": "same-request-id"})
    got = local_app.getresponse()
    body = got.read()
    local_app.request("HEAD", path, headers={"X-Request-Id": "same-request-id"})
    head = local_app.getresponse()
    assert (got.status, head.status, head.read()) == (status, status, b"")
    assert _but_budget(dict(head.getheaders())) == _but_budget({**dict(got.getheaders()), "Date": head.getheader("Date")})
    assert head.getheader("Content-Length") == str(len(body))
    # Had the HEAD carried a body, this answer would be read from its bytes.
    local_app.request("GET", path, headers={"X-Request-Id": "same-request-id"})
    again = local_app.getresponse()
    assert (again.status, _but_nonce(again.read())) == (status, _but_nonce(body))
