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
