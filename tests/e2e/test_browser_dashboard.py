"""The dashboard at /dashboard, in Debian's Chromium against the real local server: each thing a
person can do there, through the public API only. Sign-in goes through the link in the mail the
server prints; the upload is larger than one request may carry (presigned flow).

Screenshots for the README (docs/dashboard-*.png) are refreshed only with UPDATE_SCREENSHOTS=1.
"""
from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import os
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Dict, Iterator, List
from urllib.parse import quote

import boto3
import pytest
import requests
from playwright.sync_api import expect

from tests.e2e.test_browser_shares import MOCKUP_FILES, browser, make_pro, share  # noqa: F401 (fixture)
from tests.fakes.stripe_api import FakeStripe
from tests.live import LiveServer

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[2]
DESKTOP = {"width": 1200, "height": 800}
PHONE = {"width": 390, "height": 844}
SESSION_KEY = "spikes.dashboard.session"


@pytest.fixture(scope="module")
def stripe() -> Iterator[FakeStripe]:
    fake = FakeStripe().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory, stripe) -> Iterator[LiveServer]:
    live = LiveServer(data_dir=tmp_path_factory.mktemp("dashboard-data"), env={
        "STRIPE_SECRET_KEY": stripe.api_key, "STRIPE_PRICE_ID": "price_pro_test", "STRIPE_API_BASE": stripe.url,
        "STRIPE_MAX_NETWORK_RETRIES": "0", "RATE_LOGIN_PER_ADDRESS": "50", "RATE_LOGIN_PER_IP": "200", "RATE_VERIFY_PER_MINUTE": "1000",
        "RATE_SIGN_IN_MAILS_PER_HOUR": "100000",
        "WEBHOOK_ALLOW_LOOPBACK": "true", "WEBHOOK_LOCAL_INTERVAL_SECONDS": "0.5",
        "RATE_SPIKES_PER_MINUTE": "1000", "RATE_SHARES_PER_MINUTE": "1000"})  # every post of the module comes from one address
    live.start()
    try:
        yield live
    finally:
        live.close()


class Tab:
    """A browser context with one page, and the page's script errors collected."""

    def __init__(self, browser, viewport=DESKTOP):
        self.context = browser.new_context(viewport=viewport, accept_downloads=True)
        self.page = self.context.new_page()
        self.errors: List[str] = []
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("console", lambda message: self.errors.append(message.text)
                     if message.type == "error" and "status of 4" not in message.text else None)

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def tab(browser) -> Iterator[Tab]:
    opened = Tab(browser)
    yield opened
    assert opened.errors == [], opened.errors  # no script errors on any page of the test
    opened.close()


def signed_in(tab: Tab, server: LiveServer, email: str) -> str:
    """A session made through the API, handed to the dashboard the way it keeps one."""
    token = server.sign_in(email)
    tab.page.goto(server.url + "/dashboard")
    tab.page.evaluate("([key, value]) => localStorage.setItem(key, value)",
                      [SESSION_KEY, json.dumps({"token": token, "email": email})])
    tab.page.reload()
    tab.page.wait_for_selector("h1:has-text('Your shares')")
    return token


def auth(token: str) -> Dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def post_spike(server: LiveServer, project: str, **fields) -> str:
    body = {"type": "element" if fields.get("selector") else "page", "projectKey": project, "page": "Checkout",
            "url": f"{server.url}/s/{project}/", "reviewer": {"id": "r1", "name": "Jane"}, **fields}
    response = requests.post(server.url + "/spikes", json=body, timeout=30)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def screenshot(page, name: str, tmp_path: Path) -> None:
    path = ROOT / "docs" / name if os.environ.get("UPDATE_SCREENSHOTS") else tmp_path / name
    page.screenshot(path=str(path), full_page=False)


# --- signing in and out ----------------------------------------------------------------------

def test_sign_in_through_the_mailed_link_lands_signed_in_then_sign_out(server, tab, tmp_path):
    page = tab.page
    page.goto(server.url + "/dashboard")
    assert page.locator("h1").inner_text() == "Sign in to Spikes"
    expect(page.locator("#nav")).to_be_hidden()  # nothing to navigate to before signing in
    mark = len(server.lines())
    page.fill("#email", "Designer@Example.com")
    page.keyboard.press("Enter")  # the form works from the keyboard
    page.wait_for_selector("h1:has-text('Check your e-mail')")
    code = page.locator("#login-code").inner_text()
    assert re.fullmatch(r"[A-Z0-9]{4}-[A-Z0-9]{4}", code)
    screenshot(page, "dashboard-signin.png", tmp_path)

    # The link from the mail the server "sent", opened in a new tab of the same browser.
    login_token = server.magic_link_token("designer@example.com", start=mark)
    mail = "\n".join(server.lines()[mark:])
    assert code in mail
    confirm = tab.context.new_page()
    confirm.goto(f"{server.url}/auth/verify?token={login_token}")
    assert confirm.locator("#code").inner_text() == code
    confirm.click("#approve")
    # It lands in the dashboard, signed in; the tab that asked signs in too.
    confirm.wait_for_url(server.url + "/dashboard")
    confirm.wait_for_selector("h1:has-text('Your shares')")
    assert confirm.locator("#who").inner_text() == "designer@example.com"
    page.wait_for_selector("h1:has-text('Your shares')", timeout=15000)
    session = json.loads(page.evaluate(f"localStorage.getItem('{SESSION_KEY}')"))
    assert requests.get(server.url + "/me", headers=auth(session["token"]), timeout=30).json()["email"] == \
        "designer@example.com"

    page.click("#signout")
    page.wait_for_selector("h1:has-text('Sign in to Spikes')")
    assert page.evaluate(f"localStorage.getItem('{SESSION_KEY}')") is None
    assert "You are signed out." in page.locator("main").inner_text()
    # Revoked on the server (POST /auth/logout), not only forgotten in the browser.
    assert requests.get(server.url + "/me", headers=auth(session["token"]), timeout=30).status_code == 401
    confirm.wait_for_selector("h1:has-text('Sign in to Spikes')")  # the other tab follows


