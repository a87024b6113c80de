"""POST/GET/PATCH/DELETE /spikes and export, in-process on moto."""
from __future__ import annotations

import csv
import io
import json

import pytest

from chalicelib.store import spike_counters
from chalicelib.store.models import LedgerItem, Spike
from tests.conftest import ADMIN_TOKEN, call, sign_in
from tests.factories import make_share

PAGE_SPIKE = {
    "id": "V1StGXR8_Z5jdHi6B-myT", "type": "page", "projectKey": "my-project", "page": "Home",
    "url": "https://host/path?x", "reviewer": {"id": "r-123", "name": "Jane", "email": "jane@example.com"},
    "rating": "love", "comments": "Great", "timestamp": "2026-03-10T13:02:29.123Z",
    "viewport": {"width": 1440, "height": 900},
}
ELEMENT_SPIKE = {
    **PAGE_SPIKE, "id": "el-000000000000000001", "type": "element", "selector": "button.submit",
    "xpath": "/html/body/div[2]/button[1]", "elementText": "Submit", "rating": "meh",
    "boundingBox": {"x": 10.4, "y": 20.6, "width": 100, "height": 30},
}


def post(client, body, **kwargs):
    return call(client, "POST", "/spikes", body, **kwargs)


def listing(client, query="", token=None):
    status, body, headers = call(client, "GET", f"/spikes{query}", token=token)
    assert status == 200, body
    return body


def test_widget_page_feedback_is_stored_and_listed_in_client_format(client):
    status, body, headers = post(client, PAGE_SPIKE)
    assert status == 201 and body["ok"] is True and body["id"] == PAGE_SPIKE["id"]  # the client's id, kept
    assert headers["Access-Control-Allow-Origin"] == "*"
    data = listing(client, "?project=my-project")
    assert data["next_cursor"] is None
    [item] = data["data"]
    assert item == {
        "id": body["id"], "type": "page", "projectKey": "my-project", "page": "Home", "url": "https://host/path?x",
        "comments": "Great", "timestamp": "2026-03-10T13:02:29.123Z",
        "reviewer": {"id": "r-123", "name": "Jane"}, "rating": "love",  # public: no reviewer's e-mail
        "resolved": False, "resolvedAt": None, "viewport": {"width": 1440, "height": 900},
    }
    [as_admin] = listing(client, f"?project=my-project&token={ADMIN_TOKEN}")["data"]
    assert as_admin == {**item, "reviewer": {"id": "r-123", "name": "Jane", "email": "jane@example.com"}}


def test_reviewers_emails_are_shown_to_the_share_owner_not_to_every_visitor(client):
    """A share's page carries its id, so anyone who opened it can list its feedback by
    ?project=: the addresses reviewers gave are left out of that listing and its export, except
    for the share's owner and the admin."""
    owner = sign_in(client, "owner@example.com")
    stranger = sign_in(client, "stranger@example.com")
    share = make_share("owner@example.com", "site")
    assert post(client, {**PAGE_SPIKE, "projectKey": share.share_id})[0] == 201
    reviewer = {"id": "r-123", "name": "Jane", "email": "jane@example.com"}
    for key in (share.share_id, "site"):
        assert listing(client, f"?project={key}")["data"][0]["reviewer"] == {"id": "r-123", "name": "Jane"}
        assert listing(client, f"?project={key}", token=stranger)["data"][0]["reviewer"] == {"id": "r-123", "name": "Jane"}
        assert listing(client, f"?project={key}", token=owner)["data"][0]["reviewer"] == reviewer
    assert listing(client, "", token=owner)["data"][0]["reviewer"] == reviewer  # the owner's own listing
    # A wrong credential is refused, not taken for anonymity (the listing reads who asks).
    status, body, _ = call(client, "GET", f"/spikes?project={share.share_id}", token="not-a-token")
    assert status == 401 and body["code"] == "AUTH_FAILED"
    public_csv = client.http.get(f"/spikes/export?project={share.share_id}&format=csv").body.decode()
    assert "jane@example.com" not in public_csv and "Jane" in public_csv
    owners_csv = client.http.get(f"/spikes/export?project={share.share_id}&format=csv",
                                 headers={"Authorization": f"Bearer {owner}"}).body.decode()
    assert "jane@example.com" in owners_csv


