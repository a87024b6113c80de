"""Security regressions in a real browser against the real local server (issue 10,
docs/security.md): a framed page of a protected share never carries its access path, and a
sign-in link opened by someone who did not ask for it hands nobody else a session."""
from __future__ import annotations

import requests
import pytest

from tests.e2e.test_browser_shares import MOCKUP_FILES, browser, make_pro, page, share  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

FRAMED_INDEX = (b'<!doctype html><html><head><title>Framed</title></head><body><h1>Outer</h1>'
                b'<iframe id="inner" src="pages/inner.html" width="600" height="400"></iframe></body></html>')
INNER_PAGE = b'<!doctype html><html><head><title>Inner</title></head><body><h1 id="inner-title">Inner</h1></body></html>'


def test_a_framed_page_of_a_protected_share_never_reports_its_access_path(live_server, page):
    token = live_server.sign_in("framer@example.com")
    make_pro(live_server, "framer@example.com")
    created = share(live_server, token, "Framed Secret", {**MOCKUP_FILES, "index.html": FRAMED_INDEX,
                                                          "pages/inner.html": INNER_PAGE}, password="correct horse")
    page.goto(created["url"] + "/")
    page.fill("input[name=password]", "correct horse")
    page.click("button[type=submit]")
    page.wait_for_selector("h1:has-text('Outer')")
    frame = page.frame_locator("#inner")
    # The frame was asked for under the access path; it must end on the clean URL. Browsers do
    # not send the unlock cookie to a sandboxed page's frame, so it asks for the password.
    frame.locator("input[name=password]").fill("correct horse")
    frame.locator("button[type=submit]").click()
    frame.locator("#inner-title").wait_for()
    inner = next(f for f in page.frames if f != page.main_frame)
    assert "~u." not in inner.url and "~u." not in inner.evaluate("location.href")
    assert inner.url == created["url"] + "/pages/inner.html"
    # Feedback sent from the framed page carries the clean URL.
    frame.locator("spikes-widget .spk-launcher").click()
    frame.locator("spikes-widget .spk-mode-page").click()
    frame.locator("spikes-widget .spk-rating[data-rating=meh]").click()
    frame.locator("spikes-widget .spk-comment").fill("framed feedback")
    frame.locator("spikes-widget .spk-submit").click()
    frame.locator("spikes-widget .spk-success").wait_for(state="visible", timeout=15000)
    listed = requests.get(live_server.url + "/spikes", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert listed.status_code == 200, listed.text
    urls = [spike["url"] for spike in listed.json()["data"] if spike["comments"] == "framed feedback"]
    assert urls == [created["url"] + "/pages/inner.html"]


def _open_link(live_server, page, email: str, mark: int) -> None:
    token = live_server.magic_link_token(email, start=mark, timeout=30)
    page.goto(f"{live_server.url}/auth/verify?token={token}")


def test_an_unrequested_sign_in_link_hands_the_requester_nothing(live_server, page):
    # The attacker starts a login for the victim's address and keeps polling.
    mark = len(live_server.lines())
    started = requests.post(live_server.url + "/auth/login", json={"email": "victim@example.com"}, timeout=30).json()
    poll = f"{live_server.url}/auth/poll?poll_token={started['poll_token']}"
    live_server.magic_link_token("victim@example.com", start=mark, timeout=30)  # waits for the mail
    mail = live_server.output().split("MAIL to victim@example.com", 1)[1]
    assert started["code"] in mail and "127.0.0.1" in mail
    _open_link(live_server, page, "victim@example.com", mark)
    # The page says what would be approved: the code the requester shows, when, from where.
    assert page.locator("#code").inner_text() == started["code"]
    assert "UTC" in page.locator("#when").inner_text() and page.locator("#origin").inner_text() == "127.0.0.1"
    # Clicking the button without the explicit confirmation approves nothing.
    page.click("#approve")
    page.wait_for_timeout(500)
    assert page.evaluate("document.getElementById('c').validity.valueMissing") is True
    assert page.locator("#m").inner_text() == ""  # nothing was sent
    assert requests.get(poll, timeout=30).status_code == 202
    # Signing in with the link (the mail's curl line) gives the victim a session, the poller nothing.
    token = live_server.magic_link_token("victim@example.com", start=mark)
    assert requests.post(live_server.url + "/auth/verify", json={"login_token": token}, timeout=30).status_code == 200
    polled = requests.get(poll, timeout=30)
    assert polled.status_code == 401 and "token" not in polled.json()


def test_the_cli_email_flow_completes_after_approval(live_server, page):
    # Exactly what `spikes login --email` sends: POST /auth/login, then GET /auth/poll?email=.
    mark = len(live_server.lines())
    cli = {"User-Agent": "ureq/2.12.1"}
    assert requests.post(live_server.url + "/auth/login", json={"email": "cli@example.com"}, headers=cli,
                         timeout=30).status_code in (200, 202)
    poll = f"{live_server.url}/auth/poll?email=cli@example.com"
    assert requests.get(poll, headers=cli, timeout=30).status_code == 202
    _open_link(live_server, page, "cli@example.com", mark)
    page.check("#c")
    page.click("#approve")
    page.wait_for_selector("#m.ok")
    done = requests.get(poll, headers=cli, timeout=30)
    assert done.status_code == 200 and done.json()["verified"] is True
    me = requests.get(live_server.url + "/me", headers={"Authorization": f"Bearer {done.json()['token']}"}, timeout=30)
    assert me.json()["email"] == "cli@example.com"


def test_the_cli_device_flow_completes_after_approval(live_server, page):
    # Exactly what `spikes login` does: POST /auth/device with "{}", open verification_url?code=,
    # poll GET /auth/device/poll?device_code=.
    cli = {"User-Agent": "ureq/2.12.1", "Content-Type": "application/json"}
    device = requests.post(live_server.url + "/auth/device", data="{}", headers=cli, timeout=30).json()
    poll = f"{live_server.url}/auth/device/poll?device_code={device['device_code']}"
    assert requests.get(poll, headers=cli, timeout=30).status_code == 202
    mark = len(live_server.lines())
    page.goto(f"{device['verification_url']}?code={device['user_code']}")
    assert device["user_code"] in page.locator("#details").inner_text()
    page.fill("#e", "device@example.com")
    page.click("button[type=submit]")
    page.wait_for_selector("#m.ok")
    _open_link(live_server, page, "device@example.com", mark)
    assert page.locator("#code").inner_text() == device["user_code"]
    page.check("#c")
    page.click("#approve")
    page.wait_for_selector("#m.ok")
    done = requests.get(poll, headers=cli, timeout=30)
    assert done.status_code == 200 and done.json()["status"] == "complete" and done.json()["token"]
