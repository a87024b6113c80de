"""Session 19's limits as the real clients meet them (docs/clients.md, "Limits the clients meet").

Of upstream's commands only `spikes login --token` (cli/src/commands/login.rs, verify_token),
`spikes shares` (cli/src/commands/shares.rs, fetch_shares) and the MCP server's list_shares
(cli/src/commands/mcp.rs, fetch_shares) call `GET /shares`, once each; `share`/create_share only
post, `unshare` reads `GET /shares/<slug>`. The CLI has no watch mode, and `spikes shares` is the
one command that shows the remote feedback counts, so `watch spikes shares` is how a person
follows reviewers from a terminal: `watch` runs it every 2 s. A 429 is printed as upstream's
fixed "Rate limit exceeded. Please wait a moment and try again." when its `code` is none of
SPIKE_LIMIT, SHARE_LIMIT, BUDGET_EXCEEDED (cli/src/error.rs, map_http_error): no retry, exit 1.
"""
from __future__ import annotations

import json
from datetime import timedelta

import pytest

from chalicelib import clock
from chalicelib.services.accounts import user_id_for
from tests.conftest import sign_in
from tests.factories import make_user
from tests.test_clients import (UREQ_HEADERS, CliShare, CliUsage, UnshareInfo, UserInfo, cli_share, cli_share_body,
                                mcp_get_spikes, ureq)
from tests.test_share_listing_cost import _stored_shares, _table, reads  # noqa: F401 (reads: a fixture)

# What the CLI prints in place of a 429's own message for these codes (a share-limit text for a
# rate limit would send the user deleting shares).
CLI_CODES_WITH_OWN_429_TEXT = {"SPIKE_LIMIT", "SHARE_LIMIT", "BUDGET_EXCEEDED"}


@pytest.fixture
def moving_clock():
    """Time the test moves (rate windows are counted on it), from the start of a minute."""
    moment = [clock.now().replace(second=0, microsecond=0) + timedelta(minutes=1, seconds=1)]
    clock.use(lambda: moment[0])

    def advance(seconds: float) -> None:
        moment[0] += timedelta(seconds=seconds)
    yield advance
    clock.use(None)


def spikes_shares(client, token: str) -> int:
    status, body = ureq(client, "GET", "/shares", bearer=token)
    if status == 200:
        [CliShare.model_validate(item) for item in json.loads(body)]
    return status


def test_watch_spikes_shares_keeps_listing_beside_the_dashboard(client, moving_clock):
    """At 30 calls a minute (309) `watch spikes shares` against a server answering within 70 ms
    was refused from its 31st call on, every call after too (a refused call counts), and so were
    the account's dashboard and `login --token`: 60 of 90 calls in three minutes."""
    token = sign_in(client, "watcher@example.com")
    cli_share(client, token, "launch", [("index.html", b"<h1>Launch</h1>")])
    statuses = []
    for second in range(0, 180, 2):  # `watch spikes shares`: every 2 s for three minutes
        statuses.append(spikes_shares(client, token))
        if second % 10 == 0:  # the dashboard's shares view, opened every 10 s meanwhile
            statuses.append(ureq(client, "GET", "/shares?limit=100", bearer=token)[0])
        moving_clock(2)
    assert statuses == [200] * len(statuses), statuses.count(429)
    for _ in range(120):  # `watch -n 1` for two minutes
        assert spikes_shares(client, token) == 200
        moving_clock(1)