def test_element_feedback_keeps_selector_xpath_text_and_integer_box(client):
    status, body, _ = post(client, ELEMENT_SPIKE)
    assert status == 201
    [item] = listing(client, "?project=my-project")["data"]
    assert item["selector"] == "button.submit" and item["xpath"] == "/html/body/div[2]/button[1]"
    assert item["elementText"] == "Submit"
    assert item["boundingBox"] == {"x": 10, "y": 21, "width": 100, "height": 30}


def test_minimal_and_lenient_payloads_are_accepted(client):
    for body in (
        {"type": "page", "projectKey": "p", "rating": None, "comments": ""},
        {"type": "page", "project": "p", "unknownField": {"nested": True}},
        {"type": "page", "projectKey": "p", "comments": None, "page": None, "reviewer": None},
        {"page": "/", "comments": "from mcp", "type": "element", "projectKey": "p", "selector": "h1"},
    ):
        status, answer, _ = post(client, body)
        assert status == 201, answer
    items = listing(client, "?project=p")["data"]
    assert len(items) == 4
    for item in items:
        assert item["reviewer"] == {"id": "anon", "name": "Anonymous"}
        assert all(isinstance(item[key], str) for key in ("id", "type", "projectKey", "page", "url", "comments",
                                                          "timestamp"))


@pytest.mark.parametrize("body, field", [
    ({"projectKey": "p"}, "type"),
    ({"type": "popup", "projectKey": "p"}, "type"),
    ({"type": "page"}, "projectKey"),
    ({"type": "page", "projectKey": "p", "rating": "great"}, "rating"),
    ({"type": "page", "projectKey": "p", "comments": "x" * 10_001}, "comments"),
    ({"type": "page", "projectKey": "p" * 201}, "projectKey"),
    ({"type": "page", "projectKey": "p", "id": "bad id with spaces"}, "id"),
    ({"type": "page", "projectKey": "p", "viewport": {"width": -1, "height": 5}}, "viewport.width"),
])
def test_invalid_spikes_are_refused_with_field_details(client, body, field):
    status, answer, _ = post(client, body)
    assert status == 400 and answer["code"] == "VALIDATION_ERROR"
    assert field in [d["field"] for d in answer["details"]]
    assert listing(client, "?project=p")["data"] == []


def test_over_long_page_context_is_cut_and_the_feedback_kept(client):
    """The widget never retries a refused post: a page URL or selector past its limit must not
    cost the reviewer's rating and comment. A comment past its limit is the reviewer's own
    text, and still refused (above)."""
    long_url = "https://host/app?state=" + "é" * 5000
    status, created, _ = post(client, {**ELEMENT_SPIKE, "id": "long-context", "url": long_url,
                                       "page": "T" * 2500, "selector": "div > " * 500, "xpath": "/div" * 600,
                                       "elementText": "w" * 1200})
    assert status == 201, created
    [item] = [i for i in listing(client, "?project=my-project")["data"] if i["id"] == "long-context"]
    assert item["url"] == long_url[:4000] and len(item["url"]) == 4000
    assert (len(item["page"]), len(item["selector"]), len(item["xpath"]), len(item["elementText"])) == \
        (2000, 2000, 2000, 1000)
    assert (item["rating"], item["comments"]) == ("meh", "Great")


def test_oversized_and_malformed_bodies_are_refused(client):
    status, body, _ = call(client, "POST", "/spikes", raw=json.dumps({**PAGE_SPIKE, "comments": "x" * 600_000}).encode())
    assert status == 413 and body["code"] == "SIZE_LIMIT"
    status, body, _ = call(client, "POST", "/spikes", raw=json.dumps({**PAGE_SPIKE, "comments": "x" * 70_000}).encode())
    assert status == 400 and body["details"][0]["field"] == "comments"  # what a person typed: refused, not cut
    status, body, _ = call(client, "POST", "/spikes", raw=b'{"type": "page", ')
    assert status == 400 and body["code"] == "INVALID_JSON"


def test_same_client_id_twice_stores_one_spike_with_the_same_id(client):
    first = post(client, PAGE_SPIKE)
    second = post(client, {**PAGE_SPIKE, "comments": "edited retry"})
    assert first[0] == second[0] == 201 and first[1]["id"] == second[1]["id"]
    items = listing(client, "?project=my-project")["data"]
    assert len(items) == 1 and items[0]["comments"] == "Great"
    other_project = post(client, {**PAGE_SPIKE, "projectKey": "other"})
    assert other_project[0] == 201 and other_project[1]["id"] == first[1]["id"]  # ids are per project
    assert len(listing(client, "?project=other")["data"]) == 1
    assert len(listing(client, "?project=my-project")["data"]) == 1
    without_id = post(client, {k: v for k, v in PAGE_SPIKE.items() if k != "id"})
    assert without_id[1]["id"].startswith("spk_")


