"""A claim's own call and the share_deletions job moving the same claim at once (docs/security.md
319, 333): the person's 202 sent again after the unit's time came, the job's run landing while
that call moves a share, a page of spikes or a key. Each move is conditioned on the old owner and
carries its counts in its own transaction, so whichever comes second moves nothing: the claim
completes once, its unit is forgotten, and the counts are exact (neither a share nor a key place
counted twice, nor an own spike counted gone twice). On moto and DynamoDB Local."""
from __future__ import annotations

from datetime import timedelta

import pytest

from chalicelib import clock
from chalicelib.services import claim_work, claims
from chalicelib.store import accounts as account_store
from chalicelib.store import key_moves, pending_claims, share_moves, spike_moves
from tests.conftest import call
from tests.test_claim_bounds import _agent_with_shares_and_spikes, _everything_is_the_humans
from tests.test_claim_pending import _counts_are_exact, _pending


def _job_runs_first_inside(monkeypatch, module, name: str) -> list:
    """The job's run (its unit due) made the first time ``module.name`` is called, just before it:
    the call that reached that move has read what it moves already. What the run answered."""
    moving, ran, started = getattr(module, name), [], []

    def job_then_move(*args, **kwargs):
        if not started:  # once: the job's own moves come through here too
            started.append(True)
            later = clock.now() + timedelta(minutes=15)
            clock.use(lambda: later)
            try:
                ran.append(claim_work.finish_pending_claims(clock.epoch(), seconds=60))
            finally:
                clock.use(None)
        return moving(*args, **kwargs)
    monkeypatch.setattr(module, name, job_then_move)
    return ran


@pytest.mark.parametrize("module, name", [(share_moves, "move_to_owner"), (spike_moves, "_move_page"),
                                          (key_moves, "move_to_owner")], ids=["share", "spikes", "key"])
def test_the_job_finishing_a_claim_while_its_call_moves_counts_everything_once(backend_client, monkeypatch,
                                                                              module, name):
    client = backend_client
    created, share_ids, human, human_id = _agent_with_shares_and_spikes(client, f"race-{name}@example.com")
    monkeypatch.setattr(claims, "MOVE_SECONDS", 0.0, raising=False)
    monkeypatch.setattr(spike_moves, "PAGE", 2, raising=False)
    status, body, _ = call(client, "POST", "/auth/link-key", {"api_key": created["api_key"]}, token=human)
    assert status == 202 and not body["complete"], body
    monkeypatch.setattr(claims, "MOVE_SECONDS", 30.0, raising=False)
    ran = _job_runs_first_inside(monkeypatch, module, name)
    status, body, _ = call(client, "POST", "/auth/link-key", {"api_key": created["api_key"]}, token=human)
    assert status == 200 and body["complete"], body
    assert ran == [{"claims_pending": 1, "claims_finished": 1, "claims_failed": 0}], ran
    _everything_is_the_humans(created["account_id"], human_id, share_ids, (created["key_id"], created["made_key_id"]))
    _counts_are_exact(created["account_id"], human_id, len(share_ids), live_keys=2)
    assert not _pending(created["account_id"])


def test_the_jobs_unit_for_a_claim_never_marked_gone_or_complete_is_forgotten(backend_client):
    """A unit is recorded before the marking, and a call may record it again as another completes
    the claim: the job forgets one whose account was never marked (its call died between the
    two, or the claim was refused), one for an account that does not exist, and one of a claim
    already complete, moving nothing and counting nothing."""
    client = backend_client
    unmarked, _, _, _ = _agent_with_shares_and_spikes(client, "never-marked@example.com")
    complete, share_ids, human, human_id = _agent_with_shares_and_spikes(client, "already-complete@example.com")
    status, body, _ = call(client, "POST", "/auth/link-key", {"api_key": complete["api_key"]}, token=human)
    assert status == 200 and body["complete"], body
    recorded_at = clock.epoch() - 3600  # due
    for account_id in (unmarked["account_id"], "no-such-account", complete["account_id"]):
        pending_claims.record(account_id, recorded_at)
        assert _pending(account_id)
    assert claim_work.finish_pending_claims(clock.epoch()) == \
        {"claims_pending": 3, "claims_finished": 1, "claims_failed": 0}
    assert not any(_pending(account_id)
                   for account_id in (unmarked["account_id"], "no-such-account", complete["account_id"]))
    assert account_store.get(unmarked["account_id"], consistent=True).merged_into is None
    assert account_store.get(unmarked["account_id"], consistent=True).active_shares == 2
    _everything_is_the_humans(complete["account_id"], human_id, share_ids, (complete["key_id"], complete["made_key_id"]))
    _counts_are_exact(complete["account_id"], human_id, len(share_ids), live_keys=2)
