"""GET /s/<slug>/…: files, widget injection, headers, passwords; GET /widget.js."""
from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest

from chalicelib.store.models import Share
from tests.conftest import call, sign_in
from tests.test_shares import INDEX, PNG, make_pro, share_site, upload

ACCEPT_ANY = {"Accept": "*/*"}  # what browsers send for images, scripts and fonts


def get(client, path, headers=None):
    response = client.http.request("GET", path, headers={**ACCEPT_ANY, **(headers or {})})
    return response.status_code, response.body, response.headers


def site(client, token, files=None, **metadata):
    return share_site(client, token, metadata.pop("name", "Site"), files=files or [
        ("index.html", INDEX), ("css/site.css", b"h1{color:red}"), ("assets/img/logo.png", PNG),
        ("js/app.js", b"console.log('hi')"), ("img/icon.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>"),
        ("fonts/a.woff2", b"wOF2\x00\x01\xff"), ("docs/index.html", b"<p>docs</p>")], **metadata)


def test_share_root_redirects_a_browser_to_the_trailing_slash(client, user_token):
    body = site(client, user_token)
    navigation = {"Sec-Fetch-Dest": "document"}
    status, _, headers = get(client, f"/s/{body['slug']}", navigation)
    assert status == 302 and headers["Location"] == f"http://127.0.0.1:8000/s/{body['slug']}/"
    assert headers["Content-Type"] == "text/plain; charset=utf-8"  # an empty body, not JSON
    status, _, headers = get(client, f"/s/{body['slug']}?pw=abc", navigation)
    assert status == 302 and headers["Location"].endswith(f"/s/{body['slug']}/?pw=abc")
    # A browser without Fetch Metadata asks for HTML.
    assert get(client, f"/s/{body['slug']}", {"Accept": "text/html,*/*;q=0.8"})[0] == 302


def test_index_is_served_with_the_widget_injected(client, user_token):
    body = site(client, user_token)
    status, page, headers = get(client, f"/s/{body['slug']}/")
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    text = page.decode()
    tag = (f'<script src="http://127.0.0.1:8000/widget.js" data-endpoint="http://127.0.0.1:8000/spikes" '
           f'data-project="{body["share_id"]}"></script>')
    assert text.count("widget.js") == 1 and tag + "</body>" in text
    assert headers["Cache-Control"].startswith("no-cache")
    # The same page by share id.
    assert get(client, f"/s/{body['share_id']}/")[1] == page


def test_every_share_response_is_sandboxed(client, user_token):
    body = site(client, user_token)
    for path in ["/", "/css/site.css", "/assets/img/logo.png", "/img/icon.svg"]:
        status, _, headers = get(client, f"/s/{body['slug']}{path}")
        assert status == 200, path
        csp = headers["Content-Security-Policy"]
        assert csp.startswith("sandbox ") and "allow-scripts" in csp and "allow-same-origin" not in csp
        assert headers["X-Content-Type-Options"] == "nosniff" and headers["Referrer-Policy"] == "no-referrer"


@pytest.mark.parametrize("path,content_type", [
    ("css/site.css", "text/css; charset=utf-8"), ("js/app.js", "application/javascript; charset=utf-8"),
    ("img/icon.svg", "image/svg+xml; charset=utf-8"), ("assets/img/logo.png", "image/png"),
    ("fonts/a.woff2", "font/woff2"),
])
def test_files_come_back_with_their_content_type(client, user_token, path, content_type):
    body = site(client, user_token)
    status, _, headers = get(client, f"/s/{body['slug']}/{path}")
    assert (status, headers["Content-Type"]) == (200, content_type)
    assert headers["Cache-Control"] == "public, max-age=300" and headers["ETag"]


def test_binary_files_round_trip_intact(client, user_token):
    body = site(client, user_token)
    status, data, headers = get(client, f"/s/{body['slug']}/assets/img/logo.png")
    assert status == 200 and data == PNG
    status, data, headers = get(client, f"/s/{body['slug']}/fonts/a.woff2")
    assert status == 200 and data == b"wOF2\x00\x01\xff"


def test_binary_file_for_a_client_without_accept_is_redirected_to_s3(client, user_token):
    body = site(client, user_token)
    response = client.http.request("GET", f"/s/{body['slug']}/assets/img/logo.png")
    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).path.endswith(f"/shares/{body['share_id']}/assets/img/logo.png")
    status, data, _ = get(client, f"/s/{body['slug']}/assets/img/logo.png", {"Accept": "image/png"})
    assert status == 200 and data == PNG


def test_etag_revalidation_answers_304(client, user_token):
    body = site(client, user_token)
    _, _, headers = get(client, f"/s/{body['slug']}/css/site.css")
    status, data, _ = get(client, f"/s/{body['slug']}/css/site.css", {"If-None-Match": headers["ETag"]})
    assert status == 304 and data == b""


