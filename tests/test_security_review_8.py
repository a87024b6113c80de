"""The eighth review (docs/security.md, "The eighth review"): the share serving, listing and
mail modules that had gone longest without one. Each test failed before its fix."""
from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

from tests.conftest import call
from tests.test_serving import cookie_from, get, site
from tests.test_shares import INDEX, make_pro

NAVIGATION = {"Sec-Fetch-Dest": "document", "Accept": "text/html"}


# --- A share's redirects and <base> keep odd folder names one path ----------------------------

ODD_FOLDERS = {"a#b": "a%23b", "a?b": "a%3Fb", "100%": "100%25", "日本": "%E6%97%A5%E6%9C%AC"}


def test_a_folder_redirect_keeps_odd_names_in_the_path(client, user_token):
    """`#`, `?` and `%` in a folder name made its redirect point elsewhere (a fragment, a query,
    an escape), and a non-ASCII name put raw non-ASCII in the Location header, which the local
    server cannot write (the answer was dropped)."""
    files = [("index.html", INDEX)] + [(f"{name}/index.html", f"<p>{name}</p>".encode()) for name in ODD_FOLDERS]
    body = site(client, user_token, files=files)
    for name, encoded in ODD_FOLDERS.items():
        status, _, headers = get(client, f"/s/{body['slug']}/{encoded}", NAVIGATION)
        location = headers["Location"]
        assert status == 302 and location.isascii(), (name, location)
        assert urlsplit(location).path == f"/s/{body['slug']}/{encoded}/" and "#" not in location, location
        status, page, _ = get(client, urlsplit(location).path)
        assert status == 200 and page.decode().startswith(f"<p>{name}</p>"), name


def test_a_protected_shares_redirects_and_base_keep_odd_names_in_the_path(client, user_token):
    make_pro("owner@example.com")
    files = [("index.html", INDEX), ("a#b/page.html", b"<head></head><p>hash</p>"),
             ("日本/page.html", b"<head></head><p>jp</p>")]
    body = site(client, user_token, name="Odd", files=files, password="open sesame")
    slug = body["slug"]
    # The form's post/redirect/get lands on the page it was posted to.
    response = client.http.request("POST", f"/s/{slug}/%E6%97%A5%E6%9C%AC/page.html", body=b"password=open+sesame",
                                   headers={"Content-Type": "application/x-www-form-urlencoded"})
    location = response.headers["Location"]
    assert response.status_code == 303 and location.isascii(), location
    assert urlsplit(location).path == f"/s/{slug}/%E6%97%A5%E6%9C%AC/page.html"
    cookie = cookie_from(response.headers)
    # A page in such a folder gets a <base> that is that folder, under the access path.
    status, page, _ = get(client, f"/s/{slug}/a%23b/page.html", {"Cookie": cookie})
    assert status == 200
    base = re.search(rb'<base href="([^"]+)">', page).group(1).decode()
    assert "#" not in base and urlsplit(base).path.endswith("/a%23b/"), base
    # Followed under the access path, a navigation is sent to the clean URL of the same page.
    status, _, headers = get(client, urlsplit(base).path + "page.html", NAVIGATION)
    assert status == 302 and urlsplit(headers["Location"]).path == f"/s/{slug}/a%23b/page.html"


# --- No XML document is handed to S3 to render, whatever its size ----------------------------

XHTML = b'<html xmlns="http://www.w3.org/1999/xhtml"><body><script>alert(document.domain)</script></body></html>'


def test_a_small_xml_document_is_handed_to_s3_only_as_a_download(client, user_token):
    """A request whose Accept names no binary type (curl, a script) is sent to S3 for a file
    that is not text: for XHTML or an RSS feed, a presigned link that S3 answered with the
    document's own type, so whoever was sent that link ran its script, unsandboxed, on the
    bucket's origin (finding 16's hole, below the size limit)."""
    body = site(client, user_token, files=[("index.html", INDEX), ("evil.xhtml", XHTML), ("feed.rss", XHTML),
                                           ("logo.webp", b"RIFF\x00\x00WEBP")])
    for path in ("evil.xhtml", "feed.rss"):
        response = client.http.request("GET", f"/s/{body['slug']}/{path}")
        assert response.status_code == 302, path
        query = parse_qs(urlsplit(response.headers["Location"]).query)
        assert query.get("response-content-disposition") == ["attachment"], path
        assert query.get("response-content-type") == ["application/octet-stream"], path
    # Other files keep a plain link (an image stays an image).
    response = client.http.request("GET", f"/s/{body['slug']}/logo.webp")
    assert response.status_code == 302 and "response-content-disposition" not in response.headers["Location"]


