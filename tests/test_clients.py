"""The real Spikes CLI and MCP server, request by request (docs/clients.md).

Each helper sends what the client sends (method, path, query, the headers of its HTTP library
``ureq`` 2.12 including its user agent, the body bytes as serde_json writes them) and parses
the answer the way the client's own structs do: strict types, required vs optional fields,
a bare array where the client expects one. Facts from the clients' source, nothing copied.
"""
from __future__ import annotations

import json
import re
from typing import List, Literal, Optional
from urllib.parse import urlsplit

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tests.conftest import ADMIN_TOKEN, call, login_token_from_mail, sign_in
from tests.factories import make_share

UREQ_HEADERS = {"User-Agent": "ureq/2.12.1", "Accept": "*/*", "Accept-Encoding": "gzip"}


# --- the clients' structs ----------------------------------------------------------------------
# serde: unknown fields are ignored, an Option<T> field may be missing or null (serde_derive
# reads a missing Option as None), everything else is required and typed strictly (a number
# is not a string, u32 is a non-negative integer).

class _Struct(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


class Reviewer(_Struct):
    id: str
    name: str


class BoundingBox(_Struct):
    x: float
    y: float
    width: float
    height: float


class Viewport(_Struct):
    width: int = Field(ge=0, le=2 ** 32 - 1)
    height: int = Field(ge=0, le=2 ** 32 - 1)


class CliSpike(_Struct):
    id: str
    type: Literal["page", "element"]
    projectKey: str
    page: str
    url: str
    reviewer: Reviewer
    selector: Optional[str] = None
    elementText: Optional[str] = None
    boundingBox: Optional[BoundingBox] = None
    rating: Optional[Literal["love", "like", "meh", "no"]] = None
    comments: str
    timestamp: str
    viewport: Optional[Viewport] = None
    resolved: Optional[bool] = None
    resolvedAt: Optional[str] = None


class Paginated(_Struct):
    data: List[CliSpike]
    next_cursor: Optional[str]


class UnshareInfo(_Struct):
    id: str
    slug: str
    exported_spikes: List[CliSpike] = []


def serde_line(spike: CliSpike) -> str:
    """One line of .spikes/feedback.jsonl as the CLI writes it (serde_json::to_string): struct
    field order, skip_serializing_if for the optional extras, null for rating and viewport."""
    out = {"id": spike.id, "type": spike.type, "projectKey": spike.projectKey, "page": spike.page, "url": spike.url,
           "reviewer": spike.reviewer.model_dump()}
    for key in ("selector", "elementText", "boundingBox"):
        value = getattr(spike, key)
        if value is not None:
            out[key] = value.model_dump() if isinstance(value, BaseModel) else value
    out.update({"rating": spike.rating, "comments": spike.comments, "timestamp": spike.timestamp,
                "viewport": spike.viewport.model_dump() if spike.viewport else None})
    if spike.resolved is not None:
        out["resolved"] = spike.resolved
    if spike.resolvedAt is not None:
        out["resolvedAt"] = spike.resolvedAt
    if spike.boundingBox is not None:  # f64: serde writes 10.0, not 10
        out["boundingBox"] = {k: float(v) for k, v in out["boundingBox"].items()}
    return json.dumps(out, separators=(",", ":"), ensure_ascii=False)


# --- the clients' requests ---------------------------------------------------------------------

def ureq(client, method: str, path: str, body: Optional[bytes] = None, bearer: Optional[str] = None,
         content_type: bool = False):
    headers = dict(UREQ_HEADERS)
    if bearer:
        headers["Authorization"] = f"Bearer {bearer}"
    if content_type:
        headers["Content-Type"] = "application/json"
    response = client.http.request(method, path, headers=headers, body=body)
    return response.status_code, response.body


def push(client, token: str, local: List[CliSpike]) -> int:
    """`spikes push`: list the remote ids (bare array), post every local spike not among them."""
    status, body = ureq(client, "GET", f"/spikes?token={token}")
    assert status == 200, body
    remote = {spike.id for spike in (CliSpike.model_validate(item) for item in json.loads(body))}
    sent = 0
    for spike in local:
        if spike.id in remote:
            continue
        status, answer = ureq(client, "POST", f"/spikes?token={token}", serde_line(spike).encode("utf-8"),
                              content_type=True)
        assert status in (200, 201), answer
        sent += 1
    return sent


def pull(client, token: str, local: List[CliSpike]) -> int:
    """`spikes pull`: one page with the token as a bearer; append the spikes with new ids."""
    status, body = ureq(client, "GET", "/spikes", bearer=token)
    assert status == 200, body
    page = Paginated.model_validate_json(body)
    known = {spike.id for spike in local}
    new = [spike for spike in page.data if spike.id not in known]
    local.extend(CliSpike.model_validate_json(serde_line(spike)) for spike in new)
    return len(new)


def local_spike(nanoid: str, comments: str, resolved: Optional[bool] = None, resolved_at: Optional[str] = None,
                project: str = "my-project") -> CliSpike:
    """A spike the CLI stored locally (`spikes serve` + widget), read back from feedback.jsonl."""
    return CliSpike(id=nanoid, type="element", projectKey=project, page="Pricing", url="http://localhost:3847/pricing.html",
                    reviewer=Reviewer(id="rv_V1StGXR8_Z5jdHi6B", name="Jane"), selector="#buy",
                    elementText="Buy now", boundingBox=BoundingBox(x=10.0, y=20.6, width=120.0, height=40.0),
                    rating="love", comments=comments, timestamp="2026-03-10T13:02:29.123Z",
                    viewport=Viewport(width=1440, height=900), resolved=resolved, resolvedAt=resolved_at)


LOCAL = [
    local_spike("Uakgb_J5m9g-0JDMbcJqL", "Bigger button"),
    local_spike("3Fz8rM1qQ9vNw2XyTb7aK", "Typo in the price", resolved=True, resolved_at="2026-03-11T09:00:00.000Z"),
]


# --- push and sync -------------------------------------------------------------------------------

@pytest.mark.parametrize("who", ["user", "admin"])
def test_push_twice_then_pull_keeps_ids_and_resolution(client, who):
    token = sign_in(client, "owner@example.com") if who == "user" else ADMIN_TOKEN
    local = [spike.model_copy() for spike in LOCAL]
    assert push(client, token, local) == 2
    assert push(client, token, local) == 0  # every id is found remotely: nothing re-sent
    assert pull(client, token, local) == 0  # and nothing comes back as new: no duplicates
    status, body = ureq(client, "GET", "/spikes", bearer=token)
    remote = {spike.id: spike for spike in Paginated.model_validate_json(body).data}
    assert set(remote) == {spike.id for spike in LOCAL}
    assert remote[LOCAL[1].id].resolved is True and remote[LOCAL[1].id].resolvedAt == "2026-03-11T09:00:00.000Z"
    assert remote[LOCAL[0].id].resolved is False and remote[LOCAL[0].id].resolvedAt is None
    assert remote[LOCAL[0].id].boundingBox == BoundingBox(x=10, y=21, width=120, height=40)


def test_an_element_left_of_or_above_the_page_keeps_its_place(client):
    """Upstream's widget posts an element's document position (its rect plus the scroll, rounded):
    negative for an element left of or above the page's origin, such as a carousel's hidden
    slide. The CLI reads x and y as f64, any sign; the server turned them into 0."""
    token = sign_in(client, "owner@example.com")
    slide = local_spike("Zq3_hiddenSlide-00001", "The second slide's title is cut").model_copy(
        update={"boundingBox": BoundingBox(x=-1280.0, y=-12.0, width=1280.0, height=400.0)})
    status, answer = ureq(client, "POST", "/spikes", serde_line(slide).encode("utf-8"), content_type=True)
    assert status == 201, answer  # the widget's post: no credential, the project is public
    status, body = ureq(client, "GET", "/spikes?project=my-project")  # pull --from
    [pulled] = Paginated.model_validate_json(body).data
    assert pulled.boundingBox == BoundingBox(x=-1280, y=-12, width=1280, height=400)
    # The owner's push of it, under their own project, keeps it too.
    assert push(client, token, [pulled]) == 1
    status, body = ureq(client, "GET", "/spikes", bearer=token)
    [pushed] = Paginated.model_validate_json(body).data
    assert pushed.boundingBox == pulled.boundingBox


def test_sync_is_pull_then_push_and_a_remote_resolution_comes_back(client):
    """`spikes sync`: a spike resolved on the server (MCP) is pulled with its id and state."""
    token = sign_in(client, "owner@example.com")
    laptop = [LOCAL[0].model_copy()]
    assert pull(client, token, laptop) == 0 and push(client, token, laptop) == 1
    status, _ = ureq(client, "PATCH", f"/spikes/{LOCAL[0].id}", b'{"resolved":true}', bearer=token, content_type=True)
    assert status == 200
    desktop: List[CliSpike] = []
    assert pull(client, token, desktop) == 1 and push(client, token, desktop) == 0
    assert desktop[0].id == LOCAL[0].id and desktop[0].resolved is True and desktop[0].resolvedAt


def test_push_to_a_share_the_caller_owns_lands_in_the_share(client):
    token = sign_in(client, "owner@example.com")
    share = make_share("owner@example.com", "pricing-page")
    local = [local_spike("aaaaaaaaaaaaaaaaaaaa1", "On the share", project=share.share_id)]
    assert push(client, token, local) == 1
    status, body = ureq(client, "GET", "/spikes?project=pricing-page")
    assert [s.id for s in Paginated.model_validate_json(body).data] == ["aaaaaaaaaaaaaaaaaaaa1"]


def test_same_ids_from_two_owners_never_meet(client):
    alice, bob = sign_in(client, "alice@example.com"), sign_in(client, "bob@example.com")
    assert push(client, alice, [LOCAL[0]]) == 1
    assert push(client, bob, [LOCAL[0].model_copy(update={"comments": "Bob's copy"})]) == 1
    for token, comments in ((alice, "Bigger button"), (bob, "Bob's copy")):
        status, body = ureq(client, "GET", f"/spikes/{LOCAL[0].id}", bearer=token)
        assert status == 200 and CliSpike.model_validate_json(body).comments == comments
    status, _ = ureq(client, "DELETE", f"/spikes/{LOCAL[0].id}", bearer=bob)
    assert status == 200
    assert ureq(client, "GET", f"/spikes/{LOCAL[0].id}", bearer=bob)[0] == 404
    assert ureq(client, "GET", f"/spikes/{LOCAL[0].id}", bearer=alice)[0] == 200
    # The admin sees every spike: one id in two projects is ambiguous and said so, never guessed.
    status, body = ureq(client, "GET", f"/spikes/{LOCAL[0].id}", bearer=ADMIN_TOKEN)
    assert status == 200 and CliSpike.model_validate_json(body).comments == "Bigger button"
    assert push(client, bob, [LOCAL[0]]) == 1
    status, body = ureq(client, "GET", f"/spikes/{LOCAL[0].id}", bearer=ADMIN_TOKEN)
    assert status == 409 and json.loads(body)["code"] == "CONFLICT"


def test_anonymous_posts_cannot_set_resolution(client):
    body = serde_line(local_spike("bbbbbbbbbbbbbbbbbbbb1", "sneaky", resolved=True, resolved_at="2026-01-01T00:00:00Z"))
    response = client.http.request("POST", "/spikes", headers={"Content-Type": "application/json"}, body=body)
    assert response.status_code == 201
    status, listed = ureq(client, "GET", "/spikes?project=my-project")
    [spike] = Paginated.model_validate_json(listed).data
    assert spike.resolved is False and spike.resolvedAt is None


def test_push_listing_is_a_bare_array_and_curl_keeps_the_envelope(client):
    token = sign_in(client, "owner@example.com")
    push(client, token, LOCAL)
    status, body = ureq(client, "GET", f"/spikes?token={token}")
    assert isinstance(json.loads(body), list)
    curl = client.http.request("GET", f"/spikes?token={ADMIN_TOKEN}",
                               headers={"User-Agent": "curl/8.5.0", "Accept": "*/*"})
    assert set(json.loads(curl.body)) == {"data", "next_cursor"}
    with_bearer = ureq(client, "GET", f"/spikes?token={token}", bearer=token)[1]
    assert set(json.loads(with_bearer)) == {"data", "next_cursor"}


def test_wrong_token_in_the_query_is_401_not_public(client):
    status, body = ureq(client, "GET", "/spikes?token=not-a-token")
    assert status == 401 and json.loads(body)["code"] == "AUTH_FAILED"


def test_a_push_with_a_rotated_token_is_refused_not_filed_as_public(client):
    """A stale credential must not turn the user's spikes into a public loose project."""
    old = sign_in(client, "owner@example.com")
    status, body = ureq(client, "POST", "/auth/rotate-token", bearer=old)
    assert status == 200, body
    new = json.loads(body)["token"]
    status, body = ureq(client, "POST", f"/spikes?token={old}", serde_line(LOCAL[0]).encode("utf-8"),
                        content_type=True)
    assert status == 401 and json.loads(body)["code"] == "AUTH_FAILED"
    status, body = ureq(client, "GET", "/spikes?project=my-project")
    assert status == 200 and json.loads(body)["data"] == []
    assert push(client, new, [spike.model_copy() for spike in LOCAL]) == 2
    assert json.loads(ureq(client, "GET", "/spikes?project=my-project")[1])["data"] == []  # the user's own


# --- pull with the admin token --------------------------------------------------------------------

def test_pull_with_the_admin_token_as_bearer(client):
    owner = sign_in(client, "owner@example.com")
    push(client, owner, LOCAL)
    local: List[CliSpike] = []
    assert pull(client, ADMIN_TOKEN, local) == 2
    # The admin bearer works wherever the admin ?token= does, and a user's route still wants a user.
    assert ureq(client, "GET", f"/spikes/{LOCAL[0].id}", bearer=ADMIN_TOKEN)[0] == 200
    assert ureq(client, "GET", "/me", bearer=ADMIN_TOKEN)[0] == 401


@pytest.mark.parametrize("who", ["user", "admin"])
def test_a_push_behind_a_thousand_newer_spikes_sends_nothing_again(client, who):
    """push lists the remote ids once (a bare array, never paged) and re-posts every local id it
    does not see. The array held the newest 1,000 only: behind 1,000 newer spikes (the admin's
    token, which upstream's guide configures, sees the whole server's) every push re-posted all
    the older local spikes, and past the 60 posts a minute each was a 429 error, on every push."""
    from chalicelib.store import spikes as spike_store
    from chalicelib.store.models import Spike
    token = sign_in(client, "owner@example.com") if who == "user" else ADMIN_TOKEN
    local = [spike.model_copy() for spike in LOCAL]
    assert push(client, token, local) == 2
    owner_id = call(client, "GET", "/me", token=sign_in(client, "owner@example.com"))[1]["id"]
    partition = spike_store.project_partition("busy", None, owner_id)
    with Spike.batch_write() as batch:  # 1,000 newer spikes of the same owner
        for n in range(1000):
            public_id = f"newer-{n:04d}"
            batch.save(spike_store.new(spike_store.spike_id_for(partition, public_id), partition,
                                       f"2100-01-01T00:00:00.{n:06d}Z", owner_id=owner_id, public_id=public_id,
                                       type="page", project_key="busy"))
    assert push(client, token, local) == 0


def test_an_authenticated_listing_defaults_to_the_largest_page(client, env):
    env(RATE_SPIKES_PER_MINUTE="1000")  # the contract's 60 a minute per IP applies to push too
    token = sign_in(client, "owner@example.com")
    push(client, token, [local_spike(f"id-{n:017d}", f"n{n}") for n in range(130)])
    status, body = ureq(client, "GET", "/spikes", bearer=token)
    page = Paginated.model_validate_json(body)
    assert len(page.data) == 130 and page.next_cursor is None
    status, body = ureq(client, "GET", "/spikes?project=my-project")  # public listing: the contract's 100
    assert len(json.loads(body)["data"]) == 0  # a user's own project key is not public


# --- MCP server ------------------------------------------------------------------------------------

def mcp_submit(client, token: str, **args) -> str:
    """submit_spike: serde_json::json! (keys sorted, compact), flat reviewerName, projectKey
    defaulting to "default"; reads `id` from the answer."""
    body = {"page": args["page"], "comments": args["comments"], "type": "element" if "selector" in args else "page"}
    for key in ("url", "selector", "elementText", "rating", "reviewerName"):
        if key in args:
            body[key] = args[key]
    body["projectKey"] = args.get("projectKey", "default")
    raw = json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")
    status, answer = ureq(client, "POST", "/spikes", raw, bearer=token, content_type=True)
    assert status in (200, 201), answer
    return json.loads(answer)["id"]


def mcp_get_spikes(client, token: str, query: str = "resolved=false") -> List[CliSpike]:
    status, body = ureq(client, "GET", f"/spikes?{query}", bearer=token)
    assert status == 200, body
    parsed = json.loads(body)
    items = parsed if isinstance(parsed, list) else parsed.get("data") or parsed.get("spikes") or []
    return [CliSpike.model_validate(item) for item in items]


def test_mcp_submit_list_resolve_delete(client):
    token = sign_in(client, "agent-owner@example.com")
    spike_id = mcp_submit(client, token, page="/checkout", comments="Total is misaligned", rating="Meh",
                          reviewerName="Claude", selector=".total", elementText="$42")
    [listed] = mcp_get_spikes(client, token, "page=%2Fcheckout&rating=MEH&resolved=false")
    assert listed.id == spike_id and listed.reviewer.name == "Claude" and listed.projectKey == "default"
    assert listed.rating == "meh" and listed.type == "element"

    status, body = ureq(client, "PATCH", f"/spikes/{spike_id}", b'{"resolved":true}', bearer=token, content_type=True)
    assert status == 200 and isinstance(json.loads(body)["resolved_at"], str)
    assert mcp_get_spikes(client, token) == []

    status, body = ureq(client, "DELETE", f"/spikes/{spike_id}", bearer=token)
    assert status == 200 and json.loads(body)["id"] == spike_id
    assert ureq(client, "GET", f"/spikes/{spike_id}", bearer=token)[0] == 404


def test_mcp_submit_with_an_empty_rating_is_feedback_without_one(client):
    """submit_spike passes on the agent's `rating` string as it is; an agent with no rating to
    give may send "". The listing's filter takes "" as no filter, upstream's own backend stores it
    as null; POST /spikes refused it with a 400 and the feedback was lost."""
    token = sign_in(client, "agent-owner@example.com")
    unrated = mcp_submit(client, token, page="/checkout", comments="No opinion, a typo: 'Totl'", rating="")
    blank = mcp_submit(client, token, page="/checkout", comments="Same", rating="  ")
    rated = mcp_submit(client, token, page="/checkout", comments="Nice", rating=" Love ")
    ratings = {spike.id: spike.rating for spike in mcp_get_spikes(client, token)}
    assert ratings == {unrated: None, blank: None, rated: "love"}
    status, body = ureq(client, "POST", "/spikes", b'{"type":"page","projectKey":"p","rating":"great"}',
                        content_type=True)
    assert status == 400 and json.loads(body)["details"][0]["field"] == "rating"  # a wrong one is still told


def mcp_shown_id(spike: CliSpike) -> str:
    """What the MCP server's get_spikes (and get_element_feedback) print of an id: its first 8
    characters, `[spk_ab12] page on Home`. resolve_spike/delete_spike take "an ID or prefix"."""
    return spike.id[:8]


def test_mcp_resolves_and_deletes_by_the_id_get_spikes_shows(client):
    token = sign_in(client, "agent-owner@example.com")
    spike_id = mcp_submit(client, token, page="Home", comments="Logo too small")
    [listed] = mcp_get_spikes(client, token)
    shown = mcp_shown_id(listed)
    status, body = ureq(client, "PATCH", f"/spikes/{shown}", b'{"resolved":true}', bearer=token, content_type=True)
    assert status == 200, body
    assert json.loads(body)["id"] == spike_id and isinstance(json.loads(body)["resolved_at"], str)
    assert mcp_get_spikes(client, token) == []
    status, body = ureq(client, "DELETE", f"/spikes/{shown}", bearer=token)
    assert status == 200 and json.loads(body)["id"] == spike_id
    assert ureq(client, "GET", f"/spikes/{spike_id}", bearer=token)[0] == 404


def test_an_id_prefix_names_one_spike_of_the_callers_or_none(client):
    alice, bob = sign_in(client, "alice@example.com"), sign_in(client, "bob@example.com")
    push(client, alice, [local_spike("abcd1234-one-000000000", "one"), local_spike("abcd1234-two-000000000", "two")])
    status, body = ureq(client, "PATCH", "/spikes/abcd1234", b'{"resolved":true}', bearer=alice, content_type=True)
    assert status == 409 and json.loads(body)["code"] == "CONFLICT"  # two match: never guessed
    status, body = ureq(client, "DELETE", "/spikes/abcd1234-t", bearer=alice)
    assert status == 200 and json.loads(body)["id"] == "abcd1234-two-000000000"
    assert ureq(client, "DELETE", "/spikes/abc", bearer=alice)[0] == 404  # shorter than the CLI's 4
    assert ureq(client, "DELETE", "/spikes/abcd1234", bearer=bob)[0] == 404  # only the caller's spikes
    # Other callers name spikes by their whole id, as before.
    curl = client.http.request("DELETE", "/spikes/abcd1234", headers={"Authorization": f"Bearer {alice}",
                                                                     "User-Agent": "curl/8.5.0"})
    assert curl.status_code == 404
    assert ureq(client, "GET", "/spikes/abcd1234-one-000000000", bearer=alice)[0] == 200
    # A prefix names only what the caller could list: a key that may post and delete but not read
    # deletes by whole ids, as before.
    status, body = ureq(client, "POST", "/auth/api-key", b'{"scopes":"spikes:write"}', bearer=alice, content_type=True)
    writer = json.loads(body)["api_key"]
    assert ureq(client, "DELETE", "/spikes/abcd1234-o", bearer=writer)[0] == 404
    assert ureq(client, "DELETE", "/spikes/abcd1234-one-000000000", bearer=writer)[0] == 200


def test_mcp_spikes_are_the_submitters_own(client):
    alice, bob = sign_in(client, "alice@example.com"), sign_in(client, "bob@example.com")
    spike_id = mcp_submit(client, alice, page="Home", comments="mine")
    assert ureq(client, "GET", f"/spikes/{spike_id}", bearer=bob)[0] == 404
    assert mcp_get_spikes(client, bob, "resolved=false") == []
    assert ureq(client, "GET", "/spikes?project=default")[1] and \
        json.loads(ureq(client, "GET", "/spikes?project=default")[1])["data"] == []


# --- login, unshare, small ones ---------------------------------------------------------------------

def test_login_with_token_checks_it_against_get_shares(client):
    token = sign_in(client, "owner@example.com")
    status, body = ureq(client, "GET", "/shares", bearer=token)
    assert status == 200 and isinstance(json.loads(body), list)
    assert ureq(client, "GET", "/shares", bearer="sp_wrong")[0] == 401


def test_unshare_exports_the_spikes_with_their_ids_then_deletes(client):
    token = sign_in(client, "owner@example.com")
    share = make_share("owner@example.com", "old-mockup")
    push(client, token, [local_spike("cccccccccccccccccccc1", "keep me", project="old-mockup")])
    status, body = ureq(client, "GET", "/shares/old-mockup", bearer=token)
    assert status == 200, body
    info = UnshareInfo.model_validate_json(body)
    assert info.id == share.share_id and [s.id for s in info.exported_spikes] == ["cccccccccccccccccccc1"]
    status, _ = ureq(client, "DELETE", f"/shares/{info.id}", bearer=token)
    assert status in (200, 204)


def test_the_device_flow_settings_give_the_cli_a_wait_it_can_divide_by():
    """`spikes login` polls expires_in / interval times (unsigned integer division): an interval
    of 0 makes the CLI panic, one longer than the code lives makes it give up before one poll."""
    from pydantic import ValidationError
    from chalicelib.settings import Settings
    for bad in ({"device_poll_interval_seconds": 0}, {"device_poll_interval_seconds": 61},
                {"device_code_ttl_seconds": 59}):
        with pytest.raises(ValidationError):
            Settings(**bad)
    settings = Settings()
    assert settings.device_code_ttl_seconds // settings.device_poll_interval_seconds >= 1


def test_health_answers_200(client):
    status, body = ureq(client, "GET", "/health")
    assert status == 200 and json.loads(body)["ok"] is True


def test_client_structs_reject_what_they_should():
    """The strict parsing above is what makes these tests able to fail."""
    good = json.loads(serde_line(LOCAL[0]))
    with pytest.raises(ValidationError):
        CliSpike.model_validate({**good, "viewport": {"width": 1.5, "height": 2}})
    with pytest.raises(ValidationError):
        CliSpike.model_validate({k: v for k, v in good.items() if k != "comments"})
    with pytest.raises(ValidationError):
        Paginated.model_validate_json("[]")


def test_one_owner_with_one_id_in_two_projects_picks_with_project(client):
    token = sign_in(client, "owner@example.com")
    share = make_share("owner@example.com", "landing")
    push(client, token, [LOCAL[0], LOCAL[0].model_copy(update={"projectKey": share.share_id, "comments": "on share"})])
    status, body = ureq(client, "GET", f"/spikes/{LOCAL[0].id}", bearer=token)
    assert status == 409 and "?project=" in json.loads(body)["error"]
    for project, comments in (("my-project", "Bigger button"), ("landing", "on share"), (share.share_id, "on share")):
        status, body = ureq(client, "GET", f"/spikes/{LOCAL[0].id}?project={project}", bearer=token)
        assert status == 200 and CliSpike.model_validate_json(body).comments == comments
    status, _ = ureq(client, "DELETE", f"/spikes/{LOCAL[0].id}?project=landing", bearer=token)
    assert status == 200
    status, body = ureq(client, "GET", f"/spikes/{LOCAL[0].id}", bearer=token)
    assert status == 200 and CliSpike.model_validate_json(body).comments == "Bigger button"


def test_a_users_own_project_spikes_count_in_their_usage(client):
    token = sign_in(client, "agent-owner@example.com")
    mcp_submit(client, token, page="Home", comments="one")
    status, body = ureq(client, "GET", "/usage", bearer=token)
    assert status == 200 and json.loads(body)["spikes"] == 1


# --- whoami, shares, usage, share, sign-in: the rest of the CLI's requests (upstream 0.4.0) -------
# The structs below are the CLI's: whoami.rs UserInfo, shares.rs Share (mcp.rs ShareInfo adds an
# optional name), usage.rs UsageResponse (shares.rs and mcp.rs read a subset), login.rs
# DeviceCodeResponse (u64 with defaults when missing). u64 is a non-negative integer.

U64 = Field(ge=0, le=2 ** 64 - 1)


class UserInfo(_Struct):
    email: str
    tier: str


class CliShare(_Struct):
    id: str
    slug: str
    url: str
    spike_count: int = U64
    created_at: str
    name: Optional[str] = None


class CliUsage(_Struct):
    spikes: int = U64
    spike_limit: Optional[int] = Field(None, ge=0, le=2 ** 64 - 1)
    shares: int = U64
    share_limit: Optional[int] = Field(None, ge=0, le=2 ** 64 - 1)
    tier: str
    reset_at: Optional[str] = None
    cost_this_period_cents: Optional[int] = Field(None, ge=0, le=2 ** 64 - 1)
    monthly_cap_cents: Optional[int] = Field(None, ge=0, le=2 ** 64 - 1)
    period_ends: Optional[str] = None


class DeviceCode(_Struct):
    device_code: str
    user_code: str
    verification_url: str
    expires_in: int = Field(600, ge=0, le=2 ** 64 - 1)
    interval: int = Field(5, ge=0, le=2 ** 64 - 1)


MIME = {"html": "text/html", "css": "text/css", "js": "application/javascript", "png": "image/png",
        "woff2": "font/woff2"}


def cli_share_body(name: str, files: List[tuple], millis: int = 1765100000123) -> tuple:
    """`spikes share DIR` (and the MCP server's create_share): one multipart body written by hand,
    boundary ----SpikesUpload<ms>, a metadata part without a type holding serde_json's compact
    {"name": DIR}, then a `files` part per file named by its path under DIR, verbatim (raw UTF-8,
    no escaping), typed from its extension as written (`.PNG` is application/octet-stream)."""
    boundary = f"----SpikesUpload{millis}"
    body = bytearray(f"--{boundary}\r\n".encode())
    body += b'Content-Disposition: form-data; name="metadata"\r\n\r\n'
    body += json.dumps({"name": name}, separators=(",", ":"), ensure_ascii=False).encode() + b"\r\n"
    for path, content in files:
        mime = MIME.get(path.rsplit(".", 1)[-1], "application/octet-stream")
        body += f"--{boundary}\r\n".encode()
        body += f'Content-Disposition: form-data; name="files"; filename="{path}"\r\n'.encode("utf-8")
        body += f"Content-Type: {mime}\r\n\r\n".encode() + content + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return f"multipart/form-data; boundary={boundary}", bytes(body)


def cli_share(client, token: str, name: str, files: List[tuple]) -> dict:
    content_type, body = cli_share_body(name, files)
    response = client.http.request("POST", "/shares", body=body, headers={
        **UREQ_HEADERS, "Authorization": f"Bearer {token}", "Content-Type": content_type})
    assert response.status_code in (200, 201), response.body
    answer = json.loads(response.body)
    assert isinstance(answer["url"], str) and isinstance(answer["slug"], str)  # all the CLI reads
    return answer


def test_share_shares_and_usage_as_the_cli_and_mcp_server_read_them(client):
    token = sign_in(client, "owner@example.com")
    shared = cli_share(client, token, "Launch Mockup", [
        ("index.html", b"<!doctype html><link rel=stylesheet href=css/site.css><h1>Launch</h1>"),
        ("css/site.css", b"h1{color:red}"), ("img/Logo.PNG", b"\x89PNG\r\n\x1a\n"),
        ("fonts/caf\u00e9.woff2", b"wOF2")])
    assert shared["slug"] == "launch-mockup" and shared["url"].endswith("/s/launch-mockup")
    page = client.http.get("/s/launch-mockup/")
    assert page.status_code == 200 and b"<h1>Launch</h1>" in page.body
    from chalicelib.store.models import Share
    files = Share.get(f"share#{shared['share_id']}").files
    assert files["img/Logo.PNG"]["type"] == "image/png"  # typed by its name, not the part's type
    assert files["fonts/caf\u00e9.woff2"]["size"] == 4 and files["css/site.css"]["type"] == "text/css"

    # `spikes shares` and the MCP server's list_shares: a bare array, then GET /usage.
    status, body = ureq(client, "GET", "/shares", bearer=token)
    assert status == 200
    [listed] = [CliShare.model_validate(item) for item in json.loads(body)]
    assert (listed.slug, listed.spike_count, listed.name) == ("launch-mockup", 0, "Launch Mockup")
    status, body = ureq(client, "GET", "/usage", bearer=token)
    assert status == 200
    usage = CliUsage.model_validate_json(body)
    assert (usage.tier, usage.shares, usage.spikes) == ("free", 1, 0) and usage.share_limit is not None

    # `spikes pull --from <the url the share box prints>`: the slug after /s/, no token.
    slug = shared["url"].split("/s/", 1)[1].split("/")[0]
    status, body = ureq(client, "GET", f"/spikes?project={slug}")
    assert status == 200 and Paginated.model_validate_json(body).data == []


def test_whoami_parses_me_with_a_session_and_with_a_key_only_account(client):
    token = sign_in(client, "owner@example.com")
    status, body = ureq(client, "GET", "/me", bearer=token)
    assert status == 200 and UserInfo.model_validate_json(body) == UserInfo(email="owner@example.com", tier="free")
    # `spikes auth create-key` (no credentials) makes a key-only account; SPIKES_TOKEN=<key> spikes
    # whoami read its null email and failed with a JSON error. The CLI now gets a string.
    status, body = ureq(client, "POST", "/auth/api-key", b"{}", content_type=True)
    key = json.loads(body)["api_key"]
    status, body = ureq(client, "GET", "/me", bearer=key)
    assert status == 200 and UserInfo.model_validate_json(body) == UserInfo(email="", tier="free")
    assert json.loads(body)["scopes"] == "full"  # what the MCP server reads from the same answer
    # Any other caller keeps the documented null (docs/agents.md).
    curl = client.http.request("GET", "/me", headers={"Authorization": f"Bearer {key}", "User-Agent": "curl/8.5.0"})
    assert curl.status_code == 200 and json.loads(curl.body)["email"] is None


def test_sign_in_answers_parse_and_travel_as_the_cli_sends_them(client):
    """`spikes login`: POST /auth/device with the body `{}`, then the device code put into the
    poll's query as it is (never percent-encoded), so it must be URL-safe. `spikes login
    --email` percent-encodes `.`, `-`, `_` and `+` itself; 202 is its "pending"."""
    status, body = ureq(client, "POST", "/auth/device", b"{}", content_type=True)
    assert status == 200
    device = DeviceCode.model_validate_json(body)
    assert device.interval >= 1 and device.expires_in // device.interval >= 1
    assert re.fullmatch(r"[A-Za-z0-9_-]+", device.device_code)
    status, body = ureq(client, "GET", f"/auth/device/poll?device_code={device.device_code}")
    assert status == 202 and json.loads(body)["status"] == "pending"
    joiner = "&" if "?" in device.verification_url else "?"  # the page the CLI opens in a browser
    opened = urlsplit(f"{device.verification_url}{joiner}code={device.user_code}")
    page = client.http.get(f"{opened.path}?{opened.query}")
    assert page.status_code == 200 and device.user_code.encode() in page.body

    status, _ = ureq(client, "POST", "/auth/login", b'{"email":"jane.doe-x_y+spikes@example.com"}', content_type=True)
    assert status in (200, 202)
    encoded = "jane%2Edoe%2Dx%5Fy%2Bspikes%40example%2Ecom"
    status, body = ureq(client, "GET", f"/auth/poll?email={encoded}")
    assert status == 202 and json.loads(body)["verified"] is False
    call(client, "POST", "/auth/verify", {"login_token": login_token_from_mail("jane.doe-x_y+spikes@example.com"),
                                          "approve": True})
    status, body = ureq(client, "GET", f"/auth/poll?email={encoded}")
    assert status == 200 and json.loads(body)["verified"] is True
    assert UserInfo.model_validate_json(ureq(client, "GET", "/me", bearer=json.loads(body)["token"])[1]).email \
        == "jane.doe-x_y+spikes@example.com"