@pytest.mark.parametrize("path", ["assets/img/logo.png", "fonts/a.woff2"])
def test_a_binary_file_revalidates_to_an_empty_304(client, user_token, path):
    """Finding 95: a revalidated image or font (any reload after max-age) failed in the function."""
    body = site(client, user_token)
    etag = get(client, f"/s/{body['slug']}/{path}")[2]["ETag"]
    status, data, headers = get(client, f"/s/{body['slug']}/{path}", {"If-None-Match": etag})
    assert (status, data, headers["ETag"]) == (304, b"", etag)


def test_sub_folders_and_their_index(client, user_token):
    body = site(client, user_token)
    status, page, _ = get(client, f"/s/{body['slug']}/docs/")
    assert status == 200 and page.decode().startswith("<p>docs</p><script")  # no </body>: appended
    status, _, headers = get(client, f"/s/{body['slug']}/docs")
    assert status == 302 and headers["Location"].endswith(f"/s/{body['slug']}/docs/")


def test_deepest_routable_path_is_served(client, user_token):
    deep = "a/b/c/d/e/f/g/deep.css"
    body = site(client, user_token, files=[("index.html", INDEX), (deep, b"p{}")])
    status, data, _ = get(client, f"/s/{body['slug']}/{deep}")
    assert status == 200 and data == b"p{}"


def test_missing_share_and_missing_file_are_the_same_404(client, user_token):
    body = site(client, user_token)
    answers = []
    for path in [f"/s/{body['slug']}/nope.css", "/s/no-such-share/", "/s/no-such-share/a/b.css",
                 f"/s/{body['slug']}/css/nope/x.css"]:
        status, data, _ = call(client, "GET", path)
        assert status == 404, path
        data.pop("request_id")
        answers.append(data)
    assert all(answer == {"error": "Not found", "code": "NOT_FOUND"} for answer in answers)


@pytest.mark.parametrize("page,expected", [
    (b"<html><BODY>x</BODY></html>", "<html><BODY>x{tag}</BODY></html>"),
    (b"<body>a</body><!-- </body> -->b</body >", "<body>a</body><!-- </body> -->b{tag}</body >"),
    (b"<p>fragment</p>", "<p>fragment</p>{tag}"),
])
def test_widget_goes_before_the_last_body_end_once(client, user_token, page, expected):
    body = site(client, user_token, files=[("index.html", page)])
    _, served, _ = get(client, f"/s/{body['slug']}/")
    tag = re.search(r'<script src="[^"]*/widget\.js" data-endpoint[^>]*></script>', served.decode())
    assert served.decode() == expected.format(tag=tag.group(0) if tag else "")


UPSTREAM_PAGE = (b'<!doctype html><html><head><title>t</title></head><body><p>x</p>\n'
                 b'<script src="https://spikes.sh/widget.js" data-project="my-site" data-position="top-left" '
                 b"data-endpoint='https://spikes.sh/spikes?token=leaked' data-theme=light></script>\n</body></html>")


def test_a_pre_injected_widget_is_rerouted_here_with_a_storage_shim(client, user_token):
    """`spikes inject` wrote the upstream widget into the page: it keeps its script and its
    look, posts to this server under the share's id, and finds a Storage in the sandbox."""
    from chalicelib.services.share_html import STORAGE_SHIM
    body = site(client, user_token, files=[("index.html", UPSTREAM_PAGE)])
    text = get(client, f"/s/{body['slug']}/")[1].decode()
    assert text == (
        f'<!doctype html><html><head>{STORAGE_SHIM}<title>t</title></head><body><p>x</p>\n'
        f'<script src="https://spikes.sh/widget.js" data-position="top-left" data-theme=light '
        f'data-project="{body["share_id"]}" data-endpoint="http://127.0.0.1:8000/spikes"></script>\n</body></html>')
    assert "leaked" not in text and text.count("<script") == 2


def test_share_without_index_serves_its_only_page(client, user_token):
    body = site(client, user_token, files=[("mockup.html", b"<body>m</body>"), ("a.css", b"")])
    status, page, _ = get(client, f"/s/{body['slug']}/")
    assert status == 200 and page.startswith(b"<body>m")


def test_large_files_redirect_to_a_presigned_s3_url(client, user_token, env):
    env(MAX_SERVED_FILE_BYTES="1000")
    body = site(client, user_token, files=[("index.html", INDEX), ("big.png", b"\x89" * 2000)])
    status, _, headers = get(client, f"/s/{body['slug']}/big.png")
    assert status == 302
    location = urlsplit(headers["Location"])
    assert location.path.endswith(f"/shares/{body['share_id']}/big.png") and "Signature" in location.query