# --- A page's own widget.js does not take the feedback widget's place --------------------------

def test_a_pages_own_script_named_widget_js_does_not_replace_the_feedback_widget(client, user_token):
    """Any script whose src ended in /widget.js was taken for a Spikes widget: a mockup's own
    js/widget.js, or a chat vendor's, got the share's routing attributes and the page got no
    feedback widget at all (a src of plain widget.js, without a slash, did get one)."""
    own = b'<head></head><body><script src="js/widget.js"></script></body>'
    vendor = b'<body><script src="https://wchat.freshchat.com/js/widget.js" async></script></body>'
    body = site(client, user_token, files=[("index.html", own), ("chat.html", vendor), ("js/widget.js", b"//")])
    for path, script in (("", 'src="js/widget.js"'), ("chat.html", 'src="https://wchat.freshchat.com/js/widget.js"')):
        text = get(client, f"/s/{body['slug']}/{path}")[1].decode()
        assert f"<script {script}" in text and "<script src=\"http://127.0.0.1:8000/widget.js\" " in text, text
        assert text.count("data-project") == 1 and "localStorage" not in text, text  # no shim: ours needs none


def test_the_upstream_widget_in_its_other_spellings_is_rerouted_not_doubled(client, user_token):
    """Upstream's own snippets name the widget spikes.js (its README), give it only a
    data-endpoint (its self-host instructions, with a token in the URL, src a bare widget.js),
    or none (a tag loading spikes.sh's widget as it is): each is the upstream widget, which
    would post elsewhere, so it is rerouted to this share, and no second widget is added."""
    pages = {
        "readme.html": b'<body><script src="https://spikes.sh/spikes.js" data-project="my-app"></script></body>',
        "selfhost.html": b'<body><script src="widget.js" data-endpoint="https://p.example.workers.dev/spikes?token=t0k"'
                         b'></script></body>',
        "bare.html": b'<body><script src="https://spikes.sh/widget.js"></script></body>',
    }
    body = site(client, user_token, files=list(pages.items()))
    for path in pages:
        text = get(client, f"/s/{body['slug']}/{path}")[1].decode()
        assert "<script src=\"http://127.0.0.1:8000/widget.js\"" not in text, text  # not doubled
        assert f'data-project="{body["share_id"]}" data-endpoint="http://127.0.0.1:8000/spikes"' in text, text
        assert text.count("data-project") == 1 and "t0k" not in text and "localStorage" in text, text


# --- A share's password in the address a reviewer was on is not stored with the feedback -------

def test_a_shares_password_in_a_spikes_url_is_not_stored(client, user_token):
    """Opened as `/s/<slug>/?pw=<password>` (the clients' way), a protected page keeps that
    address, and the widget reports it with every spike: the password was stored in the
    feedback, shown in the dashboard, exports and webhook events, and listed to everyone once
    the owner made the share public."""
    make_pro("owner@example.com")
    body = site(client, user_token, name="Locked", password="open sesame")
    address = f"http://127.0.0.1:8000/s/{body['slug']}/docs/?x=1&pw=open%20sesame&p%77=open+sesame#top"
    status, created, _ = call(client, "POST", "/spikes", {"type": "page", "projectKey": body["share_id"],
                                                          "url": address, "page": f"/s/{body['slug']}/?pw=open"})
    assert status == 201, created
    status, stored, _ = call(client, "GET", f"/spikes/{created['id']}", token=user_token)
    assert status == 200
    assert stored["url"] == f"http://127.0.0.1:8000/s/{body['slug']}/docs/?x=1#top"
    assert stored["page"] == f"/s/{body['slug']}/"


# --- A share's files that S3 did not delete are not forgotten ----------------------------------