def test_spikes_naming_a_share_by_slug_or_id_belong_to_it(client):
    share = make_share("owner@example.com", "landing")
    post(client, {**PAGE_SPIKE, "id": None, "projectKey": share.share_id})
    post(client, {**PAGE_SPIKE, "id": None, "projectKey": "landing"})
    by_slug = listing(client, "?project=landing")["data"]
    by_id = listing(client, f"?project={share.share_id}")["data"]
    assert len(by_slug) == len(by_id) == 2
    assert {s.share_id for s in Spike.scan()} == {share.share_id}
    assert spike_counters.share_spike_counts([share.share_id])[share.share_id] == 2


def test_free_share_stops_at_its_spike_limit(client, env):
    env(FREE_SPIKE_LIMIT="3")
    share = make_share("owner@example.com", "capped")
    ids = [post(client, {**PAGE_SPIKE, "id": f"client-id-{i}", "projectKey": "capped"})[1]["id"] for i in range(3)]
    status, body, _ = post(client, {**PAGE_SPIKE, "id": "client-id-3", "projectKey": "capped"})
    assert status == 429 and body["code"] == "SPIKE_LIMIT" and body["upgrade_url"]
    # A retry of an accepted spike is still answered with its id, not refused.
    status, body, _ = post(client, {**PAGE_SPIKE, "id": "client-id-0", "projectKey": "capped"})
    assert status == 201 and body["id"] == ids[0]
    assert len(listing(client, f"?project={share.share_id}")["data"]) == 3


def test_pro_share_has_no_spike_limit(client, env):
    env(FREE_SPIKE_LIMIT="2")
    make_share("pro@example.com", "unlimited", tier="pro")
    for i in range(4):
        assert post(client, {**PAGE_SPIKE, "id": f"p{i}", "projectKey": "unlimited"})[0] == 201


def test_post_spikes_is_rate_limited_per_ip_with_headers(client, env):
    env(RATE_SPIKES_PER_MINUTE="3")
    status, _, headers = post(client, {**PAGE_SPIKE, "id": "a1"})
    assert status == 201 and headers["X-RateLimit-Limit"] == "3" and headers["X-RateLimit-Remaining"] == "2"
    assert int(headers["X-RateLimit-Reset"]) > 0
    post(client, {**PAGE_SPIKE, "id": "a2"})
    post(client, {**PAGE_SPIKE, "id": "a3"})
    status, body, headers = post(client, {**PAGE_SPIKE, "id": "a4"})
    assert status == 429 and body == {"error": "Rate limit exceeded", "code": "RATE_LIMIT",
                                      "retry_after": body["retry_after"], "request_id": body["request_id"]}
    assert headers["Retry-After"] == str(body["retry_after"]) and headers["X-RateLimit-Remaining"] == "0"
    assert len(listing(client, "?project=my-project")["data"]) == 3


def test_dynamodb_failure_while_recording_is_a_503_and_nothing_half_written(client, monkeypatch):
    from botocore.exceptions import EndpointConnectionError
    from pynamodb.connection.base import Connection
    share = make_share("owner@example.com", "flaky")

    def unreachable(*_args, **_kwargs):
        raise EndpointConnectionError(endpoint_url="http://dynamodb")
    monkeypatch.setattr(Connection, "transact_write_items", unreachable)
    status, body, headers = post(client, {**PAGE_SPIKE, "projectKey": "flaky"})
    assert status == 503 and int(headers["Retry-After"]) >= 1
    assert list(Spike.scan()) == []
    assert [i.pk for i in LedgerItem.scan() if share.share_id in i.pk] == []


# --- listing ---------------------------------------------------------------------------------

def test_listing_needs_project_or_credentials(client):
    status, body, _ = call(client, "GET", "/spikes")
    assert (status, body["code"]) == (401, "AUTH_REQUIRED")
    status, body, _ = call(client, "GET", "/spikes?token=wrong")
    assert (status, body["code"]) == (401, "AUTH_FAILED")


