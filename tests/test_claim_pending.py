"""A claim its client never finishes is finished by the share_deletions job (docs/security.md 333).

A claim moves for a bounded time per call (319) and answers 202 with some left; a client that
does not call again (the dashboard's tab closed, an agent's script that ignored the 202), or a
call that died halfway, left the account half moved for good: part of its feedback, shares and
keys under the claimed account, missing from the person's listings, exports, counts and the MCP
server's get_spikes. The claim now records a pending unit before it marks the account; the call
that completes forgets it, and the job finishes any still pending once the unit's time came."""
from __future__ import annotations

from datetime import timedelta

import pytest

from chalicelib import clock, deps
from chalicelib.services import claims
from chalicelib.store import accounts as account_store
from chalicelib.store import key_slots, pending_claims, spike_moves
from chalicelib.store.models import Delivery
from tests.conftest import call
from tests.test_claim_bounds import OWN_SPIKES, _agent_with_shares_and_spikes, _everything_is_the_humans
from tests.test_usage import SCHEDULE_EVENT


def _run_job(client, after: timedelta) -> dict:
    """The share_deletions scheduled function ``after`` from now (checked against its own role)."""
    moment = clock.now() + after
    clock.use(lambda: moment)
    try:
        return client.lambda_.invoke("share_deletions", SCHEDULE_EVENT).payload
    finally:
        clock.use(None)


def _pending(account_id: str) -> bool:
    try:
        Delivery.get(pending_claims.CLAIMS.prefix + account_id, consistent_read=True)
        return True
    except Delivery.DoesNotExist:
        return False


def _counts_are_exact(account_id: str, human_id: str, shares: int, live_keys: int) -> None:
    claimed, human = (account_store.get(user_id, consistent=True) for user_id in (account_id, human_id))
    assert (claimed.active_shares, human.active_shares) == (0, shares)
    assert not account_store.own_spikes_left(account_id)
    assert key_slots.holders(account_id) == [] and len(key_slots.holders(human_id)) == live_keys


def test_a_claim_its_client_never_sends_again_is_finished_by_the_job(backend_client, monkeypatch):
    client = backend_client
    created, share_ids, human, human_id = _agent_with_shares_and_spikes(client, "never-again@example.com")
    account_id = created["account_id"]
    monkeypatch.setattr(claims, "MOVE_SECONDS", 0.0, raising=False)
    monkeypatch.setattr(spike_moves, "PAGE", 2, raising=False)
    status, body, _ = call(client, "POST", "/auth/link-key", {"api_key": created["api_key"]}, token=human)
    assert status == 202 and not body["complete"], body
    status, listed, _ = call(client, "GET", "/spikes", token=human)
    assert status == 200 and len(listed["data"]) < OWN_SPIKES + len(share_ids), listed  # half moved
    # The client's own call again has the first go: the unit is not due while one may still run.
    _run_job(client, timedelta(seconds=10))
    assert _pending(account_id)
    _run_job(client, timedelta(minutes=15))
    _everything_is_the_humans(account_id, human_id, share_ids, (created["key_id"], created["made_key_id"]))
    _counts_are_exact(account_id, human_id, len(share_ids), live_keys=2)
    assert not _pending(account_id)
    status, listed, _ = call(client, "GET", "/spikes", token=human)
    assert status == 200 and len(listed["data"]) == OWN_SPIKES + len(share_ids), listed
    status, body, _ = call(client, "POST", "/auth/link-key", {"api_key": created["api_key"]}, token=human)
    assert status == 200 and body["complete"] and body["moved"] == {"keys": 0, "shares": 0, "spikes": 0}, body


def test_a_claim_whose_call_died_is_finished_by_the_job(backend_client, monkeypatch):
    client = backend_client
    created, share_ids, human, human_id = _agent_with_shares_and_spikes(client, "call-died@example.com")
    monkeypatch.setattr(spike_moves, "PAGE", 2, raising=False)
    moving = spike_moves._move_page

    def dies(owned, old_owner, new_owner):
        raise RuntimeError("the function ended here")
    monkeypatch.setattr(spike_moves, "_move_page", dies)
    with pytest.raises(RuntimeError):
        claims.claim(account_store.get(human_id, consistent=True), created["api_key"], deps.settings())
    monkeypatch.setattr(spike_moves, "_move_page", moving)
    _run_job(client, timedelta(minutes=15))
    _everything_is_the_humans(created["account_id"], human_id, share_ids, (created["key_id"], created["made_key_id"]))
    _counts_are_exact(created["account_id"], human_id, len(share_ids), live_keys=2)
    assert not _pending(created["account_id"])