def test_files_s3_did_not_delete_fail_the_deletion_until_they_are_gone(client, user_token, monkeypatch):
    """DeleteObjects answers 200 and lists the keys it could not delete (throttled, an internal
    error) in `Errors`: they were ignored, the deletion finished, and the files stayed in the
    bucket for good, which no retry or job would look at again."""
    from chalicelib import deps
    from tests.test_shares import s3_keys
    body = site(client, user_token, files=[("index.html", INDEX), ("a.css", b"a"), ("b.css", b"b")])
    s3 = deps.s3_client()
    real = s3.delete_objects

    def partly(**kwargs):
        objects = kwargs["Delete"]["Objects"]
        kept = next(item for item in objects if item["Key"].endswith("/a.css"))
        real(**{**kwargs, "Delete": {**kwargs["Delete"], "Objects": [o for o in objects if o is not kept]}})
        return {"Errors": [{"Key": kept["Key"], "Code": "InternalError", "Message": "We encountered an internal error"}]}
    monkeypatch.setattr(s3, "delete_objects", partly)
    status, _, headers = call(client, "DELETE", f"/shares/{body['share_id']}", token=user_token)
    assert status == 503 and "Retry-After" in headers
    assert s3_keys(f"shares/{body['share_id']}/") == [f"shares/{body['share_id']}/a.css"]
    monkeypatch.setattr(s3, "delete_objects", real)
    assert call(client, "DELETE", f"/shares/{body['share_id']}", token=user_token)[0] == 200
    assert s3_keys(f"shares/{body['share_id']}/") == []


# --- A page in a legacy encoding keeps its letters ---------------------------------------------

def test_a_page_not_in_utf8_keeps_its_letters(client, user_token):
    """Text files are sent as UTF-8 (the answer's charset, which browsers put before the page's
    own <meta charset>), and were decoded as UTF-8 whatever they were in: a page saved in
    windows-1252 or Latin-1 (older editors, Word's "Save as Web Page") showed � for every é, ü,
    £ or €, and so did its stylesheet's."""
    page = '<html><head><meta charset="windows-1252"></head><body><p>Café à 5 €</p></body></html>'
    body = site(client, user_token, files=[
        ("index.html", page.encode("cp1252")), ("plain.html", "<p>Grüße</p>".encode("latin-1")),
        ("site.css", '@charset "iso-8859-1"; p:after{content:"é"}'.encode("latin-1")),
        ("ru.html", '<meta http-equiv="Content-Type" content="text/html; charset=koi8-r"><p>Привет</p>'.encode("koi8-r")),
        # UTF-8 with one stray byte stays UTF-8, as before (and as browsers read it).
        ("stray.html", "<p>日本 café</p>".encode() + b"\xff")])
    for path, expected in (("", "<p>Café à 5 €</p>"), ("plain.html", "<p>Grüße</p>"),
                           ("site.css", 'content:"é"'), ("ru.html", "<p>Привет</p>"),
                           ("stray.html", "<p>日本 café</p>\ufffd")):
        status, served, headers = get(client, f"/s/{body['slug']}/{path}")
        assert status == 200 and headers["Content-Type"].endswith("; charset=utf-8")
        assert expected in served.decode("utf-8"), (path, served)


# --- Other cookies in the header do not hide the unlock cookie ---------------------------------

def test_the_unlock_cookie_is_read_whatever_other_cookies_come_with_it(client, user_token):
    """The standard library's cookie parser gives up on the whole header when one cookie is not
    to its taste (a JSON value, a space): on a custom domain whose parent sets such a cookie,
    the unlock cookie was never read, and every page of a protected share showed the password
    form again, right after the form had been answered."""
    make_pro("owner@example.com")
    body = site(client, user_token, name="Locked", password="open sesame")
    response = client.http.request("POST", f"/s/{body['slug']}/", body=b"password=open+sesame",
                                   headers={"Content-Type": "application/x-www-form-urlencoded"})
    unlock = cookie_from(response.headers)
    for others in ('consent={"ads":false,"stats":true}', "theme=dark mode", 'half="open'):
        for header in (f"{others}; {unlock}", f"{unlock}; {others}"):
            status, page, _ = get(client, f"/s/{body['slug']}/", {**NAVIGATION, "Cookie": header})
            assert status == 200 and b"<h1>Hi</h1>" in page, header
    assert get(client, f"/s/{body['slug']}/", {**NAVIGATION, "Cookie": 'consent={"a":1}'})[0] == 401


# --- A revalidated page is the page this version serves ---------------------------------------