def test_filters_page_reviewer_rating_resolved(client):
    post(client, {**PAGE_SPIKE, "id": "f1", "page": "Home", "rating": "love", "reviewer": {"id": "r1", "name": "A"}})
    post(client, {**PAGE_SPIKE, "id": "f2", "page": "Pricing", "rating": "no", "reviewer": {"id": "r2", "name": "B"}})
    post(client, {**PAGE_SPIKE, "id": "f3", "page": "Home", "rating": None, "reviewer": {"id": "r2", "name": "B"}})
    base = "?project=my-project"
    assert {i["page"] for i in listing(client, base + "&page=Home")["data"]} == {"Home"}
    assert len(listing(client, base + "&page=Home")["data"]) == 2
    assert len(listing(client, base + "&reviewer=r2")["data"]) == 2
    assert [i["rating"] for i in listing(client, base + "&rating=no")["data"]] == ["no"]
    assert len(listing(client, base + "&resolved=false")["data"]) == 3
    assert listing(client, base + "&resolved=true")["data"] == []
    assert len(listing(client, base + "&page=&rating=&resolved=")["data"]) == 3


@pytest.mark.parametrize("query, field", [
    ("&limit=0", "limit"), ("&limit=-5", "limit"), ("&limit=ten", "limit"),
    # int() takes each of these; a listing takes ASCII digits only.
    ("&limit=%2B5", "limit"), ("&limit=%205", "limit"), ("&limit=1_0", "limit"), ("&limit=%D9%A1", "limit"),
    ("&limit=0000000000", "limit"),  # zero, however many digits spell it
    ("&rating=awesome", "rating"), ("&resolved=maybe", "resolved"),
])
def test_bad_listing_parameters_are_400(client, query, field):
    status, body, _ = call(client, "GET", f"/spikes?project=x{query}")
    assert status == 400 and body["code"] == "VALIDATION_ERROR" and body["details"][0]["field"] == field


def test_a_limit_with_leading_zeros_is_its_value(client):
    """Ten digits or more were read as the maximum whatever they spelt: `limit=0000000002`
    answered a page of 1,000 (and `0000000000` a page instead of the 400 of `0`)."""
    for n in range(3):
        post(client, {**PAGE_SPIKE, "id": f"z{n}"})
    page = listing(client, "?project=my-project&limit=0000000002")
    assert len(page["data"]) == 2 and page["next_cursor"], page


def test_limit_above_max_is_capped(client):
    post(client, PAGE_SPIKE)
    assert len(listing(client, "?project=my-project&limit=5000")["data"]) == 1


def test_cursor_pages_newest_first_without_gaps(client):
    ids = [post(client, {**PAGE_SPIKE, "id": f"c{i:03d}"})[1]["id"] for i in range(7)]
    seen, cursor = [], None
    while True:
        query = "?project=my-project&limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = listing(client, query)
        seen += [item["id"] for item in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))


def test_tampered_or_transplanted_cursor_is_400(client):
    for i in range(3):
        post(client, {**PAGE_SPIKE, "id": f"t{i}"})
        post(client, {**PAGE_SPIKE, "id": f"t{i}", "projectKey": "elsewhere"})
    cursor = listing(client, "?project=my-project&limit=1")["next_cursor"]
    body, _, signature = cursor.partition(".")
    for bad in (cursor[:-2] + "xx", "garbage", body + "." + signature[::-1], body[:-3] + "abc." + signature):
        status, answer, _ = call(client, "GET", f"/spikes?project=my-project&cursor={bad}")
        assert status == 400 and answer["code"] == "VALIDATION_ERROR", bad
    status, answer, _ = call(client, "GET", f"/spikes?project=elsewhere&cursor={cursor}")
    assert status == 400


def test_owners_see_only_their_own_shares_spikes(client):
    alice = sign_in(client, "alice@example.com")
    bob = sign_in(client, "bob@example.com")
    a_share = make_share("alice@example.com", "alice-site")
    b_share = make_share("bob@example.com", "bob-site")
    post(client, {**PAGE_SPIKE, "id": "a", "projectKey": a_share.share_id, "page": "Home"})
    post(client, {**PAGE_SPIKE, "id": "b", "projectKey": b_share.share_id, "page": "Home"})
    post(client, {**PAGE_SPIKE, "id": "loose", "projectKey": "not-a-share"})

    alice_items = listing(client, "", token=alice)["data"]
    assert [i["projectKey"] for i in alice_items] == [a_share.share_id]
    for query in ("?page=Home", "?rating=love", "?reviewer=r-123", "?resolved=false", "?limit=1000"):
        items = listing(client, query, token=bob)["data"]
        assert all(i["projectKey"] == b_share.share_id for i in items), query
    admin_items = listing(client, f"?token={ADMIN_TOKEN}")["data"]
    assert len(admin_items) == 3


