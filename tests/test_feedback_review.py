"""The feedback review (docs/security.md, "The feedback review"): POST/GET/PATCH/DELETE /spikes,
exports and cursors, read again adversarially against the contract and the real clients. Each
test failed before its fix."""
from __future__ import annotations

from tests.conftest import call, sign_in
from tests.lost_answers import commit_answer_lost, skip_on_moto
from tests.test_shares import INDEX, share_site, upload

REVIEWER = {"id": "r-1", "name": "Jane", "email": "jane@example.com"}


def _post(client, project_key: str, **fields) -> str:
    status, body, _ = call(client, "POST", "/spikes", {"type": "page", "projectKey": project_key, "comments": "hi",
                                                       "reviewer": REVIEWER, **fields})
    assert status == 201, body
    return body["id"]


# --- A resolve answered to a key without spikes:read shows no reviewer's address --------------

def test_a_key_without_spikes_read_is_not_shown_reviewers_emails_by_a_resolve(client, user_token):
    """GET /spikes/{id} refuses such a key, and listings leave the addresses out for it (19),
    but PATCH answered the whole spike, address included: a posting bot's key learnt every
    reviewer's address from the public listing's ids."""
    share = share_site(client, user_token, "Survey")
    spike_id = _post(client, share["share_id"])
    writer = call(client, "POST", "/auth/api-key", {"scopes": "spikes:write"}, token=user_token)[1]["api_key"]
    assert call(client, "GET", f"/spikes/{spike_id}", token=writer)[0] == 403
    for resolved in (True, False):
        status, body, _ = call(client, "PATCH", f"/spikes/{spike_id}", {"resolved": resolved}, token=writer)
        assert status == 200 and body["resolved"] is resolved, body
        assert body["reviewer"] == {"id": "r-1", "name": "Jane"}, body
    # The owner's session, and a key that may read feedback, still see it.
    for token in (user_token, call(client, "POST", "/auth/api-key", {"scopes": "spikes:read spikes:write"},
                                   token=user_token)[1]["api_key"]):
        assert call(client, "PATCH", f"/spikes/{spike_id}", {"resolved": True}, token=token)[1]["reviewer"] == REVIEWER


# --- A deletion whose commit answer was lost is answered as done -------------------------------

def test_a_share_spike_whose_deletion_answer_was_lost_is_deleted_once_and_answered(backend_client, store_backend):
    """DynamoDB can commit a transaction and answer 500; the retry, sent without a client
    request token, met the spike's own `exists` condition: `404 Spike not found` for the
    spike just deleted (the MCP server's delete_spike reported a failure)."""
    skip_on_moto(store_backend)
    client = backend_client
    owner = sign_in(client, "lost-delete@example.com")
    _, share, _ = upload(client, owner, [("index.html", INDEX)], {"name": "Deleting"})
    kept, gone = _post(client, share["share_id"]), _post(client, share["share_id"])
    with commit_answer_lost("spikes") as lost:
        status, body, _ = call(client, "DELETE", f"/spikes/{gone}", token=owner)
    assert lost and (status, body.get("id")) == (200, gone), body
    assert [spike["id"] for spike in call(client, "GET", "/spikes", token=owner)[1]["data"]] == [kept]
    [listed] = call(client, "GET", "/shares", token=owner)[1]
    assert listed["spike_count"] == 1  # counted out once


# --- A spike id that names a route is refused --------------------------------------------------

def test_a_spike_id_that_names_a_route_is_refused(client, user_token):
    """Client ids are kept, and /spikes/export is the export: a spike posted as `export` (by any
    visitor of a share's page) was stored, and its owner's PATCH and DELETE /spikes/export were
    405, in the dashboard too: feedback nobody could remove short of deleting the share."""
    share = share_site(client, user_token, "Planted")
    status, body, _ = call(client, "POST", "/spikes", {"id": "export", "type": "page", "projectKey": share["share_id"],
                                                       "comments": "remove me if you can"})
    assert (status, body["code"]) == (400, "VALIDATION_ERROR"), body
    assert [detail["field"] for detail in body["details"]] == ["id"]
    # The message named the id as "{id!r}", a placeholder pydantic never fills in.
    assert body["details"][0]["message"].startswith("The id 'export' is reserved"), body
    assert "{" not in body["details"][0]["message"]
    assert call(client, "GET", f"/spikes?project={share['share_id']}")[1]["data"] == []
    assert _post(client, share["share_id"], id="exports") == "exports"  # only the route's own name


# --- Page context longer than its limits is cut, however long -------------------------------

def test_a_post_with_a_url_past_the_json_body_limit_is_kept_and_its_url_cut(client):
    """A URL (or title) of ~100 KB made the body pass the 64 KiB JSON limit: a 413 before the
    cutting, and the widget (no retry) lost the rating and comment."""
    url = "https://example.com/app?state=" + "x" * 100_000
    status, body, _ = call(client, "POST", "/spikes", {"type": "page", "projectKey": "long-urls", "url": url,
                                                       "page": "p" * 100_000, "comments": "kept", "rating": "love"})
    assert status == 201, body
    stored = call(client, "GET", "/spikes?project=long-urls")[1]["data"]
    assert [(s["comments"], len(s["url"]), len(s["page"])) for s in stored] == [("kept", 4000, 2000)]


def test_a_post_body_past_its_own_limit_is_still_a_413(client):
    status, body, _ = call(client, "POST", "/spikes", raw=b'{"type":"page","projectKey":"x","url":"'
                           + b"x" * (600 * 1024) + b'"}')
    assert (status, body["code"]) == (413, "SIZE_LIMIT"), body


# --- A limit past nine digits is the maximum, as any limit above it ---------------------------

def test_a_limit_of_many_digits_is_read_as_the_maximum(client):
    _post(client, "many-digits")
    status, body, _ = call(client, "GET", "/spikes?project=many-digits&limit=99999999999999")
    assert status == 200 and len(body["data"]) == 1, body
    assert call(client, "GET", "/spikes?project=many-digits&limit=" + "9" * 101)[0] == 400