def test_a_page_revalidated_after_an_upgrade_is_the_page_it_serves_now(client, user_token, monkeypatch):
    """Pages are `no-cache` and carried the stored file's ETag, so a browser revalidating after
    an upgrade that changed what is injected (or how a file is decoded) got `304` and kept the
    old page for as long as the file did not change: a fix to injection never reached it."""
    from chalicelib.services import share_html
    body = site(client, user_token, files=[("index.html", INDEX), ("site.css", "p{content:'é'}".encode("latin-1"))])
    tags = {}
    for path in ("", "site.css"):
        status, _, headers = get(client, f"/s/{body['slug']}/{path}")
        assert status == 200
        tags[path] = headers["ETag"]
        assert get(client, f"/s/{body['slug']}/{path}", {"If-None-Match": tags[path]})[0] == 304
    monkeypatch.setattr(share_html, "widget_tag", lambda base_url, share_id: '<script src="/widget-v2.js"></script>')
    status, page, _ = get(client, f"/s/{body['slug']}/", {"If-None-Match": tags[""]})
    assert status == 200 and b"widget-v2.js" in page
    # What is sent is what the ETag names, for a file whose stored bytes are not what is sent too.
    _, sent, headers = get(client, f"/s/{body['slug']}/site.css")
    assert sent.decode("utf-8") == "p{content:'é'}" and headers["ETag"] == tags["site.css"]


# --- A page opened with ?pw= goes on without it ----------------------------------------------

def test_a_page_opened_with_the_password_in_its_address_goes_on_without_it(client, user_token):
    """The form's answer drops the password from the address (post/redirect/get); `?pw=`, the
    clients' way, left it in the address bar, the history and the address the widget reports."""
    make_pro("owner@example.com")
    body = site(client, user_token, name="Locked", password="open sesame")
    slug = body["slug"]
    status, _, headers = get(client, f"/s/{slug}/docs/?x=1&pw=open%20sesame", NAVIGATION)
    assert status == 303 and "pw" not in headers["Location"]
    location = urlsplit(headers["Location"])
    assert (location.path, location.query) == (f"/s/{slug}/docs/", "x=1")
    unlock = cookie_from(headers)
    status, page, _ = get(client, f"{location.path}?{location.query}", {**NAVIGATION, "Cookie": unlock})
    assert status == 200 and b"<p>docs</p>" in page
    # Opened that way again with the cookie: the same, without asking for the password again.
    status, _, headers = get(client, f"/s/{slug}/?pw=open%20sesame", {**NAVIGATION, "Cookie": unlock})
    assert status == 303 and urlsplit(headers["Location"]).path == f"/s/{slug}/" and "Set-Cookie" not in headers
    # Programs (no navigation) get the page itself, as the clients expect; a wrong password the form.
    assert get(client, f"/s/{slug}/?pw=open%20sesame")[0] == 200
    assert get(client, f"/s/{slug}/?pw=wrong", NAVIGATION)[0] == 401


# --- A page full of unclosed tags is served like any other -------------------------------------

UNCLOSED = "".join(f"<{name} " for name in ("script", "base", "head", "html"))


def test_a_page_full_of_unclosed_tags_is_served_like_any_other(client, user_token):
    make_pro("owner@example.com")
    unclosed = UNCLOSED * 1000
    public = site(client, user_token, name="Public", files=[("index.html", unclosed.encode())])
    locked = site(client, user_token, name="Locked", files=[("index.html", unclosed.encode())], password="pw")
    status, page, _ = get(client, f"/s/{public['slug']}/")
    assert status == 200 and page.decode().startswith(unclosed) and page.decode().endswith("</script>")
    status, page, _ = get(client, f"/s/{locked['slug']}/?pw=pw")
    assert status == 200 and page.decode().startswith(unclosed) and '<base href="' in page.decode()


def test_injection_takes_one_pass_over_a_page_of_unclosed_tags():
    """Injection found tags with regexes that scanned from each `<script`, `<base`, `<head` or
    `<html` to the next `>`: quadratic time on a page that leaves them unclosed. 64 KB took
    6 s, a 4 MB page (the served limit) hours: any account could upload one and hold a Lambda
    for its whole timeout with each view, and with a few views at once every function of the
    API. Now tags are found in one pass. Run in a process of its own (a regex holds the
    interpreter); the bound is a thousand times what one pass takes, before this never ended."""
    import subprocess
    import sys
    script = ("from chalicelib.services import share_html as h\n"
              f"page = {UNCLOSED!r} * 100_000\n"
              "assert h.inject_base(h.inject_widget(page, 'https://x', 'sh_1'), 'https://x/s/a/').startswith(page)\n")
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