def test_a_listing_pays_one_unit_per_hundred_shares_it_reads(client, env, reads, moving_clock):
    """What a listing may read grows with the account (10,000 shares and their totals in one
    call): it pays for what it read, so an account of 250 shares lists a third as often as one of
    a few, and a refused listing still reads no share."""
    env(RATE_SHARE_LISTINGS_PER_MINUTE="5")
    make_user("many@example.com", "pro")
    _stored_shares(user_id_for("many@example.com"), 250)
    token = sign_in(client, "many@example.com")
    for remaining in ("2", "0"):  # the CLI's whole array: 3 units each
        response = client.http.request("GET", "/shares", headers={"User-Agent": "ureq/2.12.1",
                                                                 "Authorization": f"Bearer {token}"})
        assert response.status_code == 200 and len(json.loads(response.body)) == 250
        assert response.headers["X-RateLimit-Remaining"] == remaining
    reads.clear()
    status, body = ureq(client, "GET", "/shares", bearer=token)
    assert status == 429 and json.loads(body)["code"] == "RATE_LIMIT"
    assert reads.tables[("Query", _table("shares"))] == 0 and not reads.keys_asked  # no share read
    moving_clock(120)  # two windows on: the dashboard's pages of 100 cost one unit each
    for remaining in ("4", "3"):
        response = client.http.request("GET", "/shares?limit=100", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200 and response.headers["X-RateLimit-Remaining"] == remaining


def test_past_the_share_listing_limit_the_cli_prints_a_rate_limit_and_its_other_commands_work(client, env,
                                                                                             moving_clock):
    env(RATE_SHARE_LISTINGS_PER_MINUTE="2")
    token = sign_in(client, "owner@example.com")
    shared = cli_share(client, token, "old-mockup", [("index.html", b"<h1>Old</h1>")])
    assert [spikes_shares(client, token) for _ in range(2)] == [200, 200]
    status, body = ureq(client, "GET", "/shares", bearer=token)  # the third `spikes shares` (or login --token)
    refusal = json.loads(body)
    assert status == 429 and isinstance(refusal["error"], str)
    assert refusal["code"] == "RATE_LIMIT" and refusal["code"] not in CLI_CODES_WITH_OWN_429_TEXT
    # Every other command of the CLI and the MCP server goes on meanwhile.
    cli_share(client, token, "new-mockup", [("index.html", b"<h1>New</h1>")])
    assert UserInfo.model_validate_json(ureq(client, "GET", "/me", bearer=token)[1]).email == "owner@example.com"
    assert CliUsage.model_validate_json(ureq(client, "GET", "/usage", bearer=token)[1]).shares == 2
    assert mcp_get_spikes(client, token) == []
    status, body = ureq(client, "GET", f"/shares/{shared['slug']}", bearer=token)  # `spikes unshare old-mockup`
    assert status == 200 and ureq(client, "DELETE", f"/shares/{UnshareInfo.model_validate_json(body).id}",
                                  bearer=token)[0] in (200, 204)
    # Whoever waits what the 429 says (the CLI says "a moment") lists again.
    moving_clock(refusal["retry_after"])
    assert spikes_shares(client, token) == 200


def test_a_script_sharing_folders_meets_the_share_limit_then_the_contracts_rate(client, moving_clock):
    """`spikes share` never lists: the same folder shared again is a second share, and a loop over
    folders meets the free tier's 5 shares, then (Pro) the contract's 10 uploads a minute, each a
    429 whose code the CLI tells apart (its share-limit text, then its rate-limit text)."""
    def share(token: str, name: str):
        content_type, body = cli_share_body(name, [("index.html", b"<h1>Site</h1>")])
        response = client.http.request("POST", "/shares", body=body, headers={
            **UREQ_HEADERS, "Authorization": f"Bearer {token}", "Content-Type": content_type})
        return response.status_code, json.loads(response.body)

    free = sign_in(client, "free@example.com")
    assert [share(free, "launch")[1]["slug"] for _ in range(2)] == ["launch", "launch-2"]
    assert [share(free, f"site-{n}")[0] for n in range(3)] == [201] * 3
    status, body = share(free, "site-3")
    assert (status, body["code"]) == (429, "SHARE_LIMIT")
    make_user("pro@example.com", "pro")
    pro = sign_in(client, "pro@example.com")
    assert [share(pro, f"site-{n}")[0] for n in range(10)] == [201] * 10
    status, body = share(pro, "site-10")
    assert (status, body["code"]) == (429, "RATE_LIMIT") and body["code"] not in CLI_CODES_WITH_OWN_429_TEXT
