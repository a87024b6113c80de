"""The hostile-input corpus (docs/security.md): every route, anonymous and signed in, against a
list of bad inputs (nested, oversized, wrong types, unicode edge cases, NUL bytes, lone
surrogates, huge numbers, forged cursors and tokens, header injection). Whatever the route
does with them, the answer is never a 5xx, and every 4xx is the error envelope."""
from __future__ import annotations

import json
import re
from typing import Dict, List, Optional, Tuple


from tests.conftest import sign_in

NESTED = b'{"a":' + b"[" * 20000 + b"]" * 20000 + b"}"
HUGE_INT = "9" * 5000
BODIES: List[Optional[bytes]] = [
    NESTED,
    b'{"comments":"' + b"x" * (80 * 1024) + b'"}',                       # over the JSON size cap
    b"[]", b'"just a string"', b"null", b"12",
    json.dumps({"type": 5, "projectKey": ["a"], "email": {"a": 1}, "login_token": 7, "files": "x",
                "resolved": "maybe", "password": 12, "name": {"x": 1}, "everywhere": "yes",
                "user_code": None, "approve": "sure"}).encode(),
    json.dumps({"type": "page", "projectKey": "a\u0000b", "email": "a\u0000@example.com",
                "comments": "\u0000" * 10, "login_token": "\u0000", "name": "\u0000"}).encode(),
    b'{"type":"page","projectKey":"\\ud800","email":"\\udfff@example.com","comments":"\\ud83d",'
    b'"login_token":"\\ud800","name":"\\ud800","password":"\\ud800"}',            # lone surrogates
    b'{"type":"page","projectKey":"\xff\xfe","email":"\xc0\xaf"}',                   # invalid UTF-8
    b'{"type":"page","projectKey":"x","viewport":{"width":1e999,"height":' + HUGE_INT.encode() + b'},'
    b'"boundingBox":{"x":-1e999,"y":NaN,"width":Infinity,"height":1}}',
    b"\x00" * 200,
    json.dumps({"type": "element", "projectKey": "\u202etxt.exe", "selector": "\U0001F600" * 500,
                "reviewer": {"id": "\ufeff", "name": "\u0301" * 300, "email": "x" * 300},
                "files": [{"path": "../../etc/passwd", "size": -1}, {"path": "a\u0000.html", "size": 10 ** 30}],
                "name": "\u200b", "slug": "../x", "webhook_url": "http://169.254.169.254/"}).encode(),
]
QUERIES = [
    "cursor=abc.%C3%A9%C3%A9&limit=" + HUGE_INT[:60] + "&project=%00&rating=%F0%9F%98%80&resolved=maybe",
    "cursor=eyJzIjoieCJ9.AAAA&token=%C3%A9&email=%ED%A0%80%40x.co&device_code=%00&format=%00&code=%00"
    "&poll_token=" + "a" * 3000 + "&password=%ED%A0%80",
    "project=" + "a" * 3000 + "&limit=-1&page=%00&reviewer=" + "%F0%9F%98%80" * 200,
]
PATH_VALUES = ["%00", "a" * 3000, "%ED%A0%80", "..%2F..%2Fetc%2Fpasswd", "%E2%80%AE", "sh_zzzzzzzzzzzz",
               "~u.%C2%B2.x", "spk_" + "z" * 26]
HEADERS: List[Dict[str, str]] = [
    {"Authorization": "Bearer \u00e9\u00e9"},
    {"Authorization": "Bearer " + "a" * 5000},
    {"Authorization": "Bearer sk_spikes_forgedforgedforgedforged"},
    {"Authorization": "Basic eHl6Onh5eg=="},
    {"X-API-Key": "sk_spikes_\u00e9"},
    {"Cookie": "spikes_unlock=\u00b2.abc; spikes_unlock=1.\u00e9; =; ;;"},
    {"X-Request-Id": "abcdefgh\r\nSet-Cookie: injected=1"},
    {"Content-Type": "multipart/form-data; boundary="},
    {"Content-Type": "multipart/form-data; boundary=" + "-" * 5000},
    {"X-Share-Password": "\u00e9" * 1000, "Accept": "text/html", "Sec-Fetch-Dest": "iframe"},
    {"If-None-Match": "\u00e9" * 100, "Accept": "\x00"},
]