def test_other_owners_get_the_same_404_as_a_missing_spike(client):
    sign_in(client, "alice@example.com")
    bob = sign_in(client, "bob@example.com")
    share = make_share("alice@example.com", "alice-site")
    spike_id = post(client, {**PAGE_SPIKE, "projectKey": share.share_id})[1]["id"]
    missing = call(client, "GET", "/spikes/spk_doesnotexist", token=bob)
    for method, body in (("GET", None), ("PATCH", {"resolved": True}), ("DELETE", None)):
        status, answer, _ = call(client, method, f"/spikes/{spike_id}", body, token=bob)
        assert (status, answer["code"], answer["error"]) == (404, "NOT_FOUND", missing[1]["error"])
    assert call(client, "GET", f"/spikes/{spike_id}")[0] == 401
    [stored] = Spike.id_index.query(spike_id)
    assert stored.resolved is False


def test_owner_resolves_unresolves_and_deletes(client):
    alice = sign_in(client, "alice@example.com")
    share = make_share("alice@example.com", "alice-site")
    spike_id = post(client, {**PAGE_SPIKE, "projectKey": share.share_id})[1]["id"]
    status, body, _ = call(client, "PATCH", f"/spikes/{spike_id}", {"resolved": True}, token=alice)
    assert status == 200 and body["resolved"] is True and body["resolved_at"] and body["resolvedAt"] == body["resolved_at"]
    assert listing(client, "?resolved=true", token=alice)["data"][0]["id"] == spike_id
    status, body, _ = call(client, "PATCH", f"/spikes/{spike_id}", {"resolved": False}, token=alice)
    assert body["resolved"] is False and body["resolved_at"] is None
    for not_a_boolean in ("yes please", "yes", "true", "off", 1, 0, None):
        status, body, _ = call(client, "PATCH", f"/spikes/{spike_id}", {"resolved": not_a_boolean}, token=alice)
        assert status == 400 and body["code"] == "VALIDATION_ERROR", not_a_boolean
        assert body["details"][0]["field"] == "resolved", body
    assert listing(client, "?resolved=false", token=alice)["data"][0]["id"] == spike_id

    status, body, _ = call(client, "DELETE", f"/spikes/{spike_id}", token=alice)
    assert status == 200 and body == {"ok": True, "id": spike_id}
    assert call(client, "GET", f"/spikes/{spike_id}", token=alice)[0] == 404
    assert spike_counters.share_spike_counts([share.share_id])[share.share_id] == 0


def test_admin_token_acts_on_any_spike(client):
    spike_id = post(client, PAGE_SPIKE)[1]["id"]
    status, body, _ = call(client, "GET", f"/spikes/{spike_id}?token={ADMIN_TOKEN}")
    assert status == 200 and body["id"] == spike_id
    assert call(client, "PATCH", f"/spikes/{spike_id}?token={ADMIN_TOKEN}", {"resolved": True})[1]["resolved"]
    assert call(client, "DELETE", f"/spikes/{spike_id}?token={ADMIN_TOKEN}")[0] == 200


# --- export ----------------------------------------------------------------------------------

def test_csv_export_is_flat_and_safe_for_spreadsheets(client):
    post(client, ELEMENT_SPIKE)
    post(client, {**PAGE_SPIKE, "id": "evil", "comments": "=HYPERLINK(\"http://evil\")",
                  "reviewer": {"id": "r", "name": "+cmd|' /C calc'!A0"}})
    response = client.http.get("/spikes/export?project=my-project&format=csv")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/csv")
    assert 'attachment; filename="spikes-my-project-' in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.body.decode("utf-8-sig"))))
    assert len(rows) == 2
    evil = next(r for r in rows if r["comments"].startswith("'"))
    assert evil["comments"] == "'=HYPERLINK(\"http://evil\")" and evil["reviewer_name"].startswith("'+")
    element = next(r for r in rows if r["type"] == "element")
    assert (element["bbox_x"], element["bbox_y"], element["viewport_width"]) == ("10", "21", "1440")
    assert element["reviewer_name"] == "Jane" and element["resolved"] == "false"


