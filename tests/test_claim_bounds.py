"""A claim's work per call is bounded (docs/security.md 319): an account's spikes have no bound
(an agent posts under its own project keys without a limit), so a call moves pages while its
time lasts, answers 202 with what is left for the next call, and the same call again moves the
rest; a call that died halfway is finished by the same call again. Time is made to run out at
once here (``MOVE_SECONDS`` = 0): a call then moves one page, share or key more and stops."""
from __future__ import annotations

import pytest

from chalicelib import deps
from chalicelib.services import claims, share_creation
from chalicelib.services.accounts import user_id_for
from chalicelib.services.share_creation import ShareOptions
from chalicelib.services.uploads import UploadedFile
from chalicelib.store import accounts as account_store
from chalicelib.store import apikeys as key_store
from chalicelib.store import spike_moves
from chalicelib.store.models import Share, Spike
from tests.conftest import call, sign_in

PAGE = 2
OWN_SPIKES = 5


def _agent_with_shares_and_spikes(client, email: str):
    status, created, _ = call(client, "POST", "/auth/api-key", {"name": "agent"})
    assert status == 201, created
    agent = account_store.get(created["account_id"], consistent=True)
    share_ids = []
    for name in ("first", "second"):
        share = share_creation.create_share(deps.settings(), deps.share_files(), agent, ShareOptions(name=name),
                                            [UploadedFile("index.html", b"<p>hi</p>", "text/html")],
                                            "http://localhost")
        share_ids.append(share.share_id)
        assert call(client, "POST", "/spikes", {"type": "page", "projectKey": share.share_id})[0] == 201
    status, made, _ = call(client, "POST", "/auth/api-key", {"name": "made by the agent"}, token=created["api_key"])
    assert status == 201, made
    created["made_key_id"] = made["key_id"]
    for n in range(OWN_SPIKES):
        assert call(client, "POST", "/spikes", {"type": "page", "projectKey": "agent-notes", "id": f"own-{n}"},
                    token=created["api_key"])[0] == 201
    return created, share_ids, sign_in(client, email), user_id_for(email)


def _everything_is_the_humans(account_id: str, human_id: str, share_ids, key_ids) -> None:
    assert {Share.get(f"share#{share_id}").owner_id for share_id in share_ids} == {human_id}
    assert list(Spike.owner_index.query(account_id)) == []
    assert len(list(Spike.owner_index.query(human_id))) == OWN_SPIKES + len(share_ids)
    assert {key_store.get(key_id).user_id for key_id in key_ids} == {human_id}
    assert not account_store.own_spikes_left(account_id)


def test_a_claim_moves_a_bounded_part_per_call_and_the_same_call_again_moves_the_rest(backend_client, monkeypatch):
    """One call read every spike of the account into memory, then moved them all: an agent
    posting under its own project keys for a month (60 a minute) left millions, more than a
    function reads, let alone moves, before API Gateway gives up (29 s), and the call sent again
    started over, reading everything again: the claim never finished."""
    client = backend_client
    created, share_ids, human, human_id = _agent_with_shares_and_spikes(client, "bounded-claim@example.com")
    monkeypatch.setattr(claims, "MOVE_SECONDS", 0.0, raising=False)
    monkeypatch.setattr(spike_moves, "PAGE", PAGE, raising=False)
    answers = []
    for _ in range(10):
        status, body, _ = call(client, "POST", "/auth/link-key", {"api_key": created["api_key"]}, token=human)
        answers.append((status, body))
        assert status in (200, 202), body
        assert body["moved"]["shares"] <= 1 and body["moved"]["spikes"] <= PAGE and body["moved"]["keys"] <= 1, answers
        assert body["complete"] is (status == 200) and body["claimed_account_id"] == created["account_id"]
        if status == 200:
            break
    assert answers[-1][0] == 200 and len(answers) > 2, answers
    # Each step only once the one before finished: no share moves after a spike, no spike after a key.
    progress = [tuple(bool(body["moved"][step]) for step in ("shares", "spikes", "keys")) for _, body in answers]
    for step in range(2):
        begun = [moved[step + 1] for moved in progress].index(True)
        assert not any(moved[step] for moved in progress[begun + 1:]), answers
    assert sum(body["moved"]["shares"] for _, body in answers) == len(share_ids)
    assert sum(body["moved"]["spikes"] for _, body in answers) == OWN_SPIKES + len(share_ids)
    assert sum(body["moved"]["keys"] for _, body in answers) == 2
    _everything_is_the_humans(created["account_id"], human_id, share_ids, (created["key_id"], created["made_key_id"]))
    status, listed, _ = call(client, "GET", "/spikes", token=human)
    assert status == 200 and len(listed["data"]) == OWN_SPIKES + len(share_ids), listed


def test_a_claim_that_died_halfway_through_the_spikes_is_finished_by_the_same_call_again(backend_client, monkeypatch):
    client = backend_client
    created, share_ids, human, human_id = _agent_with_shares_and_spikes(client, "claim-died-halfway@example.com")
    monkeypatch.setattr(spike_moves, "PAGE", PAGE, raising=False)
    moving, pages = spike_moves._move_page, []

    def dies_on_the_second_page(owned, old_owner, new_owner):
        pages.append(len(owned))
        if len(pages) == 2:
            raise RuntimeError("the function ended here")
        return moving(owned, old_owner, new_owner)
    monkeypatch.setattr(spike_moves, "_move_page", dies_on_the_second_page)
    with pytest.raises(RuntimeError):
        claims.claim(account_store.get(human_id, consistent=True), created["api_key"], deps.settings())
    monkeypatch.setattr(spike_moves, "_move_page", moving)
    assert key_store.get(created["key_id"]).user_id == created["account_id"]  # the presented key moves last
    assert len(list(Spike.owner_index.query(created["account_id"]))) == OWN_SPIKES + len(share_ids) - PAGE
    status, body, _ = call(client, "POST", "/auth/link-key", {"api_key": created["api_key"]}, token=human)
    assert status == 200 and body["complete"], body
    assert body["moved"] == {"keys": 2, "shares": 0, "spikes": OWN_SPIKES + len(share_ids) - PAGE}, body
    _everything_is_the_humans(created["account_id"], human_id, share_ids, (created["key_id"], created["made_key_id"]))