# Routes that end the session they are called with: sent last, or every route after them would
# only ever see a revoked token (they did, when the corpus went in alphabetical order).
SESSION_ENDING = {("POST", "/auth/logout"), ("POST", "/auth/rotate-token")}


def _routes(app) -> List[Tuple[str, str]]:
    routes = []
    for path, methods in app.routes.items():
        # /v1 repeats every route; one depth of /s/{slug}/… stands for the others.
        if path.startswith("/v1/") or re.search(r"\{p[2-9]\}", path):
            continue
        routes += [(method, path) for method in methods if method != "OPTIONS"]
    return sorted(routes, key=lambda route: (route in SESSION_ENDING, route))


def _fill(path: str, value: str) -> str:
    return re.sub(r"\{[^}]+\}", value, path)


def _problem(method: str, path: str, response) -> Optional[str]:
    status = response.status_code
    body = response.body or b""
    content_type = response.headers.get("Content-Type", "")
    try:
        data = json.loads(body) if body and content_type.startswith("application/json") else None
    except ValueError:
        data = None
    if status >= 500 and not (data and data.get("code") == "BILLING_NOT_CONFIGURED"):
        return f"{method} {path[:80]} -> {status} {body[:160]!r}"
    if status >= 400 and content_type.startswith("application/json"):
        if not (isinstance(data, dict) and data.get("code") and data.get("error") and data.get("request_id")):
            return f"{method} {path[:80]} -> {status} without the envelope: {body[:160]!r}"
    if "injected" in str(response.headers):
        return f"{method} {path[:80]} echoed an injected header"
    return None


def test_every_route_answers_every_hostile_input_without_a_5xx(client, env):
    # Rate limits would answer 429 before most inputs reach the parsers: lift them here.
    env(**{name: "1000000" for name in ("RATE_SPIKES_PER_MINUTE", "RATE_SHARES_PER_MINUTE", "RATE_PASSWORD_PER_MINUTE",
                                        "RATE_PASSWORD_PER_SHARE_PER_MINUTE", "RATE_LOGIN_PER_ADDRESS", "RATE_LOGIN_PER_IP", "RATE_POLL_PER_MINUTE",
                                        "RATE_VERIFY_PER_MINUTE", "RATE_SIGN_IN_MAILS_PER_HOUR")})
    sent, problems = send_corpus(client, sign_in(client, "corpus@example.com"))
    assert sent > 1000
    assert problems == [], f"{len(problems)} of {sent} requests misbehaved:\n" + "\n".join(problems[:40])


def send_corpus(client, token: str) -> Tuple[int, List[str]]:
    """Every route, anonymously and with ``token``, against every bad input: (requests sent,
    the answers that misbehaved). Also run by the reliability suite, on DynamoDB Local."""
    from app import app
    problems, sent = [], 0
    for method, route in _routes(app):
        cases: List[Tuple[str, Optional[bytes], Dict[str, str]]] = []
        for value in PATH_VALUES:
            cases.append((_fill(route, value), None, {}))
        base = _fill(route, "corpus-probe")
        for query in QUERIES:
            cases.append((f"{base}?{query}", None, {}))
        if method in ("POST", "PUT", "PATCH", "DELETE"):
            cases += [(base, body, {"Content-Type": "application/json"}) for body in BODIES]
        cases += [(base, BODIES[6] if method != "GET" else None, headers) for headers in HEADERS]
        for path, body, headers in cases:
            for auth in (None, token):
                all_headers = dict(headers)
                if auth and "Authorization" not in all_headers:
                    all_headers["Authorization"] = f"Bearer {auth}"
                response = client.http.request(method, path, headers=all_headers, body=body)
                sent += 1
                problem = _problem(method, path, response)
                if problem:
                    problems.append(problem)
    return sent, problems