def test_widget_script(client):
    status, data, headers = get(client, "/widget.js")
    assert status == 200 and b"spikes-widget" in data
    assert headers["Content-Type"] == "application/javascript; charset=utf-8"
    assert "max-age" in headers["Cache-Control"] and headers["Access-Control-Allow-Origin"] == "*"


# --- password-protected shares ---------------------------------------------------------------

def protected(client, token):
    make_pro("owner@example.com")
    return site(client, token, password="open sesame")


def cookie_from(headers) -> str:
    return headers["Set-Cookie"].split(";", 1)[0]


def test_protected_share_asks_for_the_password(client, user_token):
    body = protected(client, user_token)
    status, page, headers = get(client, f"/s/{body['slug']}/", {"Accept": "text/html"})
    assert status == 401 and headers["Content-Type"].startswith("text/html")
    assert b'name="password"' in page and b"<h1>Hi</h1>" not in page
    status, data, _ = call(client, "GET", f"/s/{body['slug']}/css/site.css")
    assert (status, data["code"]) == (401, "AUTH_REQUIRED")


def test_correct_pw_query_serves_and_sets_a_share_scoped_cookie(client, user_token):
    body = protected(client, user_token)
    status, page, headers = get(client, f"/s/{body['slug']}/?pw=open%20sesame")
    assert status == 200 and b"<h1>Hi</h1>" in page
    assert headers["Cache-Control"] == "no-cache, private"
    attributes = [part.strip() for part in headers["Set-Cookie"].split(";")]
    assert f"Path=/s/{body['slug']}/" in attributes and "HttpOnly" in attributes
    assert "SameSite=Lax" in attributes and any(a.startswith("Max-Age=") for a in attributes)
    assert "Secure" not in attributes  # plain http (local); https bases get Secure
    status, data, headers = get(client, f"/s/{body['slug']}/assets/img/logo.png", {"Cookie": cookie_from(headers)})
    assert status == 200 and data == PNG and headers["Cache-Control"].startswith("private")


