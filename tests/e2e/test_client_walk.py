"""The real clients' workflows against the real local server, over HTTP (docs/clients.md): the
CLI's sign-in, share, shares, usage, pull --from, pull, push, unshare, the MCP server's tools
and the widget's cross-origin post, each request as the client writes it (tests/test_clients.py
holds the clients' structs and request builders) and each answer parsed as the client parses it.
tests/test_clients.py replays the same requests in-process; this walk adds the HTTP server."""
from __future__ import annotations

import json
from typing import List

import pytest
import requests

from tests.live import LiveServer, SourceAddressAdapter
from tests.test_clients import (LOCAL, UREQ_HEADERS, CliShare, CliSpike, CliUsage, Paginated, UnshareInfo, UserInfo,
                                cli_share_body, serde_line)

pytestmark = pytest.mark.e2e

SPIKES_PER_MINUTE = 20


@pytest.fixture
def server(live_server_factory) -> LiveServer:
    return live_server_factory(env={"RATE_SPIKES_PER_MINUTE": str(SPIKES_PER_MINUTE)})


def ureq(server: LiveServer, method: str, path: str, body: bytes = None, bearer: str = None,
         content_type: str = None) -> requests.Response:
    headers = dict(UREQ_HEADERS)
    if bearer:
        headers["Authorization"] = f"Bearer {bearer}"
    if content_type:
        headers["Content-Type"] = content_type
    return requests.request(method, server.url + path, data=body, headers=headers, timeout=30)


def login_with_email(server: LiveServer, email: str) -> str:
    """`spikes login --email`: ask for the link, poll while the user approves it in a browser."""
    mark = len(server.lines())
    assert ureq(server, "POST", "/auth/login", json.dumps({"email": email}).encode(),
                content_type="application/json").status_code in (200, 202)
    poll = "/auth/poll?email=" + "".join({"@": "%40", ".": "%2E"}.get(c, c) for c in email)
    pending = ureq(server, "GET", poll)
    assert pending.status_code in (202, 204) and not (pending.content and pending.json()["verified"])
    link = server.magic_link_token(email, start=mark)
    assert requests.get(f"{server.url}/auth/verify?token={link}", timeout=30).status_code == 200  # the page
    assert requests.post(f"{server.url}/auth/verify", json={"login_token": link, "approve": True},
                         timeout=30).status_code == 200  # its button
    done = ureq(server, "GET", poll)
    assert done.status_code == 200 and done.json()["verified"] is True
    return done.json()["token"]