def test_a_claim_that_completes_leaves_nothing_pending(backend_client):
    client = backend_client
    created, share_ids, human, human_id = _agent_with_shares_and_spikes(client, "completes@example.com")
    status, body, _ = call(client, "POST", "/auth/link-key", {"api_key": created["api_key"]}, token=human)
    assert status == 200 and body["complete"], body
    assert not _pending(created["account_id"])
    _counts_are_exact(created["account_id"], human_id, len(share_ids), live_keys=2)


def test_a_claim_the_job_did_not_finish_waits_behind_the_others(backend_client, monkeypatch):
    """A run moves the oldest pending claims for its time; one it does not finish is due again
    behind the others (``CLAIMS.postpone``), so a claim too large for a run does not take every
    run's time while a smaller one, recorded later, waits for ever."""
    from chalicelib.services import claim_work
    client = backend_client
    monkeypatch.setattr(claims, "MOVE_SECONDS", 0.0, raising=False)
    monkeypatch.setattr(spike_moves, "PAGE", 2, raising=False)
    agents = []
    for email in ("first-claimer@example.com", "second-claimer@example.com"):
        created, _, human, _ = _agent_with_shares_and_spikes(client, email)
        status, body, _ = call(client, "POST", "/auth/link-key", {"api_key": created["api_key"]}, token=human)
        assert status == 202 and body["moved"]["shares"] == 1, body  # one of its two shares moved
        agents.append(created["account_id"])
    later = clock.now() + timedelta(minutes=15)
    clock.use(lambda: later)
    try:  # each run reads one unit and has time for one share of it
        for _ in range(2):
            claim_work.finish_pending_claims(clock.epoch(), limit=1, seconds=0.001)
    finally:
        clock.use(None)
    # The first claim's run moved its other share; the second run took the second claim's turn.
    assert [account_store.get(account_id, consistent=True).active_shares for account_id in agents] == [0, 0]
    assert all(_pending(account_id) for account_id in agents)


def test_a_claim_an_earlier_version_left_incomplete_is_recorded_by_the_upgrade_then_finished(backend_client,
                                                                                              monkeypatch):
    """A claim a version before 333 left half done has no unit (and its claimer no note of it,
    311): the job never came to it, and the person's listings and exports missed what stayed
    behind. The upgrade step (a deploy's, a local start's) finds it among the claimed accounts."""
    from chalicelib.store import claim_marks
    from chalicelib.store.models import User
    from chalicelib.store.setup import upgrade_items
    client = backend_client
    created, share_ids, human, human_id = _agent_with_shares_and_spikes(client, "before-units@example.com")
    account_id = created["account_id"]
    monkeypatch.setattr(claims, "MOVE_SECONDS", 0.0, raising=False)
    monkeypatch.setattr(spike_moves, "PAGE", 2, raising=False)
    status, body, _ = call(client, "POST", "/auth/link-key", {"api_key": created["api_key"]}, token=human)
    assert status == 202, body
    # As that version left it: no unit, nothing noted on the person.
    assert pending_claims.forget(account_id)
    User(human_id).update(actions=[User.claims_moving.remove(), User.claims_begun.remove()])
    _run_job(client, timedelta(minutes=15))
    assert not _pending(account_id)
    assert list(spike_moves.owned_by(account_id))  # the job had nothing to go by
    upgrade_items(deps.settings())
    assert _pending(account_id) and claim_marks.state(human_id).moving
    upgrade_items(deps.settings())  # again: the same unit, noted once
    assert claim_marks.state(human_id).begun == 1
    _run_job(client, timedelta(minutes=15))
    _everything_is_the_humans(account_id, human_id, share_ids, (created["key_id"], created["made_key_id"]))
    _counts_are_exact(account_id, human_id, len(share_ids), live_keys=2)
    assert not _pending(account_id) and not claim_marks.state(human_id).moving
    upgrade_items(deps.settings())  # a completed claim is not recorded again
    assert not _pending(account_id)
