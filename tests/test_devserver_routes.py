"""`make dev`'s HTTP handler answers a path no route matches (deeper than the app's catch-all
routes) as the deployed API does: the contract's 404 envelope (infra/stack.py maps API Gateway's
own answer), not chalice local's 403 {"message": "Missing Authentication Token"}; and it answers a
HEAD with headers only, as API Gateway does."""
from __future__ import annotations

import http.client
import json
import threading
import urllib.error
import urllib.request

import pytest
from chalice import Chalice
from chalice.config import Config
from chalice.local import LocalDevServer

from tools import devserver


@pytest.fixture
def local_server():
    app = Chalice("routes")

    @app.route("/known", methods=["GET", "HEAD"])
    def known():
        return {"ok": True}

    server = LocalDevServer(app, Config.create(chalice_app=app), "127.0.0.1", 0,
                            handler_cls=devserver.handler_class(), server_cls=devserver.server_class())
    thread = threading.Thread(target=server.server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server.server_address[1]}"
    server.server.shutdown()
    server.server.server_close()
    thread.join(5)


def _get(url: str, **headers):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as answer:
            return answer.status, dict(answer.headers), json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer some-token"}])
def test_a_path_no_route_matches_is_the_contracts_404(local_server, headers):
    assert _get(f"{local_server}/known")[0] == 200
    status, answer_headers, body = _get(f"{local_server}/a/b/c/d/e/f/g/h/i/j/k/l", **headers)
    assert status == 404, body
    assert body["code"] == "NOT_FOUND" and body["error"] and body["request_id"]
    assert answer_headers["X-Request-Id"] == body["request_id"]
    assert answer_headers["Access-Control-Allow-Origin"] == "*"


def test_a_head_answer_has_the_gets_length_and_no_body_on_a_kept_alive_connection(local_server):
    connection = http.client.HTTPConnection(local_server.removeprefix("http://"), timeout=10)
    try:
        connection.request("GET", "/known")
        got = connection.getresponse()
        body = got.read()
        connection.request("HEAD", "/known")
        head = connection.getresponse()
        assert (head.status, head.read()) == (200, b"")
        assert head.getheader("Content-Length") == str(len(body)) == got.getheader("Content-Length")
        assert head.getheader("Content-Type") == got.getheader("Content-Type")
        # Had the HEAD carried a body, this answer would be read from its bytes.
        connection.request("GET", "/known")
        again = connection.getresponse()
        assert (again.status, again.read()) == (200, body)
    finally:
        connection.close()


def test_the_request_log_masks_tokens_codes_passwords_and_access_paths(local_server, capsys):
    """`make dev` prints each request line; stock chalice local printed the sign-in token, the
    push token, device codes, share passwords and access paths as sent."""
    secrets = ["signin-secret", "push-secret", "device-secret", "share-password", "access-secret"]
    for path in ["/known?token=signin-secret", "/known?project=demo&token=push-secret&limit=5",
                 "/known?device_code=device-secret", "/known?pw=share-password",
                 "/s/demo/~u.access-secret/index.html", "/s/demo/%7Eu.access-secret/"]:
        try:
            urllib.request.urlopen(f"{local_server}{path}", timeout=10).read()
        except urllib.error.HTTPError as error:
            error.read()
    logged = capsys.readouterr().err
    assert logged.count("GET /") == 6, logged
    assert not [secret for secret in secrets if secret in logged], logged
    assert "/known?project=demo&token=***&limit=5" in logged and "/s/demo/~u.***/index.html" in logged
