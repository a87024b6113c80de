"""Bodies held to Lambda's answer limit are measured as the runtime writes the answer: JSON, in
which the Python 3.11 runtime escapes every non-ASCII character (docs/security.md, 92)."""
from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

from chalicelib import lambda_answer
from tests.test_serving import get, site
from tests.test_spikes import PAGE_SPIKE, post

JAPANESE = "日本語のコメント"


def test_weight_is_what_the_runtime_writes():
    """The runtime's marshaller is json.dumps with ASCII escapes on Python 3.11 (awslambdaric's
    lambda_runtime_marshaller: ensure_ascii=False only from the python3.12 runtime on)."""
    for body in ("plain", 'quote " and \\ back\nslash', "é" * 10, JAPANESE, "😀 emoji"):
        assert lambda_answer.weight(body) == len(json.dumps({"body": body})) - len(json.dumps({"body": ""}))
    assert lambda_answer.weight("é") == 6 and len("é".encode("utf-8")) == 2  # three times its UTF-8
    assert lambda_answer.weight("😀") == 12
    assert not lambda_answer.too_heavy("x" * 100, limit=100) and lambda_answer.too_heavy("é" * 20, limit=100)


def test_an_export_heavier_in_the_answer_than_in_utf8_is_staged_in_s3(client, monkeypatch):
    from chalicelib.services import exports
    for i in range(3):
        post(client, {**PAGE_SPIKE, "id": f"jp{i}", "comments": JAPANESE * 20})
    inline = client.http.get("/spikes/export?project=my-project&format=jsonl")
    assert inline.status_code == 200
    utf8, weight = len(inline.body), lambda_answer.weight(inline.body.decode("utf-8"))
    assert weight > utf8 * 1.5
    # A limit the UTF-8 bytes are under and the answer is over: before, answered inline (and on
    # AWS, at the real limit, a failed function: 502).
    monkeypatch.setattr(exports, "MAX_INLINE_BYTES", (utf8 + weight) // 2)
    response = client.http.get("/spikes/export?project=my-project&format=jsonl")
    assert response.status_code == 303 and "exports/" in response.headers["Location"]


def test_a_page_heavier_in_the_answer_than_the_limit_is_handed_out_by_s3(client, user_token, monkeypatch):
    """A page of Japanese text well under the served-file limit in UTF-8 can weigh twice that in
    the answer; over Lambda's limit the function failed (502). It goes the way of a file over
    the size limit: a short-lived S3 link, a document as a download (never rendered there)."""
    japanese = f"<html><body><p>{JAPANESE * 1000}</p></body></html>".encode("utf-8")
    ascii_page = b"<html><body><p>" + b"x" * len(japanese) + b"</p></body></html>"
    body = site(client, user_token, files=[("index.html", japanese), ("ascii.html", ascii_page)])
    limit = len(japanese) * 3 // 2  # over the page's UTF-8 bytes (and the widget), under its weight
    monkeypatch.setattr(lambda_answer, "MAX_BODY_WEIGHT", limit)
    status, _, headers = get(client, f"/s/{body['slug']}/")
    assert status == 302
    query = parse_qs(urlsplit(headers["Location"]).query)
    assert query.get("response-content-type") == ["application/octet-stream"]
    status, page, _ = get(client, f"/s/{body['slug']}/ascii.html")  # the same size in ASCII: served
    assert status == 200 and b"widget.js" in page
