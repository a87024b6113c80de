"""GET /dashboard and its modules: served from chalicelib/web/dashboard with a strict CSP."""
from __future__ import annotations

import re

import pytest

from chalicelib.api import dashboard
from chalicelib.web import WEB_DIR


def get(client, path):
    response = client.http.request("GET", path, headers={"Accept": "text/html"})
    return response.status_code, response.body.decode("utf-8"), response.headers


def test_the_page_loads_only_our_own_scripts_and_may_not_be_framed(client):
    status, body, headers = get(client, "/dashboard")
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    policy = headers["Content-Security-Policy"]
    nonce = re.search(r"script-src 'nonce-([A-Za-z0-9_-]{24})';", policy).group(1)
    assert "frame-ancestors 'none'" in policy and "'unsafe-inline'" not in policy
    # Uploads and large exports go to storage: the one other origin the page may talk to.
    connect = re.search(r"connect-src ([^;]+)", policy).group(1).split()
    assert connect[0] == "'self'" and len(connect) == 2 and connect[1].startswith(("http://", "https://"))
    assert headers["X-Frame-Options"] == "DENY" and headers["Referrer-Policy"] == "no-referrer"
    assert f'<script type="module" nonce="{nonce}" src="dashboard/app.js">' in body
    assert "<script>" not in body and "http" not in body.replace("http-equiv", "")  # nothing inline, no CDN


def test_only_the_pages_own_scripts_may_run_not_any_file_of_this_origin(client):
    """Shares put anyone's files on this origin (/s/...): 'self' would let one injected
    <script src="/s/x/steal.js"> read the session (docs/security.md, 161). Each answer has its
    own nonce, on every script and style the page names, and is never stored with it."""
    policies, bodies = [], []
    for _ in range(2):
        status, body, headers = get(client, "/dashboard")
        policies.append(headers["Content-Security-Policy"])
        bodies.append(body)
        assert headers["Cache-Control"] == "no-store"
    for policy, body in zip(policies, bodies):
        sources = dict(part.strip().split(" ", 1) for part in policy.split(";"))
        nonce = sources["script-src"]
        assert sources["style-src"] == nonce and re.fullmatch(r"'nonce-[A-Za-z0-9_-]{24}'", nonce)
        assert "'self'" not in sources["script-src"] + sources["style-src"]
        tags = re.findall(r"<(?:script|link rel=\"(?:stylesheet|modulepreload)\")[^>]*>", body)
        assert all(f'nonce="{nonce[7:-1]}"' in tag for tag in tags)
        # Every module is fetched with the nonce up front, so no import depends on a browser
        # passing the nonce on to the modules a module imports.
        named = {re.search(r'(?:src|href)="dashboard/([a-z]+\.(?:js|css))"', tag).group(1) for tag in tags}
        assert len(tags) == len(named) == len(dashboard.ASSETS)
    assert policies[0] != policies[1]


@pytest.mark.parametrize("path", ["/auth/device", "/auth/verify?token=no-such-link", "/docs", "/v1/docs"])
def test_the_pages_beside_it_run_only_their_own_scripts(client, path):
    """The magic link's page (it writes the session), the CLI's page and the API reference share
    the dashboard's origin with anyone's share files (docs/security.md, 162)."""
    status, body, headers = get(client, path)
    sources = dict(part.strip().split(" ", 1) for part in headers["Content-Security-Policy"].split(";"))
    nonce = re.fullmatch(r"'nonce-([A-Za-z0-9_-]{24})'", sources["script-src"]).group(1)
    assert headers["Cache-Control"] == "no-store" and sources["frame-ancestors"] == "'none'"
    tags = re.findall(r"<script[^>]*>", body)
    assert all(f'nonce="{nonce}"' in tag for tag in tags) and (tags or path.startswith("/auth/verify"))
    assert nonce not in get(client, path)[2]["Content-Security-Policy"]


def test_a_protected_shares_password_form_keeps_the_shares_sandbox(client, user_token):
    from chalicelib.api.serving import SANDBOX
    from tests.test_serving import protected
    created = protected(client, user_token)
    response = client.http.request("GET", f"/s/{created['slug']}/", headers={"Accept": "text/html"})
    assert response.status_code == 401 and response.headers["Content-Security-Policy"] == SANDBOX
    assert b'name="password"' in response.body


def test_every_module_the_page_imports_is_served_as_javascript(client):
    imported = {"app.js", "dashboard.css"}
    for path in sorted((WEB_DIR / "dashboard").glob("*.js")):
        imported |= set(re.findall(r"from '\./([a-z]+\.js)'", path.read_text()))
        imported |= set(re.findall(r"import\('\./([a-z]+\.js)'\)", path.read_text()))
    on_disk = {path.name for path in (WEB_DIR / "dashboard").iterdir() if path.suffix in (".js", ".css")}
    assert imported == on_disk == set(dashboard.ASSETS)  # nothing missing, nothing unused
    for name in sorted(imported):
        status, body, headers = get(client, f"/dashboard/{name}")
        assert status == 200, name
        assert headers["Content-Type"].startswith("text/css" if name.endswith(".css") else "text/javascript")
        assert headers["X-Content-Type-Options"] == "nosniff" and body.strip()


@pytest.mark.parametrize("name", ["index.html", "..%2Fwidget.js", "nope.js", "dashboard.css.map"])
def test_anything_else_under_dashboard_is_404_in_the_envelope(client, name):
    response = client.http.request("GET", f"/dashboard/{name}")
    assert response.status_code == 404 and b'"code":"NOT_FOUND"' in response.body


def test_the_dashboard_is_a_page_not_a_versioned_api_path(client):
    assert client.http.request("GET", "/v1/dashboard").status_code == 404


def test_the_dashboard_uses_only_the_public_api(client):
    """Every path the modules call exists as a route of the app (no private back door)."""
    from app import app
    source = "\n".join(path.read_text() for path in (WEB_DIR / "dashboard").glob("*.js"))
    called = set(re.findall(r"(?:api|apiWithStatus|download)\('(?:GET|POST|PATCH|DELETE)?',?\s*[`']([^`']+)[`']", source))
    called |= set(re.findall(r"(?:download|apiPage)\('([^']+)'", source))
    called |= set(re.findall(r"goTo\('([^']+)'", source))
    assert {"/auth/login", "/shares/uploads", "/spikes/export", "/exports", "/billing/checkout", "/auth/api-keys"} <= called
    # The catch-all routes (every segment a variable) answer 404: they do not count.
    real = [path for path in app.routes if any(part and not part.startswith("{") for part in path.split("/"))]
    routes = [re.compile("^" + re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(path)) + "$") for path in real]
    for path in called:
        concrete = re.sub(r"\$\{[^}]+\}", "x", path)
        assert any(route.match(concrete) for route in routes), path
