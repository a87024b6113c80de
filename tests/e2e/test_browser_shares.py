"""Shares against the real local server: in a browser (Debian's Chromium through Playwright)
a multi-file share with the widget, a password-protected share through its form and a
hostile share that tries to use this origin's credentials; over HTTP a 40 MB share through
presigned uploads, and a video's byte range and HEADs."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Dict, Iterator

import boto3
import pytest
import requests

from tests.live import LiveServer

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs" / "widget-screenshot.png"
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
                    "0000000d49444154789c6360f8cfc0f01f0005000201a3a5e3a60000000049454e44ae426082")

MOCKUP_FILES: Dict[str, bytes] = {
    "index.html": b"""<!doctype html><html><head><meta charset="utf-8"><title>Checkout mockup</title>
<link rel="stylesheet" href="css/site.css"></head><body>
<header><img id="logo" src="assets/img/logo.png" width="32" height="32" alt="logo"><h1>Checkout</h1></header>
<main><p>Review your order, then pay.</p><button id="pay" class="cta">Pay now</button></main>
<script src="js/app.js"></script></body></html>""",
    "css/site.css": b"body{font-family:sans-serif;margin:40px;background:#fafafa}"
                    b"h1{color:rgb(200, 30, 30)}.cta{font-size:20px;padding:12px 28px;background:#2563eb;color:#fff;"
                    b"border:0;border-radius:8px}",
    "js/app.js": b"document.documentElement.setAttribute('data-app', 'ran');",
    "assets/img/logo.png": PNG,
}

HOSTILE_PAGE = b"""<!doctype html><html><body><pre id="out">running</pre><script>
(async function () {
  var report = {origin: String(window.origin)};
  try { report.cookie = document.cookie; } catch (e) { report.cookie = 'threw:' + e.name; }
  try { report.storage = window.localStorage.getItem('dashboard_token'); } catch (e) { report.storage = 'threw:' + e.name; }
  try { indexedDB.open('x'); report.idb = 'opened'; } catch (e) { report.idb = 'threw:' + e.name; }
  async function attempt(path, init) {
    try { var r = await fetch(BASE + path, init); return r.status + ':' + (await r.text()).slice(0, 200); }
    catch (e) { return 'blocked:' + e.name; }
  }
  report.me_with_credentials = await attempt('/me', {credentials: 'include'});
  report.me_plain = await attempt('/me', {});
  report.shares_with_credentials = await attempt('/shares', {credentials: 'include'});
  document.getElementById('out').textContent = JSON.stringify(report);
})();
</script></body></html>"""


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not os.path.exists(CHROMIUM):
        pytest.skip("Chromium is not installed (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1100, "height": 720})
    tab = context.new_page()
    yield tab
    context.close()


def share(server: LiveServer, token: str, name: str, files: Dict[str, bytes], **metadata) -> dict:
    response = requests.post(
        server.url + "/shares", headers={"Authorization": f"Bearer {token}"}, timeout=30,
        data={"metadata": json.dumps({"name": name, **metadata})},
        files=[("files", (path, content)) for path, content in files.items()])
    assert response.status_code == 201, response.text
    return response.json()


def make_pro(server: LiveServer, email: str) -> None:
    """Straight into the server's DynamoDB: billing is not what these tests are about."""
    from chalicelib.services.accounts import user_id_for
    boto3.client("dynamodb", endpoint_url=server.dynamodb_endpoint_url(), region_name="us-east-1",
                 aws_access_key_id="testing", aws_secret_access_key="testing").update_item(
        TableName=server.table_name("users"), Key={"user_id": {"S": user_id_for(email)}},
        UpdateExpression="SET tier = :pro", ExpressionAttributeValues={":pro": {"S": "pro"}})