def test_a_claim_reads_an_accounts_keys_a_page_at_a_time(backend_client, monkeypatch):
    """The claim read every key of the account (the owner index whole, then a consistent read of
    each) before moving one: revoked keys are kept for good and an account makes 30 an hour, so
    a year of an agent's rotations was a read longer than the call, started over by every call."""
    client = backend_client
    status, created, _ = call(client, "POST", "/auth/api-key", {"name": "agent"})
    assert status == 201, created
    made = []
    for n in range(4):
        status, key, _ = call(client, "POST", "/auth/api-key", {"name": f"rotated {n}"}, token=created["api_key"])
        assert status == 201, key
        made.append(key["key_id"])
        if n < 3:
            assert call(client, "DELETE", f"/auth/api-key/{key['key_id']}", token=created["api_key"])[0] == 200
    human = sign_in(client, "many-keys-claim@example.com")
    monkeypatch.setattr(claims, "MOVE_SECONDS", 0.0, raising=False)
    monkeypatch.setattr(key_store, "KEYS_PAGE", 2, raising=False)
    reading, read = key_store.get_many, []
    monkeypatch.setattr(key_store, "get_many", lambda key_ids: read.append(len(key_ids)) or reading(key_ids))
    moved = []
    for _ in range(10):
        read.clear()
        status, body, _ = call(client, "POST", "/auth/link-key", {"api_key": created["api_key"]}, token=human)
        assert status in (200, 202), body
        assert sum(read) <= 2 + 1, read  # a page, and the presented key
        moved.append(body["moved"]["keys"])
        if status == 200:
            break
    assert status == 200 and sum(moved) == 5 and len(moved) > 2, moved
    human_id = user_id_for("many-keys-claim@example.com")
    assert {key_store.get(key_id).user_id for key_id in [created["key_id"], *made]} == {human_id}
    assert all(key_store.get(key_id).claimed_from == created["account_id"] for key_id in made)


def test_keys_another_call_moved_meanwhile_are_not_counted_as_moved_again(backend_client, monkeypatch):
    """Two calls of a claim (two tabs, a retry racing the first, the job finishing a claim while
    the person calls again) move each key once, its condition on the old owner deciding, but
    every call counted every key it had read as moved, so their answers said more keys moved than
    the account had; shares and spikes were counted only where moved. A call whose read of the
    keys another call's moves overtook now counts none of them."""
    from chalicelib.store import key_moves
    client = backend_client
    created, share_ids, human, human_id = _agent_with_shares_and_spikes(client, "raced-claim@example.com")
    presented = key_store.get(created["key_id"])
    read_before = list(key_moves.pages_of(created["account_id"], known=[presented]))
    status, body, _ = call(client, "POST", "/auth/link-key", {"api_key": created["api_key"]}, token=human)
    assert status == 200 and body["moved"]["keys"] == 2, body  # the other call: everything
    # This call read the keys before the other one moved them, and moves after it.
    monkeypatch.setattr(key_moves, "pages_of", lambda owner_id, known=(): iter(read_before))
    moved, done = claims._move_keys(created["account_id"], human_id, presented, False, lambda: True)
    assert (moved, done) == (0, True)  # before: 2
    _everything_is_the_humans(created["account_id"], human_id, share_ids, (created["key_id"], created["made_key_id"]))



def test_a_claim_out_of_time_looks_no_more_at_a_lagging_index(backend_client, monkeypatch):
    """The owner index lags its writes, so a claim looks again while the account's count says
    own spikes are left (319). A look after the call's time is out started another page of moves
    past it (and on to the keys); the call now answers 202 there, and the next call moves them."""
    client = backend_client
    status, created, _ = call(client, "POST", "/auth/api-key", {"name": "agent"})
    assert status == 201, created
    for n in range(OWN_SPIKES):
        assert call(client, "POST", "/spikes", {"type": "page", "projectKey": "agent-notes", "id": f"lag-{n}"},
                    token=created["api_key"])[0] == 201
    human = sign_in(client, "lagging-index@example.com")
    monkeypatch.setattr(claims, "MOVE_SECONDS", 0.0, raising=False)
    monkeypatch.setattr(claims, "LOOK_PAUSE_SECONDS", 0.0, raising=False)
    listing, looks = spike_moves.owned_by, []

    def lagging(owner_id):  # the first look finds none of the spikes on the index yet
        looks.append(owner_id)
        return [] if len(looks) == 1 else listing(owner_id)
    monkeypatch.setattr(spike_moves, "owned_by", lagging)
    status, body, _ = call(client, "POST", "/auth/link-key", {"api_key": created["api_key"]}, token=human)
    assert status == 202 and body["moved"] == {"keys": 0, "shares": 0, "spikes": 0}, body
    assert len(looks) == 1 and key_store.get(created["key_id"]).user_id == created["account_id"]
    status, body, _ = call(client, "POST", "/auth/link-key", {"api_key": created["api_key"]}, token=human)
    assert status == 200 and body["moved"] == {"keys": 1, "shares": 0, "spikes": OWN_SPIKES}, body
