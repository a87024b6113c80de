"""Findings of the conformance audit against the contract (shared/seeds/002_…) and the real
clients (shared/CLIENTS.md): each test pins one place where the API answered differently from
what the contract writes down or from what a client sends and parses (docs/api-notes.md)."""
from __future__ import annotations

import json

from tests.conftest import ADMIN_TOKEN, call, sign_in
from tests.factories import make_share
from tests.test_clients import Paginated, ureq
from tests.test_shares import PNG, upload

CURL = {"User-Agent": "curl/8.5.0", "Accept": "*/*"}


def post_spikes(client, project: str, count: int) -> None:
    for n in range(count):
        body = {"type": "page", "projectKey": project, "page": "/", "comments": f"n{n}"}
        assert call(client, "POST", "/spikes", body)[0] == 201


# --- GET /spikes: "limit — Items per page (default 100, max 1000)" ---------------------------

def test_a_credentialed_listing_defaults_to_the_contracts_100(client, env):
    """`curl "…/spikes?token=$SPIKES_TOKEN"`, the contract's admin example, gets the default page
    of 100 and a cursor; so does a user's bearer token from any client but the Spikes CLI."""
    env(RATE_SPIKES_PER_MINUTE="1000")
    share = make_share("owner@example.com", "big-site", tier="pro")
    post_spikes(client, share.share_id, 101)
    token = sign_in(client, "owner@example.com")
    for query, bearer in ((f"?token={ADMIN_TOKEN}", None), ("", token)):
        status, page, _ = call(client, "GET", "/spikes" + query, token=bearer, headers=CURL)
        assert status == 200 and len(page["data"]) == 100 and isinstance(page["next_cursor"], str)
        rest = call(client, "GET", f"/spikes{query or '?'}&cursor={page['next_cursor']}", token=bearer, headers=CURL)[1]
        assert len(rest["data"]) == 1 and rest["next_cursor"] is None


def test_pull_from_a_share_gets_more_than_the_default_page(client, env):
    """`spikes pull --from <share url>` (ureq, `?project=<slug>`, no token) reads the first page
    only: with the contract's 100 it would silently leave the rest of the share's feedback out."""
    env(RATE_SPIKES_PER_MINUTE="1000")
    share = make_share("owner@example.com", "big-site", tier="pro")
    post_spikes(client, share.share_id, 130)
    status, body = ureq(client, "GET", "/spikes?project=big-site")
    assert status == 200
    page = Paginated.model_validate_json(body)
    assert len(page.data) == 130 and page.next_cursor is None
    assert {spike.comments for spike in page.data} == {f"n{n}" for n in range(130)}
    # Anyone else reading the same public listing gets the contract's default page.
    assert len(json.loads(client.http.get("/spikes?project=big-site", headers=CURL).body)["data"]) == 100


# --- GET /s/:slug: "curl https://your-api.example/s/my-project" → "HTML content with Spikes
# widget script injected" ------------------------------------------------------------------

def test_the_share_url_itself_answers_the_page_with_the_widget(client):
    token = sign_in(client, "user@example.com")
    page = b'<html><head><link rel=stylesheet href="css/site.css"></head><body><img src="logo.png"></body></html>'
    created = upload(client, token, [("index.html", page), ("css/site.css", b"h1{}"), ("logo.png", PNG)],
                     {"slug": "my-project", "title": "My Project"})[1]
    response = client.http.get("/s/my-project", headers=CURL)
    assert response.status_code == 200 and response.headers["Content-Type"] == "text/html; charset=utf-8"
    text = response.body.decode()
    assert f'data-project="{created["share_id"]}"' in text and "/widget.js" in text
    # Served at /s/my-project (no slash), its relative links still resolve under the share.
    assert '<head><base href="http://127.0.0.1:8000/s/my-project/">' in text
    assert response.headers["Content-Security-Policy"].startswith("sandbox")
    assert "Sec-Fetch-Dest" in response.headers["Vary"]
    # A browser's navigation is sent to the trailing slash, where the page needs no <base>.
    redirect = client.http.get("/s/my-project", headers={**CURL, "Sec-Fetch-Dest": "document"})
    assert redirect.status_code == 302 and redirect.headers["Location"].endswith("/s/my-project/")
    assert "<base" not in client.http.get("/s/my-project/", headers=CURL).body.decode()


# --- DELETE /shares/:id: "Delete a share and export its spikes" --------------------------------

def test_a_share_whose_feedback_outgrows_one_answer_is_not_deleted_without_it(client, monkeypatch):
    """A Lambda answer carries at most 6 MB. A share with more feedback than that was deleted,
    then its answer (the only copy of the export) failed: the feedback was lost. Now the
    export is refused before anything is deleted, and the owner is told how to take it."""
    from chalicelib.services import exports
    monkeypatch.setattr(exports, "MAX_INLINE_BYTES", 3000)  # stands in for the 5 MB budget
    token = sign_in(client, "user@example.com")
    created = upload(client, token, [("index.html", b"<html><body>Hi</body></html>")], {"slug": "big"})[1]
    share_id = created["share_id"]
    for n in range(6):
        body = {"type": "page", "projectKey": share_id, "page": "/", "comments": f"{n}" + "x" * 600}
        assert call(client, "POST", "/spikes", body)[0] == 201
    for method in ("GET", "DELETE"):
        status, body, _ = call(client, method, f"/shares/{share_id}", token=token)
        assert (status, body["code"]) == (409, "EXPORT_TOO_LARGE"), body
        assert f"/spikes/export?project={share_id}" in body["error"]
    # Nothing was deleted: the share is served and its feedback can be exported.
    assert call(client, "GET", "/shares", token=token)[1][0]["spike_count"] == 6
    assert client.http.get("/s/big/", headers=CURL).status_code == 200
    exported = client.http.get(f"/spikes/export?project={share_id}&format=jsonl",
                               headers={**CURL, "Authorization": f"Bearer {token}"})
    assert exported.status_code == 303  # this big, the export is handed over through S3
    assert len(call(client, "GET", f"/spikes?project={share_id}", token=token)[1]["data"]) == 6
    # Once it is downloaded, the owner deletes the share without asking for it again.
    status, body, _ = call(client, "DELETE", f"/shares/{share_id}?exported_spikes=false", token=token)
    assert status == 200 and body["exported_spikes"] == []
    assert call(client, "GET", "/shares", token=token)[1] == []
    assert call(client, "GET", f"/spikes?token={ADMIN_TOKEN}")[1]["data"] == []

