"""GET /docs in Chromium: Swagger UI renders the document from our own assets (no request
leaves the server) and a visitor can authorize with their token and try a call."""
from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.e2e.test_browser_shares import browser, page  # noqa: F401 - fixtures

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


def test_docs_render_and_try_a_call_with_a_token(live_server, page, tmp_path):  # noqa: F811
    token = live_server.sign_in("reader@example.com")
    hosts = set()
    page.on("request", lambda request: hosts.add(urlsplit(request.url).netloc))
    page.goto(live_server.url + "/docs")
    page.wait_for_selector(".opblock", timeout=30_000)
    assert page.locator(".opblock").count() >= 40
    assert hosts == {urlsplit(live_server.url).netloc}  # no CDN, nothing else

    page.click("button.authorize")
    page.fill(".dialog-ux .auth-container:has(h4:has-text('bearerAuth')) input", token)
    page.click(".dialog-ux .auth-container:has(h4:has-text('bearerAuth')) button.authorize")
    page.click("button.btn-done")

    operation = page.locator("#operations-auth-get_v1_me")
    operation.locator(".opblock-summary").click()
    operation.locator("button.try-out__btn").click()
    operation.locator("button.execute").click()
    status = operation.locator(".live-responses-table tbody .response-col_status").first
    status.wait_for(timeout=15_000)
    assert status.inner_text().strip().startswith("200")
    assert "reader@example.com" in operation.locator(".live-responses-table tbody .microlight").first.inner_text()
    page.screenshot(path=str(tmp_path / "docs.png"))