@pytest.mark.browser
def test_element_feedback_through_the_widget_on_a_multi_file_share(live_server, page, tmp_path):
    token = live_server.sign_in("designer@example.com")
    created = share(live_server, token, "Checkout Mockup", MOCKUP_FILES)
    page.goto(created["url"])  # /s/<slug> redirects to /s/<slug>/ so relative links resolve
    assert page.url == created["url"] + "/"
    page.wait_for_selector("spikes-widget .spk-launcher")
    assert page.evaluate("document.documentElement.getAttribute('data-app')") == "ran"
    assert page.evaluate("getComputedStyle(document.querySelector('h1')).color") == "rgb(200, 30, 30)"
    assert page.evaluate("document.getElementById('logo').naturalWidth") == 1
    assert page.evaluate("String(window.origin)") == "null"  # the sandbox: an opaque origin

    page.click("spikes-widget .spk-launcher")
    page.click("spikes-widget .spk-mode-element")
    page.hover("#pay")
    page.click("#pay")
    page.click("spikes-widget .spk-rating[data-rating=love]")
    page.fill("spikes-widget .spk-comment", "Make the pay button bigger")
    page.fill("spikes-widget .spk-name", "Jane Reviewer")
    # docs/widget-screenshot.png is refreshed on request only, so test runs leave the tree clean.
    page.screenshot(path=str(SCREENSHOT if os.environ.get("UPDATE_SCREENSHOTS") else tmp_path / "widget.png"))
    page.click("spikes-widget .spk-submit")
    page.wait_for_selector("spikes-widget .spk-success", state="visible", timeout=15000)
    assert page.get_attribute("spikes-widget", "data-last-result") == "success"

    listed = requests.get(live_server.url + "/spikes", params={"project": created["slug"]}, timeout=30)
    assert listed.status_code == 200, listed.text
    spikes = listed.json()["data"]
    assert len(spikes) == 1
    spike = spikes[0]
    assert (spike["type"], spike["rating"], spike["comments"]) == ("element", "love", "Make the pay button bigger")
    assert spike["projectKey"] == created["share_id"] and spike["reviewer"]["name"] == "Jane Reviewer"
    assert spike["selector"] == "#pay" and spike["elementText"] == "Pay now"
    assert spike["url"].startswith(created["url"] + "/")


UPSTREAM_STANDIN = (Path(__file__).parent / "fixtures" / "upstream_widget_standin.js").read_text()


def upstream_page(script_src: str) -> bytes:
    """An index.html after `spikes inject` (project key from the folder name, no endpoint)."""
    return (b'<!doctype html><html><head><meta charset="utf-8"><title>Pricing</title></head><body>\n'
            b'<main><h1>Pricing</h1><button id="buy" class="cta">Buy now</button></main>\n'
            b'<script src="' + script_src.encode() + b'" data-project="pricing-site"></script>\n</body></html>')


@pytest.mark.browser
def test_a_page_with_the_upstream_widget_tag_sends_feedback_here(live_server, page):
    """The page carries the tag `spikes inject` writes. The upstream widget is served by a
    stand-in (tests/e2e/fixtures) that uses storage and posts the way it does; the server
    routes the tag to itself and the share, and its storage shim lets the widget run."""
    page.context.route("https://spikes.sh/**", lambda route: route.fulfill(
        status=200, content_type="application/javascript", body=UPSTREAM_STANDIN))
    token = live_server.sign_in("upstream@example.com")
    created = share(live_server, token, "pricing-site", {"index.html": upstream_page("https://spikes.sh/widget.js")})
    errors: list = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(created["url"] + "/")
    page.wait_for_selector("#upstream-spikes-button")
    assert page.locator("spikes-widget").count() == 0  # the page's own widget, not a second one
    page.click("#upstream-spikes-button")
    page.click("#buy")
    page.wait_for_selector("#upstream-spikes-button[data-result]", timeout=15000)
    assert page.get_attribute("#upstream-spikes-button", "data-result") == "sent" and errors == []

    listed = requests.get(live_server.url + "/spikes", params={"project": created["slug"]}, timeout=30)
    assert listed.status_code == 200, listed.text
    [spike] = listed.json()["data"]
    assert spike["projectKey"] == created["share_id"] and spike["selector"] == "#buy"
    assert spike["elementText"] == "Buy now" and spike["comments"] == "Picked with the upstream widget"
    assert len(spike["id"]) == 21 and spike["reviewer"]["name"] == "Upstream Reviewer"

    # The control: the same script under a name the server does not take for a widget gets
    # no shim, and in the sandbox it throws on storage before it can show anything.
    control = share(live_server, token, "control", {"index.html": upstream_page("https://spikes.sh/other.js")})
    errors.clear()
    page.goto(control["url"] + "/")
    page.wait_for_load_state("load")
    page.wait_for_timeout(300)
    assert page.locator("#upstream-spikes-button").count() == 0
    assert any("SecurityError" in error or "localStorage" in error for error in errors), errors