def test_a_link_approved_in_another_browser_signs_in_the_tab_that_asked(server, browser, tab):
    page = tab.page
    page.goto(server.url + "/dashboard")
    mark = len(server.lines())
    page.fill("#email", "phone@example.com")
    page.click("button[type=submit]")
    page.wait_for_selector("#login-code")
    code = page.locator("#login-code").inner_text()
    login_token = server.magic_link_token("phone@example.com", start=mark)
    phone = Tab(browser, PHONE)  # no dashboard state there: the usual approval with the code
    try:
        phone.page.goto(f"{server.url}/auth/verify?token={login_token}")
        assert phone.page.locator("#code").inner_text() == code
        phone.page.check("#c")
        phone.page.click("#approve")
        phone.page.wait_for_selector("#m.ok")
    finally:
        phone.close()
    page.wait_for_selector("h1:has-text('Your shares')", timeout=20000)  # the poll collected it
    assert page.locator("#who").inner_text() == "phone@example.com"


def test_a_recovery_link_signs_in_the_dashboard_of_the_browser_that_opens_it(server, tab):
    """The mail of POST /auth/recover says "open this link to sign in": the page's button used the
    link up and said "Signed in", and the session went nowhere (finding 163)."""
    server.sign_in("recovering@example.com")  # the account exists
    mark = len(server.lines())
    assert requests.post(server.url + "/auth/recover", json={"email": "recovering@example.com"},
                         timeout=30).status_code == 200
    page = tab.page
    page.goto(f"{server.url}/auth/verify?token={server.magic_link_token('recovering@example.com', start=mark)}")
    expect(page.locator("#approve")).to_have_text("Sign in to the dashboard as recovering@example.com")
    page.click("#approve")
    page.wait_for_url(server.url + "/dashboard")
    page.wait_for_selector("h1:has-text('Your shares')")
    assert page.locator("#who").inner_text() == "recovering@example.com"
    session = json.loads(page.evaluate(f"localStorage.getItem('{SESSION_KEY}')"))
    assert requests.get(server.url + "/me", headers=auth(session["token"]), timeout=30).json()["email"] == \
        "recovering@example.com"


def test_the_dashboard_names_a_look_alike_domain_in_the_form_that_tells_it_apart(server, tab):
    """The dashboard's header names the account it is signed in to (163): an internationalised
    domain in Unicode only, `jane@аррӏе.com` (Cyrillic) read as `jane@apple.com` (finding 181)."""
    look_alike = "jane@\u0430\u0440\u0440\u04cf\u0435.com"
    signed_in(tab, server, look_alike)
    assert tab.page.locator("#who").inner_text() == f"{look_alike} (jane@xn--80ak6aa92e.com)"


def test_sign_out_everywhere_revokes_every_session_of_the_account(server, tab):
    dashboard_token = signed_in(tab, server, "everywhere@example.com")
    cli_token = server.sign_in("everywhere@example.com")  # another device's session
    page = tab.page
    page.click("nav >> text=Account")
    page.wait_for_selector("#signout-everywhere")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#signout-everywhere")
    page.wait_for_selector("text=You are signed out everywhere.")
    for token in (dashboard_token, cli_token):
        assert requests.get(server.url + "/me", headers=auth(token), timeout=30).status_code == 401


def test_an_ended_session_and_api_errors_are_shown_in_words(server, tab):
    page = tab.page
    page.goto(server.url + "/dashboard")
    page.evaluate("([key, value]) => localStorage.setItem(key, value)",
                  [SESSION_KEY, json.dumps({"token": "not-a-real-token", "email": "x@example.com"})])
    page.reload()
    page.wait_for_selector("h1:has-text('Sign in to Spikes')")
    text = page.locator("main").inner_text()
    assert "Your session has ended" in text and "request req_" in text
    page.fill("#email", "not an address")
    page.evaluate("document.getElementById('email').type = 'text'")  # let the API judge it
    page.click("button[type=submit]")
    page.wait_for_selector("#signin-msg .err")
    assert "email" in page.locator("#signin-msg").inner_text().lower()


# --- shares ----------------------------------------------------------------------------------