def test_password_form_post_sets_the_cookie_and_redirects(client, user_token):
    body = protected(client, user_token)
    response = client.http.request("POST", f"/s/{body['slug']}/", body=b"password=open+sesame",
                                   headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 303 and response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert urlsplit(response.headers["Location"]).path == f"/s/{body['slug']}/"
    status, page, _ = get(client, f"/s/{body['slug']}/", {"Cookie": cookie_from(response.headers)})
    assert status == 200 and b"<h1>Hi</h1>" in page


def test_wrong_passwords_and_forged_cookies_are_refused(client, user_token):
    body = protected(client, user_token)
    status, page, _ = get(client, f"/s/{body['slug']}/?pw=wrong", {"Accept": "text/html"})
    assert status == 401 and b"Wrong password" in page
    status, data, _ = call(client, "GET", f"/s/{body['slug']}/css/site.css?pw=wrong")
    assert (status, data["code"]) == (401, "AUTH_FAILED")
    _, _, headers = get(client, f"/s/{body['slug']}/?pw=open%20sesame")
    issued, expires, signature = cookie_from(headers).split("=", 1)[1].split(".")
    for forged in (f"spikes_unlock={issued}.{int(expires) + 999999}.{signature}",
                   f"spikes_unlock={int(issued) + 3600}.{expires}.{signature}"):
        assert get(client, f"/s/{body['slug']}/css/site.css", {"Cookie": forged})[0] == 401
    # A valid cookie of another share opens nothing here.
    other = site(client, user_token, name="Other", password="other pw")
    _, _, other_headers = get(client, f"/s/{other['slug']}/?pw=other%20pw")
    assert get(client, f"/s/{body['slug']}/css/site.css", {"Cookie": cookie_from(other_headers)})[0] == 401


def test_password_change_invalidates_cookies(client, user_token):
    body = protected(client, user_token)
    _, _, headers = get(client, f"/s/{body['slug']}/?pw=open%20sesame")
    cookie = cookie_from(headers)
    assert get(client, f"/s/{body['slug']}/css/site.css", {"Cookie": cookie})[0] == 200
    Share.get(f"share#{body['share_id']}").update(actions=[Share.password_version.add(1)])
    assert get(client, f"/s/{body['slug']}/css/site.css", {"Cookie": cookie})[0] == 401


def test_password_attempts_are_rate_limited_per_share_and_address(client, user_token):
    body = protected(client, user_token)
    for _ in range(5):
        assert get(client, f"/s/{body['slug']}/css/site.css?pw=guess")[0] == 401
    status, data, headers = call(client, "GET", f"/s/{body['slug']}/css/site.css?pw=open%20sesame")
    assert (status, data["code"]) == (429, "RATE_LIMIT") and int(headers["Retry-After"]) >= 1
    # Another share is unaffected.
    other = site(client, user_token, name="Other", password="x")
    assert get(client, f"/s/{other['slug']}/css/site.css?pw=x")[0] == 200


def test_protected_pending_and_public_shares_do_not_leak_each_other(client, user_token):
    public = site(client, user_token, name="Public")
    status, _, headers = get(client, f"/s/{public['slug']}/")
    assert status == 200 and "Set-Cookie" not in headers


def test_other_users_cannot_reach_a_share_through_the_api_but_viewers_can_view(client, user_token):
    body = site(client, user_token)
    other = sign_in(client, "other@example.com")
    assert call(client, "GET", f"/shares/{body['slug']}", token=other)[0] == 404
    assert get(client, f"/s/{body['slug']}/")[0] == 200


def test_uploading_an_html_file_under_a_weird_name_is_still_sandboxed(client, user_token):
    status, body, _ = upload(client, user_token, [("index.html", INDEX), ("evil.svg", b"<svg onload=alert(1)/>")],
                             {"name": "svg"})
    assert status == 201
    _, _, headers = get(client, f"/s/{body['slug']}/evil.svg")
    assert headers["Content-Security-Policy"].startswith("sandbox")


def access_root(page: bytes) -> str:
    """The <base href> a protected page gets: /s/<slug>/~u.<token>/ (path only)."""
    href = re.search(rb'<base href="([^"]+)">', page).group(1).decode()
    return urlsplit(href).path


def test_protected_page_carries_an_access_path_for_its_assets(client, user_token):
    body = protected(client, user_token)
    status, page, _ = get(client, f"/s/{body['slug']}/?pw=open%20sesame")
    assert status == 200 and page.startswith(b"<!doctype html><html><head><base href=")
    root = access_root(page)
    assert root.startswith(f"/s/{body['slug']}/~u.")
    # Without any cookie (third-party cookies blocked), relative asset URLs still load.
    status, data, headers = get(client, f"{root}assets/img/logo.png")
    assert status == 200 and data == PNG and headers["Cache-Control"].startswith("private")
    assert "Set-Cookie" not in headers
    status, data, _ = get(client, f"{root}css/site.css")
    assert status == 200 and data == b"h1{color:red}"
    # A page in a folder gets its folder as base.
    status, page, _ = get(client, f"{root}docs/index.html")
    assert status == 200 and access_root(page).endswith("/docs/")


def test_access_path_navigation_redirects_to_the_clean_url(client, user_token):
    body = protected(client, user_token)
    _, page, _ = get(client, f"/s/{body['slug']}/?pw=open%20sesame")
    root = access_root(page)
    status, _, headers = get(client, f"{root}docs/index.html", {"Sec-Fetch-Dest": "document"})
    assert status == 302 and urlsplit(headers["Location"]).path == f"/s/{body['slug']}/docs/index.html"
    assert headers["Set-Cookie"].startswith("spikes_unlock=")
    status, _, headers = get(client, root, {"Sec-Fetch-Dest": "document"})
    assert status == 302 and urlsplit(headers["Location"]).path == f"/s/{body['slug']}/"
    # A browser without Fetch Metadata asking for HTML is treated as navigating, too.
    status, _, headers = get(client, f"{root}docs/index.html", {"Accept": "text/html,*/*"})
    assert status == 302 and urlsplit(headers["Location"]).path == f"/s/{body['slug']}/docs/index.html"
    # A frame gets the clean URL too: its location.href is what the widget reports.
    for destination in ("iframe", "frame"):
        status, _, headers = get(client, f"{root}docs/index.html", {"Sec-Fetch-Dest": destination,
                                                                     "Accept": "text/html"})
        assert status == 302 and urlsplit(headers["Location"]).path == f"/s/{body['slug']}/docs/index.html"
        assert "~u." not in headers["Location"]


def test_forged_or_foreign_access_paths_are_refused(client, user_token):
    body = protected(client, user_token)
    _, page, _ = get(client, f"/s/{body['slug']}/?pw=open%20sesame")
    root = access_root(page)
    token = root.rstrip("/").rsplit("~u.", 1)[1]
    issued, expires, signature = token.split(".")
    forged = f"/s/{body['slug']}/~u.{issued}.{int(expires) + 3600}.{signature}/css/site.css"
    status, data, _ = call(client, "GET", forged)
    assert (status, data["code"]) == (401, "AUTH_REQUIRED")
    other = site(client, user_token, name="Other", password="x")
    assert get(client, f"/s/{other['slug']}/~u.{token}/css/site.css")[0] == 401
    public = site(client, user_token, name="Public")
    assert get(client, f"/s/{public['slug']}/~u.{token}/css/site.css")[0] == 404


def test_protected_share_hides_which_files_exist(client, user_token):
    body = protected(client, user_token)
    assert call(client, "GET", f"/s/{body['slug']}/nope.css")[0] == 401
    assert call(client, "GET", f"/s/{body['slug']}/css/site.css")[0] == 401