def _open_mockup_with_our_widget(page, widget_src: str, attributes: str = "") -> None:
    """A mockup on a host of its own whose tag loads our widget.js from ``widget_src``, as a tag
    written for upstream's widget and pointed at ours does (data-project, and ``attributes``)."""
    widget = (ROOT / "chalicelib" / "web" / "widget.js").read_text()
    page.context.route(widget_src, lambda route: route.fulfill(
        status=200, content_type="application/javascript", body=widget))
    page.context.route("https://mockups.example.org/**", lambda route: route.fulfill(
        status=200, content_type="text/html",
        body=f'<!doctype html><html><body><h1>Pricing</h1><script src="{widget_src}" '
             f'data-project="pricing-site" {attributes}></script></body></html>'))
    page.goto("https://mockups.example.org/pricing/index.html")


@pytest.mark.browser
@pytest.mark.parametrize("base", ["https://abc123.execute-api.eu-west-1.amazonaws.com/api", "https://spikes.example.com"])
def test_our_widget_without_data_endpoint_posts_beside_its_script(page, base):
    """Upstream's widget 0.4 posts to spikes.sh when a tag has data-project and no data-endpoint,
    and its docs now write tags that way. Ours, loaded from a server of ours, posts to that
    server: beside the script, so on API Gateway's own URL under its stage (it posted to the
    host's root, /spikes without /api, which API Gateway does not route)."""
    _open_mockup_with_our_widget(page, f"{base}/widget.js?v=1")
    page.wait_for_function("window.SpikesWidget !== undefined")
    assert page.evaluate("SpikesWidget.config.endpoint") == f"{base}/spikes"
    assert page.evaluate("SpikesWidget.config.project") == "pricing-site"


@pytest.mark.browser
@pytest.mark.parametrize("attributes, corner_gaps", [
    ('data-position="bottom-right"', {"right": 20, "bottom": 20}),
    ('data-position="bottom-right" data-offset-x="50px" data-offset-y="30"', {"right": 70, "bottom": 50}),
    ('data-position="top-left" data-offset-x="-30px" data-offset-y="15.5rem"', {"left": 0, "top": 35.5}),
    ('data-position="top-right" data-offset-y="wide"', {"right": 20, "top": 20}),
])
def test_our_widget_takes_upstreams_offset_attributes(page, attributes, corner_gaps):
    """Upstream's widget reads data-offset-x and data-offset-y (its docs/widget-attributes.md: a
    CSS length, positive toward the middle); a tag written for it and pointed at our widget
    (`spikes inject --widget-url`) kept the button in the corner. The length's number counts as
    px from the corner's 20px, never past the edge; a value that is no length changes nothing."""
    _open_mockup_with_our_widget(page, "https://spikes.example.com/widget.js", attributes)
    page.wait_for_selector("spikes-widget .spk-launcher")
    box = page.evaluate("""(() => {
        const r = document.querySelector('spikes-widget').shadowRoot.querySelector('.spk-root').getBoundingClientRect();
        return {left: r.left, top: r.top, right: innerWidth - r.right, bottom: innerHeight - r.bottom};
    })()""")
    assert {side: box[side] for side in corner_gaps} == corner_gaps


@pytest.mark.browser
def test_our_widget_sends_an_elements_place_left_of_the_page_as_upstreams_does(page):
    """Upstream's widget posts an element's document position, negative for one left of or above
    the page's origin (a slide pushed out to the left); ours sent 0 for it."""
    widget = (ROOT / "chalicelib" / "web" / "widget.js").read_text()
    posted = []

    def collect(route):
        posted.append(json.loads(route.request.post_data))
        route.fulfill(status=201, content_type="application/json", body='{"ok":true,"id":"x"}')

    page.context.route("https://mockups.example.org/spikes", collect)
    page.context.route("https://mockups.example.org/widget.js", lambda route: route.fulfill(
        status=200, content_type="application/javascript", body=widget))
    page.context.route("https://mockups.example.org/index.html", lambda route: route.fulfill(
        status=200, content_type="text/html",
        body='<!doctype html><html><body style="margin:0"><div id="slide" style="position:absolute;left:-50px;'
             'top:-10px;width:200px;height:80px;background:#ddd">Slide two</div>'
             '<script src="/widget.js" data-project="carousel"></script></body></html>'))
    page.goto("https://mockups.example.org/index.html")
    page.click("spikes-widget .spk-launcher")
    page.click("spikes-widget .spk-mode-element")
    page.mouse.move(100, 30)
    page.mouse.click(100, 30)
    page.fill("spikes-widget .spk-comment", "Half of this slide is off the page")
    page.fill("spikes-widget .spk-name", "Jane Reviewer")
    page.click("spikes-widget .spk-submit")
    page.wait_for_selector("spikes-widget .spk-success", state="visible", timeout=15000)
    [spike] = posted
    assert spike["selector"] == "#slide"
    assert spike["boundingBox"] == {"x": -50, "y": -10, "width": 200, "height": 80}