def test_csv_export_also_neutralises_a_formula_behind_spaces_or_in_full_width(client):
    """Spreadsheets that skip leading blanks, or take the full-width sign an East Asian input
    method types, would run these as formulas."""
    post(client, {**PAGE_SPIKE, "id": "hidden", "comments": "  =HYPERLINK(\"http://evil\")",
                  "reviewer": {"id": "r", "name": "\uff1dcmd|' /C calc'!A0"}})
    post(client, {**PAGE_SPIKE, "id": "wrapped", "comments": "\n\u3000@SUM(1)",
                  "reviewer": {"id": "r", "name": "a = b - c"}})
    response = client.http.get("/spikes/export?project=my-project&format=csv")
    rows = {row["id"]: row for row in csv.DictReader(io.StringIO(response.body.decode("utf-8-sig")))}
    assert rows["hidden"]["comments"] == "'  =HYPERLINK(\"http://evil\")"
    assert rows["hidden"]["reviewer_name"] == "'\uff1dcmd|' /C calc'!A0"
    assert rows["wrapped"]["comments"] == "'\n\u3000@SUM(1)"
    assert rows["wrapped"]["reviewer_name"] == "a = b - c"  # text with a sign inside stays as written


def test_jsonl_export_streams_every_matching_spike(client):
    for i in range(5):
        post(client, {**PAGE_SPIKE, "id": f"j{i}", "rating": "love" if i % 2 else "no"})
    response = client.http.get("/spikes/export?project=my-project&format=jsonl&rating=love")
    assert response.headers["Content-Type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in response.body.decode().splitlines()]
    assert len(lines) == 2 and all(line["rating"] == "love" for line in lines)


def test_an_export_too_large_to_answer_is_staged_in_s3_behind_a_short_lived_link(client, monkeypatch):
    from urllib.parse import parse_qs, unquote, urlparse
    from chalicelib import deps
    from chalicelib.services import exports
    for i in range(3):
        post(client, {**PAGE_SPIKE, "id": f"big{i}", "comments": "x" * 100})
    inline = client.http.get("/spikes/export?project=my-project&format=jsonl")
    assert inline.status_code == 200 and len(inline.body.splitlines()) == 3
    monkeypatch.setattr(exports, "MAX_INLINE_BYTES", 100)  # the 6 MB a Lambda may answer, scaled down
    response = client.http.get("/spikes/export?project=my-project&format=jsonl")
    assert response.status_code == 303 and response.body == b""
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"  # an empty body, not JSON
    link = urlparse(response.headers["Location"])
    bucket = deps.settings().bucket_name
    key = unquote(link.path).split(f"/{bucket}/", 1)[1]
    assert key.startswith("exports/") and key.endswith(".jsonl") and parse_qs(link.query)["X-Amz-Expires"] == ["900"]
    stored = deps.s3_client().get_object(Bucket=bucket, Key=key)
    assert stored["Body"].read() == inline.body  # the same file, byte for byte
    assert stored["ContentDisposition"] == f'attachment; filename="{key.rsplit("/", 1)[1]}"'


def test_export_follows_the_listing_access_rules(client):
    status, body, _ = call(client, "GET", "/spikes/export?format=csv")
    assert status == 401
    status, body, _ = call(client, "GET", "/spikes/export?project=x&format=xml")
    assert status == 400 and body["details"][0]["field"] == "format"
    alice = sign_in(client, "alice@example.com")
    make_share("bob@example.com", "bob-site")
    post(client, {**PAGE_SPIKE, "projectKey": "bob-site"})
    response = client.http.get("/spikes/export?format=jsonl", headers={"Authorization": f"Bearer {alice}"})
    assert response.status_code == 200 and response.body == b""


def test_share_side_export_and_delete(client):
    from chalicelib.services import share_deletion
    from chalicelib.services import spikes as service
    share = make_share("owner@example.com", "gone-soon")
    for i in range(3):
        post(client, {**PAGE_SPIKE, "id": f"d{i}", "projectKey": "gone-soon"})
    exported = service.export_share(share.share_id)
    assert len(exported) == 3 and all(item["projectKey"] == "gone-soon" for item in exported)
    assert spike_counters.share_spike_counts([share.share_id, "sh_000000000000"]) == {share.share_id: 3, "sh_000000000000": 0}
    assert share_deletion.delete_share_spikes(share.share_id, share.created_at) == 3
    assert list(Spike.scan()) == []
    assert [i.pk for i in LedgerItem.scan() if share.share_id in i.pk] == []


def test_the_recorded_log_line_names_the_id_the_api_answers(client, capsys):
    capsys.readouterr()
    _, body, _ = post(client, {**PAGE_SPIKE, "id": None}, headers={"X-Request-Id": "trace-spike-0001"})
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    recorded = [line for line in lines if line.get("event") == "spike.recorded"]
    assert [line["id"] for line in recorded] == [body["id"]]
    assert recorded[0]["request_id"] == "trace-spike-0001"