def test_the_cli_the_mcp_server_and_the_widget_against_the_server(server):
    token = login_with_email(server, "walker@example.com")
    assert UserInfo.model_validate_json(ureq(server, "GET", "/me", bearer=token).text) == \
        UserInfo(email="walker@example.com", tier="free")

    # `spikes share ./launch`: multipart written by hand, a file in a subfolder.
    content_type, body = cli_share_body("launch", [
        ("index.html", b'<!doctype html><html><head><link rel="stylesheet" href="css/site.css"></head>'
                       b'<body><button id="buy">Buy</button></body></html>'),
        ("css/site.css", b"button{color:red}")])
    created = ureq(server, "POST", "/shares", body, bearer=token, content_type=content_type)
    assert created.status_code in (200, 201), created.text
    url, slug = created.json()["url"], created.json()["slug"]
    assert isinstance(url, str) and url.endswith(f"/s/{slug}")

    # A reviewer opens it; the served widget posts across origins as the browser would.
    page = requests.get(url + "/", timeout=30)
    assert page.status_code == 200 and f'data-endpoint="{server.url}/spikes"'.encode() in page.content
    share_id = created.json()["share_id"]
    assert f'data-project="{share_id}"'.encode() in page.content
    origin = "https://reviewer.example"
    preflight = requests.options(f"{server.url}/spikes", timeout=30, headers={
        "Origin": origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"})
    assert preflight.status_code in (200, 204)
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert "content-type" in preflight.headers["Access-Control-Allow-Headers"].lower()
    widget_spike = {"id": "V1StGXR8_Z5jdHi6B-myT", "type": "element", "projectKey": share_id, "page": "Launch",
                    "url": url + "/", "reviewer": {"id": "rv_x8Yd0aQ2", "name": "Jane"}, "rating": "love",
                    "comments": "Bigger button", "timestamp": "2026-03-10T13:02:29.123Z",
                    "viewport": {"width": 1440, "height": 900}, "selector": "#buy", "xpath": "/html/body/button",
                    "elementText": "Buy", "boundingBox": {"x": 8, "y": 8, "width": 42, "height": 21}}
    posted = requests.post(f"{server.url}/spikes", data=json.dumps(widget_spike), timeout=30,
                           headers={"Content-Type": "application/json", "Origin": origin})
    assert 200 <= posted.status_code < 300 and posted.headers["Access-Control-Allow-Origin"] in ("*", origin)

    # `spikes shares` (then GET /usage) and `spikes usage`.
    [listed] = [CliShare.model_validate(item) for item in ureq(server, "GET", "/shares", bearer=token).json()]
    assert (listed.slug, listed.spike_count) == (slug, 1)
    usage = CliUsage.model_validate_json(ureq(server, "GET", "/usage", bearer=token).text)
    assert (usage.shares, usage.tier) == (1, "free")

    # `spikes pull --from <url>`: no token; `spikes pull`: the owner's token as a bearer.
    public = Paginated.model_validate_json(ureq(server, "GET", f"/spikes?project={slug}").text)
    assert [spike.id for spike in public.data] == [widget_spike["id"]]
    local: List[CliSpike] = list(public.data)
    owned = Paginated.model_validate_json(ureq(server, "GET", "/spikes", bearer=token).text)
    assert [spike.id for spike in owned.data] == [widget_spike["id"]]

    # `spikes push`: a bare array to compare ids with, then each unseen local spike, whole.
    local += [spike.model_copy() for spike in LOCAL]
    for run, expected in ((1, 2), (2, 0)):
        listing = ureq(server, "GET", f"/spikes?token={token}")
        remote = {CliSpike.model_validate(item).id for item in listing.json()}
        unseen = [spike for spike in local if spike.id not in remote]
        assert len(unseen) == expected, f"push #{run}"
        for spike in unseen:
            answer = ureq(server, "POST", f"/spikes?token={token}", serde_line(spike).encode("utf-8"),
                          content_type="application/json")
            assert answer.status_code in (200, 201) and answer.json()["id"] == spike.id

    # The MCP server: get_spikes, submit_spike, resolve_spike by the 8 characters it shows, delete_spike.
    open_spikes = Paginated.model_validate_json(
        ureq(server, "GET", "/spikes?page=&rating=&resolved=false", bearer=token).text).data
    assert {spike.id for spike in open_spikes} == {widget_spike["id"], LOCAL[0].id}
    submitted = ureq(server, "POST", "/spikes", json.dumps({
        "page": "Launch", "comments": "Contrast is low", "type": "page", "rating": "meh",
        "reviewerName": "Claude", "projectKey": "default"}).encode(), bearer=token, content_type="application/json")
    assert submitted.status_code in (200, 201)
    spike_id = submitted.json()["id"]
    resolved = ureq(server, "PATCH", f"/spikes/{spike_id[:8]}", b'{"resolved":true}', bearer=token,
                    content_type="application/json")
    assert resolved.status_code == 200 and isinstance(resolved.json()["resolved_at"], str)
    deleted = ureq(server, "DELETE", f"/spikes/{spike_id}", bearer=token)
    assert deleted.status_code == 200 and deleted.json()["id"] == spike_id

    # `spikes unshare <slug>`: the share with its spikes, then its deletion by id.
    info = UnshareInfo.model_validate_json(ureq(server, "GET", f"/shares/{slug}", bearer=token).text)
    assert [spike.id for spike in info.exported_spikes] == [widget_spike["id"]]
    assert ureq(server, "DELETE", f"/shares/{info.id}", bearer=token).status_code in (200, 204)
    gone = ureq(server, "GET", f"/spikes?project={slug}")
    assert gone.status_code == 200 and Paginated.model_validate_json(gone.text).data == [], gone.text
    assert requests.get(url + "/", timeout=30).status_code == 404


def test_the_widgets_posts_past_the_limit_get_a_429_it_can_wait_out(server):
    """The widget shows any non-2xx as its error dot; what it and scripts get is the contract's
    429: the code, `retry_after` and the same seconds in `Retry-After`, readable across origins."""
    http = requests.Session()
    http.mount("http://", SourceAddressAdapter("127.0.0.7"))
    spike = {"type": "page", "projectKey": "landing", "page": "Home", "rating": None, "comments": ""}
    statuses = [http.post(f"{server.url}/spikes", json=spike, timeout=30, headers={"Origin": "null"}).status_code
                for _ in range(SPIKES_PER_MINUTE)]
    assert statuses == [201] * SPIKES_PER_MINUTE
    refused = http.post(f"{server.url}/spikes", json=spike, timeout=30, headers={"Origin": "null"})
    assert refused.status_code == 429 and refused.json()["code"] == "RATE_LIMIT"
    assert int(refused.headers["Retry-After"]) == refused.json()["retry_after"] > 0
    assert refused.headers["Access-Control-Allow-Origin"] in ("*", "null")
    assert "retry-after" in refused.headers["Access-Control-Expose-Headers"].lower()


def test_an_agents_mcp_loop_and_the_clis_listings_past_session_19s_limits(live_server_factory):
    """An agent signed up with `spikes auth create-key` runs the MCP server's tools over its own
    share while its network's listings without a credential are used up (257, 307): its own
    listings are never counted; its share listings are (309, 338), and the 429 reads as the
    CLI's rate limit while `unshare` goes on (tests/test_client_limits.py, docs/clients.md)."""
    server = live_server_factory(env={"RATE_LISTINGS_PER_MINUTE": "2", "RATE_SHARE_LISTINGS_PER_MINUTE": "3"})
    key = ureq(server, "POST", "/auth/api-key", b"{}", content_type="application/json").json()["api_key"]
    assert ureq(server, "GET", "/me", bearer=key).json()["scopes"] == "full"  # the MCP server's scope check
    content_type, body = cli_share_body("agent-site", [("index.html", b'<button id="buy">Buy</button>')])
    created = ureq(server, "POST", "/shares", body, bearer=key, content_type=content_type)  # create_share
    assert created.status_code in (200, 201), created.text
    slug, share_id = created.json()["slug"], created.json()["share_id"]
    spike = {"id": "V1StGXR8_Z5jdHi6B-agt", "type": "element", "projectKey": share_id, "page": "Agent",
             "url": created.json()["url"] + "/", "reviewer": {"id": "rv_x8Yd0aQ2", "name": "Jane"}, "rating": "no",
             "comments": "Buy is hidden", "timestamp": "2026-03-10T13:02:29.123Z", "selector": "#buy"}
    assert requests.post(f"{server.url}/spikes", json=spike, timeout=30, headers={"Origin": "null"}).status_code == 201
    # `spikes pull --from`, without a credential, uses up the network's listings.
    assert [ureq(server, "GET", f"/spikes?project={slug}").status_code for _ in range(3)] == [200, 200, 429]
    for _ in range(4):  # get_spikes (unresolved), get_hotspots and get_element_feedback (no filter)
        for path in ("/spikes?resolved=false", "/spikes", "/spikes"):
            listed = ureq(server, "GET", path, bearer=key)
            assert listed.status_code == 200 and "X-RateLimit-Limit" not in listed.headers, (path, listed.text)
            assert [item.id for item in Paginated.model_validate_json(listed.text).data] == [spike["id"]]
    resolved = ureq(server, "PATCH", f"/spikes/{spike['id'][:8]}", b'{"resolved":true}', bearer=key,
                    content_type="application/json")  # resolve_spike, by the 8 characters get_spikes shows
    assert resolved.status_code == 200 and isinstance(resolved.json()["resolved_at"], str)
    # list_shares (or `spikes shares`): three units, then the CLI's "Rate limit exceeded".
    for _ in range(3):
        assert [CliShare.model_validate(item).slug for item in ureq(server, "GET", "/shares", bearer=key).json()] \
            == [slug]
    refused = ureq(server, "GET", "/shares", bearer=key)
    assert refused.status_code == 429 and refused.json()["code"] == "RATE_LIMIT"
    assert int(refused.headers["Retry-After"]) == refused.json()["retry_after"] > 0
    info = UnshareInfo.model_validate_json(ureq(server, "GET", f"/shares/{slug}", bearer=key).text)  # `spikes unshare`
    assert [item.id for item in info.exported_spikes] == [spike["id"]] and info.exported_spikes[0].resolved is True
    assert ureq(server, "DELETE", f"/shares/{info.id}", bearer=key).status_code in (200, 204)


def test_a_person_claims_an_agents_account_and_the_clients_go_on_past_session_21s_limits(live_server_factory):
    """What an agent made with `spikes auth create-key` and the MCP server, a person claims by the
    curl loop of docs/agents.md (the same call again on each 202: limited per account, 339, and
    never reached so), then reads as its owner: `spikes login --token` with the agent's key and
    `spikes shares` (338, 340: no cursor sent), the dashboard's feedback listing and the MCP
    server's get_spikes, none counted with the network whose listings `pull --from` used up. A
    session not the share's is counted before ownership is read (341): the same 429 as anyone's."""
    server = live_server_factory(env={"RATE_LISTINGS_PER_MINUTE": "2"})
    key = ureq(server, "POST", "/auth/api-key", b"{}", content_type="application/json").json()["api_key"]
    content_type, body = cli_share_body("agent-site", [("index.html", b'<button id="buy">Buy</button>')])
    created = ureq(server, "POST", "/shares", body, bearer=key, content_type=content_type)  # create_share
    assert created.status_code in (200, 201), created.text
    slug, share_id = created.json()["slug"], created.json()["share_id"]
    spike = {"id": "V1StGXR8_Z5jdHi6B-clm", "type": "page", "projectKey": share_id, "page": "Agent",
             "url": created.json()["url"] + "/", "reviewer": {"id": "rv_x8Yd0aQ2", "name": "Jane"}, "rating": "meh",
             "comments": "Too dark", "timestamp": "2026-03-10T13:02:29.123Z"}
    assert requests.post(f"{server.url}/spikes", json=spike, timeout=30, headers={"Origin": "null"}).status_code == 201
    assert [ureq(server, "GET", f"/spikes?project={slug}").status_code for _ in range(3)] == [200, 200, 429]

    person = login_with_email(server, "claimer@example.com")
    answers = []
    for _ in range(10):  # docs/agents.md: send the same call again until 200 with "complete": true
        claimed = ureq(server, "POST", "/auth/link-key", json.dumps({"api_key": key}).encode(), bearer=person,
                       content_type="application/json")
        answers.append(claimed.status_code)
        if claimed.status_code != 202:
            break
    assert answers[-1] == 200 and claimed.json()["complete"] is True, (answers, claimed.text)
    assert claimed.json()["moved"] == {"keys": 1, "shares": 1, "spikes": 1}
    assert claimed.headers["X-RateLimit-Limit"] == "10"

    # `spikes login --token <the agent's key>`, then `spikes shares` with either credential.
    for credential in (key, person):
        listing = ureq(server, "GET", "/shares", bearer=credential)
        assert listing.status_code == 200, listing.text
        assert [CliShare.model_validate(item).slug for item in listing.json()] == [slug]
    # The dashboard's share page (its feedback by project) and the MCP server's get_spikes: the owner's.
    for path, credential in ((f"/spikes?project={share_id}&limit=100", person), ("/spikes?resolved=false", key)):
        listed = ureq(server, "GET", path, bearer=credential)
        assert listed.status_code == 200 and "X-RateLimit-Limit" not in listed.headers, (path, listed.text)
        assert [item.id for item in Paginated.model_validate_json(listed.text).data] == [spike["id"]]
    stranger = login_with_email(server, "stranger@example.com")
    refused = ureq(server, "GET", f"/spikes?project={share_id}", bearer=stranger)
    assert refused.status_code == 429 and refused.json()["code"] == "RATE_LIMIT", refused.text
    assert int(refused.headers["Retry-After"]) == refused.json()["retry_after"] > 0