@pytest.mark.browser
def test_password_protected_share_viewed_through_the_form(live_server, page):
    token = live_server.sign_in("pro@example.com")
    make_pro(live_server, "pro@example.com")
    files = {**MOCKUP_FILES, "index.html": MOCKUP_FILES["index.html"].replace(
        b"<main>", b'<main><a id="next" href="pages/about.html">About</a>'),
        "pages/about.html": b'<!doctype html><html><head><link rel="stylesheet" href="../css/site.css"></head>'
                            b'<body><h1>About</h1></body></html>'}
    created = share(live_server, token, "Secret Mockup", files, password="correct horse")
    page.goto(created["url"] + "/")
    assert page.locator("h1").inner_text() == "This share is password protected"
    page.fill("input[name=password]", "wrong guess")
    page.click("button[type=submit]")
    assert "Wrong password" in page.locator("[role=alert]").inner_text()
    page.fill("input[name=password]", "correct horse")
    page.click("button[type=submit]")
    page.wait_for_selector("spikes-widget .spk-launcher")
    assert page.url == created["url"] + "/"
    # The unlock cookie reached the sandboxed page's own assets: style, image and script.
    assert page.evaluate("getComputedStyle(document.querySelector('h1')).color") == "rgb(200, 30, 30)"
    assert page.evaluate("document.getElementById('logo').naturalWidth") == 1
    assert page.evaluate("document.documentElement.getAttribute('data-app')") == "ran"
    cookies = page.context.cookies(created["url"] + "/")
    unlock = [c for c in cookies if c["name"] == "spikes_unlock"]
    assert len(unlock) == 1 and unlock[0]["httpOnly"] and unlock[0]["path"] == f"/s/{created['slug']}/"
    assert page.evaluate("(() => { try { return document.cookie; } catch (e) { return e.name; } })()") == \
        "SecurityError"  # the sandbox: the page cannot read any cookie of this origin
    # A link to another page of the share: the browser ends on the clean URL, still unlocked.
    page.click("#next")
    page.wait_for_url(created["url"] + "/pages/about.html")
    assert page.locator("h1").inner_text() == "About"
    assert page.evaluate("getComputedStyle(document.querySelector('h1')).color") == "rgb(200, 30, 30)"
    # Another browser without the cookie sees the form again.
    other = page.context.browser.new_context()
    try:
        stranger = other.new_page()
        stranger.goto(created["url"] + "/pages/about.html")
        assert stranger.locator("h1").inner_text() == "This share is password protected"
    finally:
        other.close()


@pytest.mark.browser
def test_hostile_share_cannot_reach_this_origins_credentials(live_server, page):
    token = live_server.sign_in("attacker@example.com")
    base = live_server.url
    hostile = HOSTILE_PAGE.replace(b"BASE + path", json.dumps(base).encode() + b" + path")
    created = share(live_server, token, "Innocent Mockup", {"index.html": hostile})

    # What a future dashboard on this origin would hold: a session cookie and stored token.
    page.context.add_cookies([{"name": "dashboard_session", "value": "s3cret-session", "url": base + "/"}])
    page.goto(base + "/")
    page.evaluate("localStorage.setItem('dashboard_token', %s)" % json.dumps(token))

    page.goto(created["url"] + "/")
    page.wait_for_function("document.getElementById('out').textContent !== 'running'", timeout=15000)
    report = json.loads(page.locator("#out").inner_text())
    assert report["origin"] == "null"
    assert report["cookie"] in ("", ) or report["cookie"].startswith("threw:")
    assert "s3cret-session" not in json.dumps(report)
    assert report["storage"].startswith("threw:") and report["idb"].startswith("threw:")
    assert token not in json.dumps(report)
    # Credentialed reads of the API from an opaque origin are blocked by CORS; plain ones
    # carry no credential, so the API refuses them.
    assert report["me_with_credentials"].startswith("blocked:")
    assert report["shares_with_credentials"].startswith("blocked:")
    assert re.match(r"401:.*AUTH_REQUIRED", report["me_plain"])


