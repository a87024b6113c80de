"""HEAD /s/<slug>/… and HEAD /widget.js answer what the GET answers (link checkers, `curl -I`,
media probes and CDNs send HEAD). The function returns the GET's answer, body included: API
Gateway takes Content-Length from it and sends no body (tests/test_devserver_routes.py checks
that `make dev`'s server does the same)."""
from __future__ import annotations

import re

import pytest

from tests.conftest import call
from tests.test_serving import get, protected, site

WRITES = {"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"}


def both(client, path, headers=None):
    """The GET's and the HEAD's answers, each as (status, headers, body), under one request id
    (an error envelope carries it)."""
    answers = []
    for method in ("GET", "HEAD"):
        response = client.http.request(method, path, headers={"Accept": "*/*", "X-Request-Id": "same-request-id",
                                                               **(headers or {})})
        # The password form carries a nonce new in every answer (chalicelib/api/pages.py).
        body = re.sub(rb'nonce="[^"]*"', b"nonce", response.body)
        answers.append((response.status_code, dict(response.headers), body))
    return answers


@pytest.mark.parametrize("path,headers,status", [
    ("/s/{slug}/", {}, 200),                                                  # a page, widget injected
    ("/s/{slug}", {}, 200),                                                   # the unslashed root, with <base>
    ("/s/{slug}", {"Sec-Fetch-Dest": "document"}, 302),                       # ... a browser is redirected
    ("/s/{slug}/css/site.css", {}, 200),
    ("/s/{slug}/assets/img/logo.png", {}, 200),                               # binary, base64 in the answer
    ("/s/{slug}/assets/img/logo.png", {"Accept": "text/html"}, 302),          # no binary Accept: to S3
    ("/s/{slug}/docs", {}, 302),                                              # a folder: to its slash
    ("/s/{slug}/nope.css", {}, 404),                                          # the envelope's status
    ("/s/no-such-share/", {}, 404),
])
def test_head_answers_what_get_answers(client, user_token, path, headers, status):
    slug = site(client, user_token)["slug"]
    got, head = both(client, path.format(slug=slug), headers)
    assert got[0] == status
    assert head == got
    if status == 200:
        assert head[1]["Content-Security-Policy"].startswith("sandbox") and head[1]["ETag"]


def test_head_revalidation_answers_304_like_get(client, user_token):
    slug = site(client, user_token)["slug"]
    etag = get(client, f"/s/{slug}/css/site.css")[2]["ETag"]
    got, head = both(client, f"/s/{slug}/css/site.css", {"If-None-Match": etag})
    assert got[0] == 304 and head == got


def test_head_of_a_protected_share_is_refused_like_get(client, user_token):
    slug = protected(client, user_token)["slug"]
    got, head = both(client, f"/s/{slug}/", {"Accept": "text/html"})
    assert got[0] == 401 and got[1]["Content-Type"].startswith("text/html") and head == got  # the form
    got, head = both(client, f"/s/{slug}/css/site.css")
    assert got[0] == 401 and head == got  # the envelope


@pytest.mark.parametrize("path", ["/widget.js", "/v1/widget.js"])
def test_head_of_the_widget_script(client, path):
    got, head = both(client, path)
    assert got[0] == 200 and head == got


def test_head_writes_nothing(client, user_token, dynamodb_calls):
    slug = site(client, user_token)["slug"]
    dynamodb_calls.clear()
    for path in (f"/s/{slug}/", f"/s/{slug}/assets/img/logo.png", f"/s/{slug}/nope.css"):
        client.http.request("HEAD", path, headers={"Accept": "*/*"})
    assert dynamodb_calls and not WRITES & set(dynamodb_calls)


def test_head_is_in_the_allow_list_of_share_routes(client, user_token):
    slug = site(client, user_token)["slug"]
    status, data, headers = call(client, "DELETE", f"/s/{slug}/")
    assert status == 405 and headers["Allow"] == "GET, HEAD, POST"
