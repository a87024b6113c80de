"""A key-only account's count of its own spikes (``own_spikes``, ``own_spikes_gone``) is what tells
a claim whether some are left that the owner index does not show yet (docs/security.md 74, 77): it
counts gone only what it counted stored, and a move is counted in the write that makes it. On moto
and on DynamoDB Local: conditions and transactions in the store decide."""
from __future__ import annotations

import pytest

from chalicelib import deps
from chalicelib.services import claims
from chalicelib.services.accounts import user_id_for
from chalicelib.store import accounts as account_store
from chalicelib.store import spike_moves
from chalicelib.store import spikes as spike_store
from chalicelib.store.models import Spike
from tests.conftest import call, sign_in
from tests.lost_answers import commit_answer_lost, skip_on_moto, write_answer_lost
from tests.test_claim_leftovers import _agent_and_human, _claim


def _stored_before_the_count(owner_id: str, public_id: str) -> None:
    """An own spike as a version from before ``own_spikes`` stored it: not counted."""
    partition = spike_store.project_partition("agent-notes", None, owner_id)
    spike_id = spike_store.spike_id_for(partition, public_id)
    spike_store.new(spike_id, partition, "2026-01-01T00:00:00.000Z", public_id=public_id, client_id=public_id,
                    owner_id=owner_id, type="page", project_key="agent-notes").save()


@pytest.mark.parametrize("old_spike", ["moved", "deleted"])
def test_own_spikes_stored_before_the_count_do_not_end_the_claims_looks(backend_client, monkeypatch, old_spike):
    """Own spikes stored before a key-only account counted them were counted gone when moved or
    deleted: the count then said none was left while one stored a moment before the claim was
    not on the owner index yet, and the claim stopped looking, leaving it behind. Only a spike
    counted stored is now counted gone."""
    client = backend_client
    created, _, human, human_id = _agent_and_human(client, f"claim-uncounted-{old_spike}@example.com")
    raw = created["api_key"]
    _stored_before_the_count(created["account_id"], "old")
    if old_spike == "deleted":
        assert call(client, "DELETE", "/spikes/old", token=raw)[0] in (200, 204)
    assert call(client, "POST", "/spikes", {"type": "page", "projectKey": "agent-notes", "id": "late"},
                token=raw)[0] == 201
    late = spike_store.spike_id_for(spike_store.project_partition("agent-notes", None, created["account_id"]), "late")
    listed, reads = spike_moves.owned_by, []

    def lagging(owner_id):  # the first read misses the newest spike, as a lagging index does
        reads.append(owner_id)
        return [spike for spike in listed(owner_id) if len(reads) > 1 or spike.spike_id != late]
    monkeypatch.setattr(spike_moves, "owned_by", lagging)
    body = _claim(client, human, raw)
    monkeypatch.undo()
    assert body["moved"]["spikes"] == (2 if old_spike == "moved" else 1), body
    assert {spike.owner_id for spike in Spike.scan() if spike.public_id in ("old", "late")} == {human_id}
    assert not account_store.own_spikes_left(created["account_id"])


def test_deleting_a_persons_own_spike_leaves_the_account_alone(backend_client):
    """Only a key-only account's own spikes are counted (a claim reads the count); deleting a
    person's own spike added to its ``own_spikes_gone`` all the same, a write of the account's
    item in every deletion, for nothing."""
    client = backend_client
    human = sign_in(client, "own-spike-person@example.com")
    assert call(client, "POST", "/spikes", {"type": "page", "projectKey": "notes", "id": "mine"}, token=human)[0] == 201
    assert call(client, "DELETE", "/spikes/mine", token=human)[0] in (200, 204)
    account = account_store.get(user_id_for("own-spike-person@example.com"), consistent=True)
    assert (account.own_spikes, account.own_spikes_gone) == (None, None)


def test_a_claim_that_died_moving_own_spikes_leaves_them_counted(backend_client, monkeypatch):
    """A claim that died after moving own spikes, before counting them gone, left the count
    saying some were left for good: every later call of the claim looked four times, finding
    nothing. Moving them and counting them gone are now one write."""
    client = backend_client
    created, _, human, human_id = _agent_and_human(client, "claim-dies-moving@example.com")
    raw = created["api_key"]
    for spike_id in ("one", "two"):
        assert call(client, "POST", "/spikes", {"type": "page", "projectKey": "agent-notes", "id": spike_id},
                    token=raw)[0] == 201
    counting = account_store.add_own_spikes_gone

    def dies(*args, **kwargs):
        raise RuntimeError("the Lambda ended here")
    monkeypatch.setattr(account_store, "add_own_spikes_gone", dies)
    with pytest.raises(RuntimeError):
        claims.claim(account_store.get(human_id, consistent=True), raw, deps.settings())
    monkeypatch.setattr(account_store, "add_own_spikes_gone", counting)
    listed, reads = spike_moves.owned_by, []
    monkeypatch.setattr(spike_moves, "owned_by", lambda owner_id: reads.append(owner_id) or listed(owner_id))
    _claim(client, human, raw)
    assert len(reads) == 1 and not account_store.own_spikes_left(created["account_id"]), reads
    assert {spike.owner_id for spike in Spike.scan() if spike.public_id in ("one", "two")} == {human_id}


def test_an_own_spike_whose_move_answer_was_lost_is_counted(backend_client, store_backend):
    """An own spike's move whose answer was lost, sent again, met its own condition: the claim
    answered one spike too few and never counted it gone (every later call looked four times).
    The move is now a transaction with one client request token for its attempts."""
    skip_on_moto(store_backend)
    client = backend_client
    created, _, human, _ = _agent_and_human(client, "claim-spike-answer-lost@example.com")
    raw = created["api_key"]
    assert call(client, "POST", "/spikes", {"type": "page", "projectKey": "agent-notes", "id": "lost"},
                token=raw)[0] == 201
    with commit_answer_lost("spikes") as lost, write_answer_lost("update_item", "spikes") as sent_twice:
        body = _claim(client, human, raw)
    assert lost or sent_twice
    assert body["moved"]["spikes"] == 1, body
    assert not account_store.own_spikes_left(created["account_id"])