def test_a_40_mb_mockup_is_shared_through_presigned_uploads(live_server):
    token = live_server.sign_in("big@example.com")
    auth = {"Authorization": f"Bearer {token}"}
    video = bytes(range(256)) * (40 * 1024 * 1024 // 256)
    files = {"index.html": MOCKUP_FILES["index.html"], "media/intro.mp4": video}

    # One request cannot carry it: a clear 413 that points to the presigned flow.
    direct = requests.post(live_server.url + "/shares", headers=auth, timeout=60,
                           data={"metadata": json.dumps({"name": "Big"})},
                           files=[("files", ("media/intro.mp4", video[:5 * 1024 * 1024]))])
    assert direct.status_code == 413 and direct.json()["code"] == "SIZE_LIMIT"
    assert "/shares/uploads" in direct.json()["error"]

    started = requests.post(live_server.url + "/shares/uploads", headers=auth, timeout=30, json={
        "name": "Big Mockup", "files": [{"path": path, "size": len(data)} for path, data in files.items()]})
    assert started.status_code == 201, started.text
    plan = started.json()
    assert requests.get(plan["url"] + "/", timeout=30).status_code == 404  # pending: not served yet
    for target in plan["uploads"]:
        put = requests.put(target["url"], data=files[target["path"]], headers=target["headers"], timeout=120)
        assert put.status_code == 200, put.text
    done = requests.post(plan["complete_url"], headers=auth, timeout=60)
    assert done.status_code == 200 and done.json()["status"] == "active", done.text

    page = requests.get(plan["url"] + "/", timeout=30)
    assert page.status_code == 200 and "widget.js" in page.text
    # Past what a Lambda response can carry: a redirect to a short-lived S3 URL.
    served = requests.get(plan["url"] + "/media/intro.mp4", timeout=120, allow_redirects=False)
    assert served.status_code == 302
    followed = requests.get(served.headers["Location"], timeout=120)
    assert followed.status_code == 200 and followed.content == video
    listed = requests.get(live_server.url + "/shares", headers=auth, timeout=30).json()
    assert [(s["slug"], s["total_bytes"]) for s in listed] == [(plan["slug"], len(video) + len(files["index.html"]))]


def test_head_and_a_byte_range_through_the_real_server(live_server):
    """What a video element and a link checker send, through `make dev`'s server on one kept-alive
    connection: a 206 of a video arrives byte for byte (base64 in the function's answer), a HEAD
    carries the GET's Content-Length and no body, and the connection stays in step after it."""
    token = live_server.sign_in("media@example.com")
    clip = bytes(range(256)) * 64
    created = share(live_server, token, "Video mockup",
                    {"index.html": b"<video src=clip.mp4 controls></video>", "clip.mp4": clip})
    base = f"{live_server.url}/s/{created['slug']}/"
    with requests.Session() as session:  # sends Accept: */*, as a media element does
        ranged = session.get(base + "clip.mp4", headers={"Range": "bytes=1000-2999"}, timeout=30)
        assert ranged.status_code == 206 and ranged.content == clip[1000:3000]
        assert ranged.headers["Content-Range"] == f"bytes 1000-2999/{len(clip)}"
        assert ranged.headers["Content-Length"] == "2000" and ranged.headers["Content-Type"] == "video/mp4"
        page = session.get(base, timeout=30)
        for path, whole in (("", page), ("clip.mp4", None)):
            head = session.head(base + path, timeout=30)
            assert head.status_code == 200 and head.content == b""
            expected = len(whole.content) if whole is not None else len(clip)
            assert head.headers["Content-Length"] == str(expected)
            assert head.headers["Content-Security-Policy"].startswith("sandbox")
        assert session.get(base + "clip.mp4", timeout=30).content == clip