def test_a_dropped_folder_larger_than_one_request_is_shared_with_progress(server, tab, tmp_path):
    token = signed_in(tab, server, "uploader@example.com")
    site = tmp_path / "checkout-site"
    for path, content in MOCKUP_FILES.items():
        (site / path).parent.mkdir(parents=True, exist_ok=True)
        (site / path).write_bytes(content)
    big = bytes(range(256)) * (6 * 1024 * 1024 // 256)  # 6 MiB: over the 4 MiB direct-upload limit
    (site / "media").mkdir()
    (site / "media" / "intro.mp4").write_bytes(big)
    page = tab.page
    seen_progress: List[str] = []
    page.expose_function("reportProgress", lambda value: seen_progress.append(value))
    page.evaluate("""() => new MutationObserver(() => {
        const bar = document.querySelector('#dropzone progress');
        if (bar && !bar.hidden) window.reportProgress(String(bar.value));
      }).observe(document.getElementById('main'), {subtree: true, attributes: true, childList: true, characterData: true})""")
    page.set_input_files("#pick-folder", str(site))
    page.wait_for_selector("text=is live at", timeout=60000)
    assert seen_progress and seen_progress[-1] == "100"

    listed = requests.get(server.url + "/shares", headers=auth(token), timeout=30).json()
    assert [(s["name"], s["status"], s["file_count"], s["total_bytes"]) for s in listed] == \
        [("checkout-site", "active", 5, sum(len(c) for c in MOCKUP_FILES.values()) + len(big))]
    assert page.url.endswith(f"#/shares/{listed[0]['id']}")
    served = requests.get(listed[0]["url"] + "/media/intro.mp4", timeout=60)
    assert served.status_code == 200 and served.content == big  # the folder's root became the share's
    assert requests.get(listed[0]["url"] + "/css/site.css", timeout=30).text.startswith("body{")
    # Nothing went through POST /shares: the presigned flow did it.
    assert '"route": "/shares", "status": 201' not in server.output()


def test_the_share_list_shows_each_share_and_opens_one(server, tab):
    token = signed_in(tab, server, "lister@example.com")
    make_pro(server, "lister@example.com")
    public = share(server, token, "Landing page", MOCKUP_FILES)
    secret = share(server, token, "Secret page", MOCKUP_FILES, password="hunter2")
    unfinished = requests.post(f"{server.url}/shares/uploads", headers=auth(token), timeout=30, json={
        "name": "Half uploaded", "files": [{"path": "index.html", "size": 10}]}).json()
    post_spike(server, public["share_id"], rating="love", comments="Nice")
    page = tab.page
    page.reload()
    page.wait_for_selector(f"tr[data-share='{public['share_id']}']")
    row = page.locator(f"tr[data-share='{public['share_id']}']").inner_text()
    assert "Landing page" in row and f"/s/{public['slug']}" in row and "Public" in row and "\t1\t" in row
    # An upload never completed says so, and when the server deletes it.
    badge = page.locator(f"tr[data-share='{unfinished['share_id']}'] .badge.warn")
    assert badge.inner_text() == "upload unfinished"
    assert badge.get_attribute("title").startswith("Deleted if not completed by ")
    assert "Password" in page.locator(f"tr[data-share='{secret['share_id']}']").inner_text()
    assert page.locator(f"tr[data-share='{public['share_id']}'] a[href='{public['url']}']").count() == 1
    page.click("text=Secret page")
    page.wait_for_selector("h1:has-text('Secret page')")
    assert "Password protected" in page.locator(".share-head").inner_text()


def _seed_feedback(server: LiveServer, project: str) -> List[str]:
    ids = []
    for number in range(23):
        rating = ["no", "meh", "like", "love"][number % 4]
        ids.append(post_spike(server, project, rating=rating, selector="#pay" if number % 3 else "h1",
                              page="Cart" if number % 5 == 0 else "Checkout",
                              comments=f"comment {number:02d}", timestamp=f"2026-11-{10 + number % 9:02d}T10:00:00Z",
                              reviewer={"id": f"r{number % 3}", "name": ["Jane", "Omar", "Lin"][number % 3]}))
    return ids


def test_feedback_charts_filters_paging_resolving_and_deleting(server, tab, tmp_path):
    token = signed_in(tab, server, "reader@example.com")
    created = share(server, token, "Checkout", MOCKUP_FILES)
    ids = _seed_feedback(server, created["share_id"])
    page = tab.page
    page.goto(f"{server.url}/dashboard#/shares/{created['share_id']}")
    page.wait_for_selector("li.spike")

    # At a glance: charts with their numbers in words.
    ratings = page.locator("svg.chart").nth(0).get_attribute("aria-labelledby").split()[1]
    assert page.locator(f"#{ratings}").text_content() == "Love: 5, Like: 6, Meh: 6, No: 6, No rating: 0"
    timeline = page.locator("svg.chart").nth(1)
    assert "2026-11-10: 3" in timeline.locator("desc").text_content()
    hot = page.locator("svg.chart").nth(2).locator("desc").text_content()
    assert hot.startswith("#pay on Checkout: 12") and "h1 on Checkout: 6" in hot and "#pay on Cart: 3" in hot

    # Newest first, 20 to a page, then the rest.
    items = page.locator("li.spike")
    assert items.count() == 20
    assert items.first.get_attribute("data-spike") == ids[-1]
    newest = items.first.inner_text()  # number 22: rated "like" on #pay of Checkout by Omar
    assert all(word in newest for word in ("Like", "comment 22", "Omar", "Checkout", "#pay")), newest
    page.click("text=Older →")
    expect(page.locator("li.spike")).to_have_count(3)
    page.click("text=← Newer")
    expect(page.locator("li.spike")).to_have_count(20)

    # Filters: rating, reviewer, page, status.
    page.select_option("#f-rating", "no")
    expect(page.locator("li.spike")).to_have_count(6)
    assert set(page.locator("li.spike .rating").all_inner_texts()) == {"No"}
    page.select_option("#f-reviewer", "r1")
    expect(page.locator("li.spike")).to_have_count(2)
    assert set(page.locator("li.spike .who").all_inner_texts()) == {"Omar"}
    page.select_option("#f-reviewer", "")
    expect(page.locator("li.spike")).to_have_count(6)
    page.select_option("#f-page", "Cart")
    expect(page.locator("li.spike")).to_have_count(2)
    assert [item.get_attribute("data-spike") for item in page.locator("li.spike").all()] == [ids[20], ids[0]]

    # Resolve one; the API agrees; the "Resolved" filter finds it.
    target = page.locator("li.spike").first
    spike_id = target.get_attribute("data-spike")
    target.locator("text=Mark resolved").click()
    page.wait_for_selector(f"li.spike[data-spike='{spike_id}'] .badge.ok")
    assert requests.get(f"{server.url}/spikes/{spike_id}", headers=auth(token), timeout=30).json()["resolved"] is True
    page.select_option("#f-resolved", "true")
    expect(page.locator("li.spike")).to_have_count(1)
    page.locator(f"li.spike[data-spike='{spike_id}'] >> text=Mark unresolved").click()
    page.wait_for_selector(f"li.spike[data-spike='{spike_id}']:not(.resolved)")
    assert requests.get(f"{server.url}/spikes/{spike_id}", headers=auth(token), timeout=30).json()["resolved"] is False

    # Delete one after confirming.
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator(f"li.spike[data-spike='{spike_id}'] >> text=Delete").click()
    page.wait_for_selector(f"li.spike[data-spike='{spike_id}']", state="detached")
    assert requests.get(f"{server.url}/spikes/{spike_id}", headers=auth(token), timeout=30).status_code == 404
    assert "No: 5" in page.locator("svg.chart desc").first.text_content()  # the charts follow


def test_hostile_feedback_is_shown_as_text_in_every_field(server, tab):
    """Reviewers are anyone: what they send is drawn as text in the list, the filters and the
    charts, never as markup (the session sits in this page's storage)."""
    token = signed_in(tab, server, "hostile-feedback@example.com")
    created = share(server, token, "Hostile", MOCKUP_FILES)
    markup = '<img src=x onerror="window.__pwned=1"><svg onload="window.__pwned=2"></svg><b id="injected">b</b>'
    post_spike(server, created["share_id"], comments=markup, page="javascript:alert(1)" + markup,
               selector="#pay" + markup, elementText=markup, reviewer={"id": "r-hostile", "name": markup})
    page = tab.page
    page.goto(f"{server.url}/dashboard#/shares/{created['share_id']}")
    page.wait_for_selector("ol.spikes li.spike")
    item = page.locator("ol.spikes li.spike").first
    assert item.locator(".comment").inner_text() == markup and item.locator(".who").inner_text() == markup
    assert item.locator("code").inner_text() == "#pay" + markup
    assert markup in page.locator("#f-reviewer").inner_text() and markup in page.locator("#f-page").inner_text()
    assert ("#pay" + markup)[:43] in page.locator("figure").nth(2).inner_text()  # the hotspots chart's label
    page.wait_for_timeout(300)
    assert page.evaluate("window.__pwned") is None
    assert page.locator("#injected, main img, main script, main svg svg").count() == 0
    assert page.locator("a[href^='javascript']").count() == 0


def test_feedback_whose_id_another_share_also_holds_is_resolved_and_deleted(server, tab):
    """Ids are unique per project, and anyone can post a spike under an id they read in a
    public listing: copied into another share of the same owner, it made the owner's id ambiguous,
    and the dashboard, resolving and deleting by id alone, was answered 409 for both copies."""
    token = signed_in(tab, server, "copied-ids@example.com")
    first = share(server, token, "Copied from", MOCKUP_FILES)
    second = share(server, token, "Copied to", MOCKUP_FILES)
    spike_id = post_spike(server, first["share_id"], comments="the original")
    assert post_spike(server, second["share_id"], id=spike_id, comments="a copy") == spike_id
    page = tab.page
    page.goto(f"{server.url}/dashboard#/shares/{first['share_id']}")
    item = page.locator(f"li.spike[data-spike='{spike_id}']")
    item.locator("text=Mark resolved").click()
    page.wait_for_selector(f"li.spike[data-spike='{spike_id}'] .badge.ok")

    def stored(project: str) -> requests.Response:
        return requests.get(f"{server.url}/spikes/{spike_id}", params={"project": project}, headers=auth(token),
                            timeout=30)
    assert stored(first["share_id"]).json()["resolved"] is True
    assert stored(second["share_id"]).json()["resolved"] is False  # the copy is another spike
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator(f"li.spike[data-spike='{spike_id}'] >> text=Delete").click()
    page.wait_for_selector(f"li.spike[data-spike='{spike_id}']", state="detached")
    assert stored(first["share_id"]).status_code == 404
    assert stored(second["share_id"]).json()["comments"] == "a copy"


def test_a_share_with_more_feedback_than_one_answer_carries_opens_and_is_deleted(server, tab):
    """The share's view opened with GET /shares/{id} (its exported_spikes feed the charts), which
    is 409 EXPORT_TOO_LARGE past 5 MB of feedback: such a share could not be opened at all, nor
    reach its delete button, which deletes without the export for this very case."""
    token = signed_in(tab, server, "busy-share@example.com")
    created = share(server, token, "Busy", MOCKUP_FILES)
    heavy = "\u00e9" * 9_990  # 6 bytes each as a Lambda answer carries it
    for number in range(90):
        post_spike(server, created["share_id"], rating="meh", selector="#pay", comments=f"{number:02d} {heavy}")
    assert requests.get(f"{server.url}/shares/{created['share_id']}", headers=auth(token), timeout=30).status_code == 409
    page = tab.page
    page.goto(f"{server.url}/dashboard#/shares/{created['share_id']}")
    page.wait_for_selector("li.spike")
    assert "90 spikes" in page.locator(".share-head .meta").inner_text()
    assert page.locator("svg.chart").nth(2).locator("desc").text_content().startswith("#pay on Checkout: 90")
    page.click("text=Delete this share…")
    page.click("#confirm-delete-button")
    page.wait_for_selector("h1:has-text('Your shares')")
    assert requests.get(f"{server.url}/shares/{created['share_id']}", headers=auth(token), timeout=30).status_code == 404


def test_exports_download_csv_and_jsonl(server, tab):
    token = signed_in(tab, server, "exporter@example.com")
    created = share(server, token, "Export me", MOCKUP_FILES)
    post_spike(server, created["share_id"], rating="meh", comments="=SUM(A1) first", selector="#pay")
    post_spike(server, created["share_id"], rating="love", comments="second")
    page = tab.page
    page.goto(f"{server.url}/dashboard#/shares/{created['share_id']}")
    page.wait_for_selector("li.spike")
    with page.expect_download() as download:
        page.click("[data-export=csv] >> nth=0")
    text = Path(download.value.path()).read_text(encoding="utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert download.value.suggested_filename.endswith(".csv")
    assert sorted(row["comments"] for row in rows) == ["'=SUM(A1) first", "second"]
    with page.expect_download() as download:
        page.click("[data-export=jsonl] >> nth=0")
    lines = [json.loads(line) for line in Path(download.value.path()).read_text().splitlines()]
    assert {item["rating"] for item in lines} == {"meh", "love"}
    expect(page.locator("text=Downloaded spikes-")).to_be_visible()


def test_deleting_a_share_asks_first_and_offers_the_export(server, tab):
    token = signed_in(tab, server, "deleter@example.com")
    created = share(server, token, "Old mockup", MOCKUP_FILES)
    post_spike(server, created["share_id"], rating="no", comments="keep me")
    page = tab.page
    page.goto(f"{server.url}/dashboard#/shares/{created['share_id']}")
    page.wait_for_selector("li.spike")
    page.click("text=Delete this share…")
    panel = page.locator(".confirm")
    assert "Its page goes offline and its 1 spikes are deleted" in panel.inner_text()
    assert page.evaluate("document.activeElement.dataset.export") == "csv"  # the export comes first
    with page.expect_download() as download:
        panel.locator("[data-export=csv]").click()
    assert "keep me" in Path(download.value.path()).read_text(encoding="utf-8-sig")
    page.click("text=Cancel")
    assert requests.get(f"{server.url}/shares/{created['share_id']}", headers=auth(token), timeout=30).status_code == 200
    page.click("text=Delete this share…")
    page.click("#confirm-delete-button")
    page.wait_for_selector("text=Deleted “Old mockup” and its 1 spikes.")
    assert page.locator(f"tr[data-share='{created['share_id']}']").count() == 0
    assert requests.get(f"{server.url}/shares/{created['share_id']}", headers=auth(token), timeout=30).status_code == 404


def test_password_and_webhook_need_pro_then_are_set_changed_and_removed(server, tab):
    token = signed_in(tab, server, "settings@example.com")
    created = share(server, token, "Settings", MOCKUP_FILES)
    page = tab.page
    page.goto(f"{server.url}/dashboard#/shares/{created['share_id']}")
    page.wait_for_selector("#s-password")
    page.fill("#s-password", "open sesame")
    page.click("text=Set password")
    page.wait_for_selector("#settings ~ div .err, section .err")
    assert "Password-protected shares require a Pro subscription" in page.locator("section .err").inner_text()

    make_pro(server, "settings@example.com")
    page.fill("#s-password", "open sesame")
    page.click("text=Set password")
    page.wait_for_selector("text=Password set. Visitors need it from now on.")
    assert requests.get(created["url"] + "/", timeout=30, headers={"Accept": "text/html"}).status_code == 401
    assert requests.get(created["url"] + "/?pw=open%20sesame", timeout=30).status_code == 200
    page.fill("#s-password", "new secret")
    page.click("text=Change password")
    page.wait_for_selector("text=Password changed.")
    assert requests.get(created["url"] + "/?pw=open%20sesame", timeout=30,
                        headers={"Accept": "text/html"}).status_code == 401
    page.click("text=Remove password")
    page.wait_for_selector("text=Password removed: the share is public.")
    assert requests.get(created["url"] + "/", timeout=30).status_code == 200

    page.fill("#s-webhook", "https://10.0.0.8/hook")
    page.click("text=Save webhook")
    page.wait_for_selector("section .err")
    assert "webhook_url" in page.locator("section .err").inner_text()
    page.fill("#s-webhook", "https://93.184.216.34/spikes-hook")
    page.click("text=Save webhook")
    page.wait_for_selector("text=Webhook URL saved.")
    assert page.locator("#s-webhook").input_value() == "https://93.184.216.34/spikes-hook"
    assert requests.get(f"{server.url}/shares/{created['share_id']}", headers=auth(token),
                        timeout=30).json()["webhook_url"] == "https://93.184.216.34/spikes-hook"
    page.click("text=Remove webhook")
    page.wait_for_selector("text=Webhook removed.")
    page.fill("#s-name", "Settings v2")
    page.click("text=Save name")
    page.wait_for_selector("h1:has-text('Settings v2')")


class Receiver:
    """A webhook endpoint on 127.0.0.1 that records what it receives and answers 200."""

    def __init__(self):
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args):
                pass

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                received.append((dict(self.headers), body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_webhook_secret_once_test_event_and_deliveries(server, tab):
    token = signed_in(tab, server, "hooks@example.com")
    make_pro(server, "hooks@example.com")
    created = share(server, token, "Hooked", MOCKUP_FILES)
    receiver = Receiver()
    try:
        page = tab.page
        page.goto(f"{server.url}/dashboard#/shares/{created['share_id']}")
        page.wait_for_selector("#s-webhook")
        assert page.locator("#webhook-panel").count() == 0
        page.fill("#s-webhook", receiver.url)
        page.click("text=Save webhook")
        page.wait_for_selector("#webhook-secret")
        secret = page.locator("#webhook-secret").input_value()
        assert len(secret) >= 20

        page.click("#webhook-test")
        page.wait_for_selector("text=Test event delivered (HTTP 200).", timeout=20000)
        headers, body = receiver.received[-1]
        stamp, signature = re.match(r"t=(\d+),v1=([0-9a-f]{64})", headers["X-Spikes-Signature"]).groups()
        expected = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(signature, expected)  # the secret shown once signs deliveries

        post_spike(server, created["share_id"], rating="no", comments="hook me")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            page.click("#webhook-panel >> text=Refresh")
            page.wait_for_timeout(500)
            if page.locator("#deliveries tr:has-text('spike.created'):has-text('delivered')").count():
                break
        row = page.locator("#deliveries tr:has-text('spike.created')").first.inner_text()
        assert "delivered" in row and "HTTP 200" in row
        assert any(b"hook me" in body for _, body in receiver.received)

        page.reload()
        page.wait_for_selector("#deliveries tr")
        assert page.locator("#webhook-secret").count() == 0 and secret not in page.content()  # shown once
    finally:
        receiver.close()


def test_hotspots_open_the_share_with_the_elements_outlined(server, tab):
    token = signed_in(tab, server, "hotspots@example.com")
    created = share(server, token, "Hot", MOCKUP_FILES)
    for rating in ("no", "meh", "no"):
        post_spike(server, created["share_id"], rating=rating, selector="#pay", page="Checkout mockup")
    post_spike(server, created["share_id"], rating="love", selector="#logo", page="Checkout mockup")
    page = tab.page
    page.goto(f"{server.url}/dashboard#/shares/{created['share_id']}")
    page.wait_for_selector("#open-hotspots")
    with tab.context.expect_page() as opened:
        page.click("#open-hotspots")
    shared = opened.value
    shared.wait_for_selector("spikes-widget .spk-spot")
    spots = shared.evaluate("""() => [...document.querySelector('spikes-widget').shadowRoot.querySelectorAll('.spk-spot')]
        .map(s => [s.dataset.spikesHotspot, s.textContent])""")
    assert spots == [["#pay", "3 feedback · worst: no"], ["#logo", "1 feedback · worst: love"]]
    box = shared.evaluate("document.getElementById('pay').getBoundingClientRect().toJSON()")
    spot = shared.evaluate("""() => document.querySelector('spikes-widget').shadowRoot
        .querySelector('.spk-spot').getBoundingClientRect().toJSON()""")
    assert abs(spot["left"] - (box["left"] - 3)) < 1 and abs(spot["width"] - (box["width"] + 6)) < 1


def test_a_crafted_hotspots_link_puts_no_words_of_its_own_on_the_share_page(server, tab):
    """Anyone can send a share's link with a #spikes-hotspots fragment (finding 160): the widget
    outlines what it names, but its labels show only a known rating and a count."""
    token = server.sign_in("crafted-hotspots@example.com")
    created = share(server, token, "Crafted", MOCKUP_FILES)
    lure = "Your session expired: sign in again at https://evil.example/spikes"
    spots = [{"s": "#pay", "n": 2, "r": lure}, {"s": "#logo", "n": "99 reviewers agree: " + lure, "r": "no"},
             {"s": "h1", "n": 1, "r": "__proto__"}]
    page = tab.page
    page.goto(created["url"] + "/#spikes-hotspots=" + quote(json.dumps(spots)))
    page.wait_for_selector("spikes-widget .spk-spot")
    labels = page.evaluate("""() => [...document.querySelector('spikes-widget').shadowRoot.querySelectorAll('.spk-spot')]
        .map(s => [s.dataset.spikesHotspot, s.textContent])""")
    assert labels == [["#pay", "2 feedback"], ["#logo", "0 feedback · worst: no"], ["h1", "1 feedback"]]
    assert "evil.example" not in page.evaluate("document.querySelector('spikes-widget').shadowRoot.innerHTML")


def test_a_share_page_cannot_read_the_dashboard_session(server, tab):
    token = signed_in(tab, server, "victim@example.com")
    probe = b"""<!doctype html><html><body><pre id="out">running</pre><script>
      var report = {origin: String(window.origin)};
      try { report.session = localStorage.getItem('spikes.dashboard.session'); } catch (e) { report.session = 'threw:' + e.name; }
      try { report.opener = String(window.opener && window.opener.localStorage); } catch (e) { report.opener = 'threw:' + e.name; }
      document.getElementById('out').textContent = JSON.stringify(report);
    </script></body></html>"""
    created = share(server, token, "Probe", {"index.html": probe})
    page = tab.page
    page.goto(created["url"] + "/")
    expect(page.locator("#out")).not_to_have_text("running")
    report = json.loads(page.locator("#out").inner_text())
    assert report["origin"] == "null" and report["session"].startswith("threw:SecurityError")
    assert token not in json.dumps(report)


def test_a_script_from_a_share_cannot_run_in_the_dashboard(server, tab):
    """Anyone's share puts a script on this origin: were markup ever injected into the dashboard,
    <script src="/s/.../steal.js"> must not run beside the session (docs/security.md, 161)."""
    token = signed_in(tab, server, "script-from-share@example.com")
    steal = b"window.__stolen = localStorage.getItem('spikes.dashboard.session');"
    created = share(server, token, "Thief", {"index.html": b"<p>hi</p>", "steal.js": steal})
    page = tab.page
    outcome = page.evaluate("""(src) => new Promise((done) => {
        document.addEventListener('securitypolicyviolation', (e) => done('refused ' + e.effectiveDirective));
        const script = document.createElement('script');
        script.src = src;
        script.onload = () => done('ran: ' + window.__stolen);
        document.head.append(script);
      })""", created["url"] + "/steal.js")
    assert outcome == "refused script-src-elem"
    assert page.evaluate("window.__stolen") is None
    assert all("Content Security Policy" in error for error in tab.errors)
    tab.errors.clear()  # the refusal is logged as a console error, which the fixture forbids
    page.reload()
    page.wait_for_selector("h1:has-text('Your shares')")  # the page's own modules still load


@pytest.mark.parametrize("path,ready", [("/auth/device", "#f"), ("/docs", ".swagger-ui .info"),
                                        ("/auth/verify?token=no-such-link", "h1")])
def test_a_script_from_a_share_cannot_run_on_our_other_pages(server, tab, path, ready):
    """The magic link's page writes the session; it, the CLI's page and the API reference live on
    the same origin as the shares (docs/security.md, 162): their own scripts run, a share's not."""
    token = server.sign_in("script-on-pages@example.com")
    created = share(server, token, "Thief", {"index.html": b"<p>hi</p>",
                                             "steal.js": b"window.__stolen = 'ran';"})
    page = tab.page
    page.goto(server.url + path)
    page.wait_for_selector(ready)  # the page's own script (Swagger UI draws .info) still runs
    outcome = page.evaluate("""(src) => new Promise((done) => {
        document.addEventListener('securitypolicyviolation', (e) => done('refused ' + e.effectiveDirective));
        const script = document.createElement('script');
        script.src = src;
        script.onload = () => done(String(window.__stolen));
        document.head.append(script);
      })""", created["url"] + "/steal.js")
    assert outcome == "refused script-src-elem"
    tab.errors.clear()  # the refusal is logged as a console error


# --- account, billing, keys ------------------------------------------------------------------

def test_account_shows_plan_and_usage_and_upgrade_goes_to_stripe(server, tab, stripe):
    token = signed_in(tab, server, "payer@example.com")
    created = share(server, token, "Counted", MOCKUP_FILES)
    post_spike(server, created["share_id"], rating="like")
    page = tab.page
    page.route("https://checkout.stripe.com/**", lambda route: route.fulfill(
        status=200, content_type="text/html", body="<h1>Stripe Checkout (test)</h1>"))
    page.click("nav >> text=Account")
    page.wait_for_selector("#account-email")
    assert page.locator("#account-email").inner_text() == "payer@example.com"
    assert page.locator("#account-tier").inner_text() == "Free"
    text = page.locator("main").inner_text()
    assert re.search(r"Spikes this period: 1 of \d+", text) and re.search(r"Active shares: 1 of \d+", text)
    page.click("#upgrade")
    page.wait_for_url(re.compile(r"https://checkout\.stripe\.com/c/pay/cs_test_"))
    checkout = stripe.calls("/v1/checkout/sessions")[-1]
    assert checkout.form["success_url"] == server.url + "/dashboard?billing=success"

    page.goto(server.url + "/dashboard?billing=success#/account")
    page.wait_for_selector("text=Thanks! Your subscription is being activated")
    assert "billing=" not in page.url


def test_an_agent_tier_account_sees_its_costs_and_manages_billing_not_upgrade(server, tab, stripe):
    """The agent tier pays by use already (checkout refuses it): the dashboard shows its tier,
    what this period cost against its cap and the prices, and the portal; no Pro upgrade."""
    from chalicelib.services.accounts import user_id_for
    email = "agent-payer@example.com"
    token = signed_in(tab, server, email)
    stripe.customers["cus_dashboard_agent"] = {"id": "cus_dashboard_agent", "object": "customer", "email": email}
    boto3.client("dynamodb", endpoint_url=server.dynamodb_endpoint_url(), region_name="us-east-1",
                 aws_access_key_id="testing", aws_secret_access_key="testing").update_item(
        TableName=server.table_name("users"), Key={"user_id": {"S": user_id_for(email)}},
        UpdateExpression="SET tier = :agent, stripe_customer_id = :customer, monthly_cap_cents = :cap",
        ExpressionAttributeValues={":agent": {"S": "agent"}, ":customer": {"S": "cus_dashboard_agent"},
                                   ":cap": {"N": "500"}})
    created = share(server, token, "Metered", MOCKUP_FILES)  # 1 cent
    post_spike(server, created["share_id"], rating="like")  # 0.1 cent
    usage = requests.get(server.url + "/usage", headers=auth(token), timeout=30).json()
    assert (usage["tier"], usage["cost_this_period_cents"], usage["monthly_cap_cents"]) == ("agent", 2, 500)
    page = tab.page
    page.route("https://billing.stripe.com/**", lambda route: route.fulfill(
        status=200, content_type="text/html", body="<h1>Stripe billing portal (test)</h1>"))
    page.click("nav >> text=Account")
    page.wait_for_selector("#account-email")
    assert page.locator("#account-tier").inner_text() == "Agent (pay per use)"
    assert page.locator("#upgrade").count() == 0
    text = page.locator("main").inner_text()
    assert "Spikes this period: 1 (no limit)" in text and "Active shares: 1 (no limit)" in text
    assert "Spent this period: 2 cents of 500 cents" in text
    assert page.locator("#use-cost").get_attribute("value") == "2"
    prices = page.locator("#agent-prices").inner_text()
    assert "0.1 cents per spike" in prices and "1 cent per share" in prices
    page.click("#billing-portal")
    page.wait_for_url(re.compile(r"https://billing\.stripe\.com/p/session/test_bps_"))
    assert stripe.calls("/v1/billing_portal/sessions")[-1].form["customer"] == "cus_dashboard_agent"


def test_a_pro_account_manages_billing_and_is_not_offered_pro(server, tab):
    signed_in(tab, server, "already-pro@example.com")
    make_pro(server, "already-pro@example.com")
    page = tab.page
    page.goto(server.url + "/dashboard#/account")
    page.wait_for_selector("#billing-portal")
    assert page.locator("#account-tier").inner_text() == "Pro"
    assert page.locator("#upgrade").count() == 0 and "Spent this period" not in page.locator("main").inner_text()


def test_billing_errors_are_shown_in_words(server, tab, stripe):
    signed_in(tab, server, "portal@example.com")
    page = tab.page
    page.goto(server.url + "/dashboard#/account")
    page.wait_for_selector("#billing-portal")
    page.click("#billing-portal")  # no Stripe customer yet
    page.wait_for_selector("main .err")
    assert page.locator("main .err").inner_text().strip() != ""
    assert "request req_" in page.locator("main .err").inner_text()


def test_api_keys_are_created_shown_once_scoped_and_revoked(server, tab):
    token = signed_in(tab, server, "keys@example.com")
    share(server, token, "Keyed", MOCKUP_FILES)
    page = tab.page
    page.click("nav >> text=API keys")
    page.wait_for_selector("h1:has-text('API keys')")
    assert "No keys yet." in page.locator("main").inner_text()
    page.fill("#key-name", "CI agent")
    page.select_option("#key-scope", "read")
    page.click("text=Create key")
    page.wait_for_selector("#new-key")
    key = page.locator("#new-key").input_value()
    assert key.startswith("sk_spikes_")
    assert page.evaluate("document.activeElement.id") == "new-key"  # selected, ready to copy
    tab.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    page.click("#copy-key")
    page.wait_for_selector("text=Copied.")
    assert page.evaluate("navigator.clipboard.readText()") == key

    # The key works within its scope only.
    assert requests.get(server.url + "/shares", headers=auth(key), timeout=30).status_code == 200
    refused = requests.post(server.url + "/shares/uploads", headers=auth(key), timeout=30,
                            json={"name": "x", "files": [{"path": "index.html", "size": 1}]})
    assert (refused.status_code, refused.json()["code"]) == (403, "SCOPE_DENIED")

    # Shown once: after a reload only its prefix remains, with its last use.
    page.reload()
    page.wait_for_selector("tr[data-key]")
    row = page.locator("tr[data-key]").first
    assert key not in page.content() and key[:14] in row.inner_text()
    assert "CI agent" in row.inner_text() and "read" in row.inner_text()
    assert "Never" not in row.locator("td").nth(3).inner_text()  # last used: just now

    page.once("dialog", lambda dialog: dialog.accept())
    row.locator("text=Revoke").click()
    page.wait_for_selector("text=Key CI agent revoked.")
    assert requests.get(server.url + "/shares", headers=auth(key), timeout=30).status_code == 401

    # Finer scopes replace the choice: a key that may only read feedback.
    page.fill("#key-name", "feedback reader")
    page.click("summary:has-text('Finer scopes')")
    page.check("input[value='spikes:read']")
    page.click("text=Create key")
    page.wait_for_selector("#new-key")
    reader = page.locator("#new-key").input_value()
    assert reader != key
    assert requests.get(server.url + "/spikes", headers=auth(reader), timeout=30).status_code == 200
    denied = requests.get(server.url + "/shares", headers=auth(reader), timeout=30)
    assert (denied.status_code, denied.json()["code"]) == (403, "SCOPE_DENIED")
    expect(page.locator("tr[data-key]:has-text('feedback reader')")).to_contain_text("spikes:read")


def test_the_key_list_shows_the_newest_page_and_older_keys_on_demand(server, tab):
    """GET /auth/api-keys answers a page at a time (revoked keys pile up with churn): the
    dashboard lists the newest 100 and follows X-Next-Cursor with "Show older keys"."""
    from chalicelib.services.accounts import user_id_for
    email = "many-keys@example.com"
    signed_in(tab, server, email)
    dynamodb = boto3.client("dynamodb", endpoint_url=server.dynamodb_endpoint_url(), region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")
    for start in range(0, 103, 25):
        dynamodb.batch_write_item(RequestItems={server.table_name("keys"): [{"PutRequest": {"Item": {
            "key_id": {"S": "key_" + "".join("abcdefghijklmnop"[int(c)] for c in f"{i:016d}")},
            "key_hash": {"S": "h"}, "key_prefix": {"S": f"p{i:07d}"}, "user_id": {"S": user_id_for(email)},
            "name": {"S": f"churn {i}"}, "scopes": {"S": "full"}, "created_at": {"S": f"2026-06-01T00:{i // 60:02d}:{i % 60:02d}.000Z"},
            "revoked_at": {"S": "2026-06-02T00:00:00.000Z"}}}} for i in range(start, min(start + 25, 103))]})
    page = tab.page
    page.click("nav >> text=API keys")
    page.wait_for_selector("tr[data-key]")
    assert page.locator("tr[data-key]").count() == 100
    assert "churn 102" in page.locator("tr[data-key]").first.inner_text()
    page.click("#older-keys")
    page.wait_for_selector("tr[data-key]:has-text('churn 0')")
    assert page.locator("tr[data-key]").count() == 103
    assert page.locator("#older-keys").count() == 0



def test_the_share_list_shows_the_newest_page_and_older_shares_on_demand(server, tab):
    """GET /shares ends where one answer does (docs/security.md 305): the dashboard lists the
    newest 100 and follows X-Next-Cursor with "Show older shares"."""
    token = signed_in(tab, server, "many-shares@example.com")
    make_pro(server, "many-shares@example.com")  # no share cap
    for number in range(103):
        share(server, token, f"pile {number:03d}", {"index.html": b"<h1>pile</h1>"})
    # The API's one array is the order to show (newest first; shares of the same instant in the index's order).
    listed = requests.get(f"{server.url}/shares", headers=auth(token), timeout=30).json()
    assert len(listed) == 103
    page = tab.page
    page.reload()
    page.wait_for_selector("tr[data-share]")
    assert [row.get_attribute("data-share") for row in page.locator("tr[data-share]").all()] == \
        [item["id"] for item in listed[:100]]
    page.click("#older-shares")
    page.wait_for_selector(f"tr[data-share='{listed[-1]['id']}']")
    assert [row.get_attribute("data-share") for row in page.locator("tr[data-share]").all()] == \
        [item["id"] for item in listed]  # each once, in order, across the two pages
    assert page.locator("#older-shares").count() == 0

# --- phone width, keyboard, speed, screenshots -----------------------------------------------

def test_phone_width_keyboard_use_and_screenshots(server, browser, tmp_path):
    desktop = Tab(browser, DESKTOP)
    phone = Tab(browser, PHONE)
    try:
        token = signed_in(desktop, server, "showcase@example.com")
        created = share(server, token, "Checkout redesign", MOCKUP_FILES)
        _seed_feedback(server, created["share_id"])
        for opened, name in ((desktop, "desktop"), (phone, "phone")):
            page = opened.page
            if opened is phone:
                page.goto(server.url + "/dashboard")
                page.evaluate("([key, value]) => localStorage.setItem(key, value)",
                              [SESSION_KEY, json.dumps({"token": token, "email": "showcase@example.com"})])
            page.goto(f"{server.url}/dashboard#/shares/{created['share_id']}")
            page.reload()
            page.wait_for_selector("li.spike")
            screenshot(page, f"dashboard-{name}.png", tmp_path)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= page.viewport_size["width"], f"{name}: scrolls sideways ({width}px)"

        # Keyboard only, at phone width: skip link, then every control is reachable by Tab.
        page = phone.page
        page.goto(server.url + "/dashboard#/")
        page.wait_for_selector("h1:has-text('Your shares')")
        screenshot(page, "dashboard-phone-shares.png", tmp_path)
        reached = []
        for _ in range(14):
            page.keyboard.press("Tab")
            reached.append(page.evaluate("document.activeElement.textContent.trim() || document.activeElement.id"))
        assert "Skip to content" in reached and "Sign out" in reached and "Choose a folder" in reached
        assert "Checkout redesign" in reached
        while page.evaluate("document.activeElement.textContent.trim()") != "Checkout redesign":
            page.keyboard.press("Shift+Tab")
        page.keyboard.press("Enter")
        page.wait_for_selector("h1:has-text('Checkout redesign')")
        expect(page.locator("h1")).to_be_focused()  # focus moves to the new view

        # Loads in under a second on the local server (the page, its modules and the first API call).
        page.goto(server.url + "/dashboard")
        page.wait_for_selector("h1:has-text('Your shares')")
        timing = page.evaluate("performance.getEntriesByType('navigation')[0].toJSON()")
        shown = page.evaluate("performance.now()")
        print(f"dashboard: DOMContentLoaded {timing['domContentLoadedEventEnd']:.0f} ms, shares shown by {shown:.0f} ms")
        assert timing["domContentLoadedEventEnd"] < 1000
        assert desktop.errors == [] and phone.errors == []
    finally:
        desktop.close()
        phone.close()
