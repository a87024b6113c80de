"""An export of one's own feedback across a claim has every spike or says it is incomplete
(docs/security.md 311). Such an export reads one account's owner index partition, which a claim
empties (the key-only account's) and fills (the person's) for as long as it moves: an export
read meanwhile handed over a file short of spikes and said nothing."""
from __future__ import annotations

import json

from chalicelib import deps
from chalicelib.services import background_exports, claims, export_runs, own_exports
from chalicelib.store import accounts as account_store
from chalicelib.store import spike_listings, spike_moves
from tests.conftest import call
from tests.test_claim_bounds import OWN_SPIKES, _agent_with_shares_and_spikes


def _exported(client, token: str):
    """GET /spikes/export as JSON lines: its status and the ids of the spikes it holds."""
    answer = client.http.get("/spikes/export?format=jsonl", headers={"Authorization": f"Bearer {token}"})
    if answer.status_code != 200:
        return answer.status_code, json.loads(answer.body)["error"]
    return 200, sorted(json.loads(line)["id"] for line in answer.body.decode().splitlines())


def _claim_until_complete(client, human: str, key: str) -> None:
    for _ in range(30):  # bounded: a page, share or key a call
        status, body, _ = call(client, "POST", "/auth/link-key", {"api_key": key}, token=human)
        assert status in (200, 202), body
        if status == 200:
            return
    raise AssertionError("the claim did not complete")


def test_an_own_feedback_export_across_a_claim_says_it_is_incomplete(backend_client, monkeypatch):
    """The agent's background export started before the claim and read after part of it moved:
    done, with the spikes still under the agent's id only. The person's, started while the claim
    was moving, missed those not moved yet. Both are now refused or failed, saying why; once the
    claim completed, every export has every spike."""
    client = backend_client
    created, share_ids, human, human_id = _agent_with_shares_and_spikes(client, "export-across@example.com")
    everything = OWN_SPIKES + len(share_ids)
    monkeypatch.setattr(background_exports, "REQUEST_SLICE_SECONDS", 0)  # the start reads nothing yet
    status, started, _ = call(client, "POST", "/exports?format=jsonl", token=created["api_key"])
    assert status == 202 and started["status"] == "running", started
    monkeypatch.setattr(claims, "MOVE_SECONDS", 0.0, raising=False)
    monkeypatch.setattr(spike_moves, "PAGE", 2, raising=False)
    moved = 0
    for _ in range(5):  # bounded: until some spikes moved, not all
        status, body, _ = call(client, "POST", "/auth/link-key", {"api_key": created["api_key"]}, token=human)
        assert status == 202, body
        moved += body["moved"]["spikes"]
        if moved:
            break
    assert 0 < moved < everything
    assert export_runs.advance(deps.exports(), started["id"], lambda: 60_000) == "failed"
    status, shown, _ = call(client, "GET", f"/exports/{started['id']}", token=created["api_key"])
    assert status == 200 and shown["status"] == "failed" and shown["error"] == own_exports.MOVED, shown
    # The person, while the claim moves: refused, not short.
    for answer in (_exported(client, human), call(client, "POST", "/exports?format=jsonl", token=human)[:2]):
        assert answer[0] == 409 and own_exports.MOVING in json.dumps(answer[1]), answer
    _claim_until_complete(client, human, created["api_key"])
    for token in (human, created["api_key"]):  # the key acts as the person now
        status, ids = _exported(client, token)
        assert status == 200 and len(ids) == everything, ids
    monkeypatch.setattr(background_exports, "REQUEST_SLICE_SECONDS", 10)
    status, shown, _ = call(client, "POST", "/exports?format=jsonl", token=human)
    assert status == 202 and shown["status"] == "done" and shown["spike_count"] == everything, shown


def test_an_export_read_while_its_account_is_claimed_is_refused(backend_client, monkeypatch):
    """GET /spikes/export of the agent's own feedback, read as a claim moved every spike of it to
    the person: 200 with the one spike read before."""
    client = backend_client
    created, share_ids, human, human_id = _agent_with_shares_and_spikes(client, "export-during@example.com")
    reading = spike_listings.iterate

    def claimed_after_the_first_row(*args, **kwargs):
        for n, row in enumerate(reading(*args, **kwargs)):
            yield row
            if n == 0:
                claims.claim(account_store.get(human_id, consistent=True), created["api_key"], deps.settings())
    monkeypatch.setattr(spike_listings, "iterate", claimed_after_the_first_row)
    assert _exported(client, created["api_key"]) == (409, own_exports.MOVED)
    monkeypatch.setattr(spike_listings, "iterate", reading)
    status, ids = _exported(client, created["api_key"])
    assert status == 200 and len(ids) == OWN_SPIKES + len(share_ids), ids
