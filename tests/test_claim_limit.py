"""POST /auth/link-key counts per signed-in account (docs/security.md 339): each call reads the
key and the account, and looks through the claimed account's indexes again, even once the claim
is complete, and nothing bounded how often an account sent it."""
from __future__ import annotations

from chalicelib.services import claims
from chalicelib.store import spike_moves
from tests.conftest import call, sign_in
from tests.test_claim_bounds import _agent_with_shares_and_spikes
from tests.test_client_limits import moving_clock  # noqa: F401 - a fixture


def _agent(client) -> dict:
    status, created, _ = call(client, "POST", "/auth/api-key", {"name": "agent"})
    assert status == 201, created
    return created


def test_claims_are_limited_per_account_and_a_refused_one_reads_no_key(client, moving_clock, monkeypatch):
    agent, other_agent = _agent(client), _agent(client)
    person, other = sign_in(client, "claimer@example.com"), sign_in(client, "other-claimer@example.com")
    for sent in range(claims.CALLS_PER_MINUTE):  # the claim, then the same call again: looked again
        status, body, headers = call(client, "POST", "/auth/link-key", {"api_key": agent["api_key"]}, token=person)
        assert status == 200 and body["complete"] is True, body
        assert headers["X-RateLimit-Limit"] == str(claims.CALLS_PER_MINUTE)
        assert headers["X-RateLimit-Remaining"] == str(claims.CALLS_PER_MINUTE - sent - 1)
    keys_read = []
    reading = claims._key_and_stored_owner
    monkeypatch.setattr(claims, "_key_and_stored_owner", lambda *args: keys_read.append(args) or reading(*args))
    status, body, headers = call(client, "POST", "/auth/link-key", {"api_key": agent["api_key"]}, token=person)
    assert status == 429 and body["code"] == "RATE_LIMIT", body
    assert int(headers["Retry-After"]) == body["retry_after"] >= 1
    assert (headers["X-RateLimit-Limit"], headers["X-RateLimit-Remaining"]) == (str(claims.CALLS_PER_MINUTE), "0")
    assert keys_read == []  # refused before the key or any account is read
    # Another account's claim goes on meanwhile; the refused one goes on once Retry-After has passed.
    assert call(client, "POST", "/auth/link-key", {"api_key": other_agent["api_key"]}, token=other)[0] == 200
    moving_clock(body["retry_after"])
    assert call(client, "POST", "/auth/link-key", {"api_key": agent["api_key"]}, token=person)[0] == 200
    assert len(keys_read) == 2


def test_a_claim_sent_again_on_each_202_is_never_refused(client, moving_clock, monkeypatch):
    """A call answering 202 has moved for MOVE_SECONDS (12 s): a person (or script) sending it
    again on each answer, as docs/agents.md says, makes five a minute at most."""
    created, _, person, _ = _agent_with_shares_and_spikes(client, "big-claim@example.com")
    monkeypatch.setattr(claims, "MOVE_SECONDS", 0.0, raising=False)  # time runs out at once...
    monkeypatch.setattr(spike_moves, "PAGE", 1, raising=False)
    statuses = []
    for _ in range(40):
        status, body, _ = call(client, "POST", "/auth/link-key", {"api_key": created["api_key"]}, token=person)
        statuses.append(status)
        if status != 202:
            break
        moving_clock(12)  # ...as it does after 12 s of moving in a real call
    assert statuses[-1] == 200 and set(statuses[:-1]) == {202}, statuses
    assert len(statuses) > claims.CALLS_PER_MINUTE, statuses  # more calls than a minute's allowance
