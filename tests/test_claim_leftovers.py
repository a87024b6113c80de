"""A claim leaves nothing of the claimed account behind (docs/security.md 71, 74): a share or an own
spike its agent writes while the claim runs is the new owner's, and a claim called again moves
what the indexes did not show the first time. On moto and on DynamoDB Local: a condition in the
store decides."""
from __future__ import annotations

import pytest
import requests

from chalicelib import deps
from chalicelib.errors import NotFound
from chalicelib.services import presigned_uploads, share_creation, share_deletion, shares, spike_by_id, spike_posts
from chalicelib.services.identity import Principal
from chalicelib.services.scopes import expand
from chalicelib.services.share_creation import FileSpec, ShareOptions
from chalicelib.services.shares import ShareChanges
from chalicelib.services.spike_posts import NewSpike
from chalicelib.services.uploads import UploadedFile
from chalicelib.services.accounts import user_id_for
from chalicelib.store import accounts as account_store
from chalicelib.store import apikeys as key_store
from chalicelib.store import key_moves, share_moves, share_tombstones, spike_moves
from chalicelib.store import spikes as spike_store
from chalicelib.store import shares as share_store
from chalicelib.store.models import Spike
from chalicelib.store.models import User as Account
from tests.conftest import call, sign_in
from tests.lost_answers import commit_answer_lost, skip_on_moto, write_answer_lost
from tests.test_shares import INDEX

BASE = "http://localhost"


def _agent_and_human(client, email: str):
    """A self-signed-up agent (its key, and its account as a request of its read it before the
    claim) and a signed-in person about to claim it."""
    status, created, _ = call(client, "POST", "/auth/api-key", {"name": "agent"})
    assert status == 201, created
    key = key_store.get(created["key_id"])
    stale = account_store.get(created["account_id"], consistent=True)
    agent = Principal(kind="key", user=stale, scopes=expand(key.scopes), key=key)
    return created, agent, sign_in(client, email), user_id_for(email)


def _claim(client, human: str, raw: str) -> dict:
    status, body, _ = call(client, "POST", "/auth/link-key", {"api_key": raw}, token=human)
    assert status == 200, body
    return body


def _during_the_claim(monkeypatch, write) -> list:
    """``write`` runs once the claim marked the account and read its shares and spikes (just
    before it moves its keys): what a request that read the account before the marking writes."""
    done = []
    moving = key_moves.move_to_owner

    def write_first(*args):
        if not done:
            done.append(write())
        return moving(*args)
    monkeypatch.setattr(key_moves, "move_to_owner", write_first)
    return done


@pytest.mark.parametrize("upload", ["direct", "presigned"])
def test_a_share_made_while_a_claim_runs_is_the_new_owners(backend_client, monkeypatch, upload):
    """A share upload that read the account before the claim marked it, stored after the claim
    read the account's shares, stayed with the claimed account: the user never saw it, nor the
    feedback on it. A share is now stored only for an account not merged, and the upload,
    refused so, is made as the new owner: the client gets its share, the user's."""
    client = backend_client
    created, agent, human, human_id = _agent_and_human(client, f"claim-share-{upload}@example.com")

    def create():
        options = ShareOptions(name=f"in flight {upload}")
        if upload == "direct":
            return share_creation.create_share(deps.settings(), deps.share_files(), agent.user, options,
                                               [UploadedFile("index.html", b"<p>hi</p>", "text/html")], BASE, agent.key)
        return presigned_uploads.start(deps.settings(), deps.share_files(), agent.user, options,
                                       [FileSpec("index.html", 9, "text/html")], BASE, agent.key)[0]
    made = _during_the_claim(monkeypatch, create)
    _claim(client, human, created["api_key"])
    monkeypatch.undo()
    share = share_store.get_by_id(made[0].share_id, consistent=True)
    assert made[0].owner_id == share.owner_id == human_id, "a share written meanwhile stayed with the claimed account"
    status, listed, _ = call(client, "GET", "/shares", token=human)
    assert status == 200 and share.share_id in {item["id"] for item in listed}, listed
    assert account_store.get(human_id, consistent=True).active_shares == 1
    assert not account_store.get(created["account_id"], consistent=True).active_shares


def test_an_own_spike_posted_while_a_claim_runs_is_the_new_owners(backend_client, monkeypatch):
    """Feedback the agent posts under a project key of its own, authenticated before the claim
    marked the account and stored after the claim read its spikes, stayed with the claimed
    account, out of the user's sight. Now refused for a merged account and posted as the new
    owner, transparently."""
    client = backend_client
    created, agent, human, human_id = _agent_and_human(client, "claim-own-spike@example.com")
    made = _during_the_claim(monkeypatch, lambda: spike_posts.record(
        NewSpike(type="page", project_key="agent-notes", client_id="in-flight", comments="meanwhile"),
        deps.settings(), BASE, author=agent))
    _claim(client, human, created["api_key"])
    monkeypatch.undo()
    assert made[0].created
    owners = {spike.owner_id for spike in Spike.scan() if spike.public_id == "in-flight"}
    assert owners == {human_id}, "a spike written meanwhile stayed with the claimed account"
    status, listed, _ = call(client, "GET", "/spikes", token=human)
    assert status == 200 and "in-flight" in {item["id"] for item in listed["data"]}, listed


def test_a_claim_called_again_moves_what_the_indexes_showed_late(backend_client, monkeypatch):
    """The claim finds shares and spikes on their indexes, which lag their writes: one the agent
    stored a moment before the claim could be missing from them, and calling the claim again,
    once its key had moved, did not look again. Now it does, and moves what it finds."""
    client = backend_client
    created, _, human, human_id = _agent_and_human(client, "claim-look-again@example.com")
    raw = created["api_key"]
    share, _ = presigned_uploads.start(deps.settings(), deps.share_files(),
                                       account_store.get(created["account_id"], consistent=True),
                                       ShareOptions(name="just made"), [FileSpec("index.html", 9, "text/html")], BASE,
                                       key_store.get(created["key_id"]))
    status, _, _ = call(client, "POST", "/spikes", {"type": "page", "projectKey": "agent-notes", "id": "late"},
                        token=raw)
    assert status in (200, 201)
    monkeypatch.setattr(share_store, "owned_by", lambda owner_id, newest_first=True: iter(()))  # the indexes lag
    monkeypatch.setattr(spike_moves, "move_in_time", lambda old_owner, new_owner, in_time: (0, True))
    first = _claim(client, human, raw)
    assert first["moved"]["shares"] == first["moved"]["spikes"] == 0
    monkeypatch.undo()
    again = _claim(client, human, raw)
    assert again["claimed_account_id"] == created["account_id"]
    assert (again["moved"]["shares"], again["moved"]["spikes"]) == (1, 1), again
    assert share_store.get_by_id(share.share_id, consistent=True).owner_id == human_id
    status, listed, _ = call(client, "GET", "/spikes", token=human)
    assert "late" in {item["id"] for item in listed["data"]}, listed
    third = _claim(client, human, raw)  # nothing left: nothing moves
    assert (third["moved"]["keys"], third["moved"]["shares"], third["moved"]["spikes"]) == (0, 0, 0), third


def test_a_share_being_deleted_moves_without_counting(backend_client):
    """A share whose deletion had started (off its owner's count already, its clean-up still to
    finish) moved with the others and was counted into the user's ``active_shares``: once the
    deletion finished, the user's count stayed one too high for good, a place of a free tier's
    limit taken by a share that no longer exists. It now moves uncounted."""
    client = backend_client
    created, agent, human, human_id = _agent_and_human(client, "claim-deleting-share@example.com")
    kept, doomed = (presigned_uploads.start(deps.settings(), deps.share_files(), agent.user, ShareOptions(name=name),
                                            [FileSpec("index.html", 9, "text/html")], BASE, agent.key)[0]
                    for name in ("kept", "doomed"))
    share_tombstones.tombstone(doomed, created["account_id"])  # its clean-up not run yet
    body = _claim(client, human, created["api_key"])
    assert body["moved"]["shares"] == 2, body
    assert share_store.get_by_id(doomed.share_id, consistent=True).owner_id == human_id
    assert account_store.get(human_id, consistent=True).active_shares == 1, "the share being deleted was counted"
    assert not account_store.get(created["account_id"], consistent=True).active_shares


def test_a_share_the_index_shows_late_is_moved_by_the_first_call(backend_client, monkeypatch):
    """A share stored a moment before the claim, not yet on the owner index when the claim read
    it, stayed behind until the claim was called again. The claim now reads the index again
    while the account's own count, read consistently, says shares are left."""
    client = backend_client
    created, agent, human, human_id = _agent_and_human(client, "claim-share-index-lags@example.com")
    share = presigned_uploads.start(deps.settings(), deps.share_files(), agent.user, ShareOptions(name="late"),
                                    [FileSpec("index.html", 9, "text/html")], BASE, agent.key)[0]
    listed, reads = share_store.owned_by, []

    def lagging(owner_id, newest_first=True):  # the first read misses it, as a lagging index does
        reads.append(owner_id)
        return iter(()) if len(reads) == 1 else listed(owner_id, newest_first)
    monkeypatch.setattr(share_store, "owned_by", lagging)
    body = _claim(client, human, created["api_key"])
    monkeypatch.undo()
    assert body["moved"]["shares"] == 1 and len(reads) == 2, (body, reads)
    assert share_store.get_by_id(share.share_id, consistent=True).owner_id == human_id
    assert account_store.get(human_id, consistent=True).active_shares == 1



def _between_the_moves_writes(monkeypatch, action) -> None:
    """``action`` runs once, after the first move transaction of a share was refused: what a
    concurrent request does between that refusal and the move's next write."""
    real, done = share_moves.transactions.run, []

    def run(build, **kwargs):
        try:
            return real(build, **kwargs)
        except share_moves.ConditionFailed:
            if not done:
                done.append(True)
                action()
            raise
    monkeypatch.setattr(share_moves.transactions, "run", run)


@pytest.mark.parametrize("meanwhile", ["moved by a retry of the claim", "its deletion started"])
def test_a_share_of_a_drifted_count_is_moved_with_its_conditions(backend_client, monkeypatch, meanwhile):
    """With the claimed account's share count drifted to zero, a share moved in two writes
    outside a transaction, conditioned on its owner alone: a retry of the claim moving it
    meanwhile made the first call answer 500 (its write refused), and a share whose deletion
    started meanwhile was counted into the user's ``active_shares`` for good."""
    client = backend_client
    created, agent, human, human_id = _agent_and_human(client, "claim-drifted-count@example.com")
    share = presigned_uploads.start(deps.settings(), deps.share_files(), agent.user, ShareOptions(name="drift"),
                                    [FileSpec("index.html", 9, "text/html")], BASE, agent.key)[0]
    Account(created["account_id"]).update(actions=[Account.active_shares.set(0)])  # the drift
    if meanwhile == "its deletion started":
        _between_the_moves_writes(monkeypatch, lambda: share_tombstones.tombstone(share, created["account_id"]))
        expected_count = 0
    else:
        _between_the_moves_writes(monkeypatch, lambda: share_moves.move_to_owner(share, created["account_id"], human_id))
        expected_count = 1
    moved = share_moves.move_to_owner(share, created["account_id"], human_id)
    monkeypatch.undo()
    assert moved is (meanwhile == "its deletion started"), moved  # a retry moved it already: not again
    assert share_store.get_by_id(share.share_id, consistent=True).owner_id == human_id
    assert account_store.get(human_id, consistent=True).active_shares == expected_count


def test_a_completion_that_read_the_account_before_the_claim_completes_the_moved_share(backend_client):
    """Completing a presigned upload with a request that authenticated before the claim marked
    the account, once its share had moved, answered 404 (the share was no longer the caller's);
    sent again it worked. It is now completed as the new owner, the first time."""
    client = backend_client
    created, agent, human, human_id = _agent_and_human(client, "claim-complete@example.com")
    share, targets = presigned_uploads.start(deps.settings(), deps.share_files(), agent.user,
                                             ShareOptions(name="to complete"), [FileSpec("index.html", len(INDEX),
                                                                                         "text/html")],
                                             BASE, agent.key)
    for target in targets:
        assert requests.put(target["url"], data=INDEX, headers=target["headers"], timeout=10).status_code == 200
    _claim(client, human, created["api_key"])
    assert share_store.get_by_id(share.share_id, consistent=True).owner_id == human_id
    done = presigned_uploads.complete(deps.settings(), deps.share_files(), agent.user, share.share_id)
    assert (done.status, done.owner_id) == (share_store.ACTIVE, human_id)
    status, listed, _ = call(client, "GET", "/shares", token=human)
    assert [item["status"] for item in listed if item["id"] == share.share_id] == ["active"], listed


@pytest.mark.parametrize("action", ["read", "change", "delete"])
def test_a_request_that_read_the_account_before_the_claim_finds_the_moved_share(backend_client, action):
    """Reading, changing or deleting a share with a request that authenticated before the claim
    marked the account, once the share had moved, answered 404 (the share no longer the
    caller's); sent again it worked. It is now done as the new owner, the first time."""
    client = backend_client
    created, agent, human, human_id = _agent_and_human(client, f"claim-{action}@example.com")
    share = share_creation.create_share(deps.settings(), deps.share_files(), agent.user, ShareOptions(name="moves"),
                                        [UploadedFile("index.html", b"<p>hi</p>", "text/html")], BASE, agent.key)
    _claim(client, human, created["api_key"])
    if action == "read":
        assert shares.get_owned(agent.user, share.slug).owner_id == human_id
    elif action == "change":
        changed = shares.update_share(deps.settings(), agent.user, share.share_id, ShareChanges(name="renamed"), BASE)
        assert (changed.owner_id, changed.name) == (human_id, "renamed")
    else:
        assert share_deletion.delete_share(deps.share_files(), agent.user, share.share_id) == []
    status, listed, _ = call(client, "GET", "/shares", token=human)
    expected = [] if action == "delete" else ["renamed" if action == "change" else "moves"]
    assert [item["name"] for item in listed if item["id"] == share.share_id] == expected, listed
    with pytest.raises(NotFound):  # a share that is someone else's stays "not found" for the agent's account
        shares.get_owned(agent.user, _someone_elses_share(client).share_id)


def _someone_elses_share(client):
    stranger = call(client, "POST", "/auth/api-key", {"name": "stranger"})[1]
    owner = account_store.get(stranger["account_id"], consistent=True)
    return share_creation.create_share(deps.settings(), deps.share_files(), owner, ShareOptions(name="not yours"),
                                       [UploadedFile("index.html", b"<p>no</p>", "text/html")], BASE)


@pytest.mark.parametrize("status", ["active", "deleting"])
def test_a_moved_share_whose_answer_was_lost_is_counted(backend_client, store_backend, status):
    """A share's move whose commit answer was lost, sent again, met its own condition (the share
    the new owner's already) and was answered "moved already": the claim's answer counted one
    moved share too few (finding 70). Each move now sends one client request token."""
    skip_on_moto(store_backend)
    client = backend_client
    created, agent, human, _ = _agent_and_human(client, f"claim-move-answer-lost-{status}@example.com")
    share = presigned_uploads.start(deps.settings(), deps.share_files(), agent.user, ShareOptions(name=status),
                                    [FileSpec("index.html", 9, "text/html")], BASE, agent.key)[0]
    if status == "deleting":
        share_tombstones.tombstone(share, created["account_id"])
    # Whichever the move is: a transaction, or (a share being deleted, before) a single write.
    with commit_answer_lost("shares") as lost, write_answer_lost("update_item", "shares") as sent_twice:
        body = _claim(client, human, created["api_key"])
    assert lost or sent_twice
    assert body["moved"]["shares"] == 1, body


def test_a_deletion_that_read_its_share_before_the_move_keeps_the_slug_for_the_new_owner(backend_client):
    """A deletion that read its share before the claim moved it finished by retiring the slug
    for the claimed account, as it read the owner: the user's share's old links kept for an
    account nobody acts as, until the claim was called again. The slug is now kept for the
    share's owner as stored when the deletion finishes."""
    client = backend_client
    created, agent, human, human_id = _agent_and_human(client, "claim-deletion-slug@example.com")
    share = presigned_uploads.start(deps.settings(), deps.share_files(), agent.user, ShareOptions(name="doomed slug"),
                                    [FileSpec("index.html", 9, "text/html")], BASE, agent.key)[0]
    share_tombstones.tombstone(share, created["account_id"])  # the deletion started, as the agent read it
    _claim(client, human, created["api_key"])
    share_tombstones.remove(share)  # and finishes with the share as it read it
    slug = share_store.Share.get(share_store.slug_pk(share.slug), consistent_read=True)
    assert (slug.share_id, slug.reserved_for) == (None, human_id), slug.attribute_values
    assert share_store.get_by_id(share.share_id, consistent=True) is None
    share_tombstones.remove(share)  # run again: nothing left to do
    assert share_store.Share.get(share_store.slug_pk(share.slug), consistent_read=True).reserved_for == human_id


@pytest.mark.parametrize("again", ["a new request", "a request that read the account before the claim"])
def test_an_own_spike_posted_again_after_the_claim_is_stored_once(backend_client, again):
    """A spike's id is unique within its project, and a key-only account's own project key is
    its own project: after the claim the same key posts as the user, into the user's project of
    that key, so a client id the agent posted before (a CLI pushing again) was stored a second
    time beside the moved spike. The claimed account's project is now checked too."""
    client = backend_client
    created, agent, human, human_id = _agent_and_human(client, f"claim-post-again-{len(again)}@example.com")
    raw = created["api_key"]
    post = {"type": "page", "projectKey": "agent-notes", "id": "twice", "comments": "once"}
    assert call(client, "POST", "/spikes", post, token=raw)[0] == 201
    _claim(client, human, raw)
    if again == "a new request":
        status, body, _ = call(client, "POST", "/spikes", post, token=raw)
        assert (status, body["id"]) == (201, "twice"), body
    else:
        recorded = spike_posts.record(NewSpike(type="page", project_key="agent-notes", client_id="twice", comments="once"),
                                 deps.settings(), BASE, author=agent)
        assert (recorded.id, recorded.created) == ("twice", False)
    stored = [spike.owner_id for spike in Spike.scan() if spike.public_id == "twice"]
    assert stored == [human_id], stored
    status, listed, _ = call(client, "GET", "/spikes", token=human)
    assert [item["id"] for item in listed["data"]].count("twice") == 1, listed
    other = {**post, "id": "after-the-claim"}
    assert call(client, "POST", "/spikes", other, token=raw)[0] == 201
    assert call(client, "POST", "/spikes", other, token=raw)[0] == 201
    assert [spike.owner_id for spike in Spike.scan() if spike.public_id == other["id"]] == [human_id]


def test_an_own_spike_the_index_shows_late_is_moved_by_the_first_call(backend_client, monkeypatch):
    """An own spike stored a moment before the claim, not yet on the owner index when the claim
    read it, stayed with the claimed account (out of the user's listing) until the claim was
    called again. A key-only account now counts its own spikes stored and gone (deleted or
    moved), and the claim reads the index again while the count says some are left."""
    client = backend_client
    created, _, human, human_id = _agent_and_human(client, "claim-spike-index-lags@example.com")
    raw = created["api_key"]
    for spike_id in ("deleted", "late"):
        post = {"type": "page", "projectKey": "agent-notes", "id": spike_id}
        assert call(client, "POST", "/spikes", post, token=raw)[0] == 201
    assert call(client, "DELETE", "/spikes/deleted", token=raw)[0] in (200, 204)
    listed, reads = spike_moves.owned_by, []

    def lagging(owner_id):  # the first read misses it, as a lagging index does
        reads.append(owner_id)
        return [] if len(reads) == 1 else listed(owner_id)
    monkeypatch.setattr(spike_moves, "owned_by", lagging)
    body = _claim(client, human, raw)
    monkeypatch.undo()
    assert body["moved"]["spikes"] == 1 and len(reads) == 2, (body, reads)  # the deleted one is not waited for
    assert {spike.owner_id for spike in Spike.scan() if spike.public_id in ("late", "deleted")} == {human_id}
    status, listed_now, _ = call(client, "GET", "/spikes", token=human)
    assert "late" in {item["id"] for item in listed_now["data"]}, listed_now


def test_a_deletion_that_read_its_own_spike_before_the_move_counts_it_once(backend_client):
    """The claimed account's count of own spikes gone is what tells the claim none is left: a
    deletion that read the spike before the claim moved it does not count it gone a second time
    for the claimed account (nor for the user, whose own spikes are not counted: 77)."""
    client = backend_client
    created, agent, human, human_id = _agent_and_human(client, "claim-spike-deleted-late@example.com")
    raw = created["api_key"]
    assert call(client, "POST", "/spikes", {"type": "page", "projectKey": "agent-notes", "id": "read-early"},
                token=raw)[0] == 201
    read_early = spike_by_id.get_for(agent, "read-early")
    _claim(client, human, raw)
    spike_store.delete(read_early)
    assert not [spike for spike in Spike.scan() if spike.public_id == "read-early"]
    claimed = account_store.get(created["account_id"], consistent=True)
    assert (claimed.own_spikes, claimed.own_spikes_gone) == (1, 1)
    assert account_store.get(human_id, consistent=True).own_spikes_gone is None
    with pytest.raises(NotFound):
        spike_store.delete(read_early)


@pytest.mark.parametrize("action", ["change", "delete"])
def test_a_share_moved_between_its_read_and_its_write_is_changed_as_the_new_owners(backend_client, monkeypatch,
                                                                                   action):
    """A change or deletion that read the share as the agent's, its share moved by the claim
    before the write (conditioned on the owner it read), answered 404 once; sent again it
    worked. The write refused so is now made as the new owner, the first time."""
    client = backend_client
    created, agent, human, human_id = _agent_and_human(client, f"claim-between-{action}@example.com")
    share = share_creation.create_share(deps.settings(), deps.share_files(), agent.user, ShareOptions(name="moves"),
                                        [UploadedFile("index.html", b"<p>hi</p>", "text/html")], BASE, agent.key)
    read, claimed = shares.owned_as_read, []

    def read_then_claimed(user, key, include_deleting=False):
        found = read(user, key, include_deleting)
        if not claimed:  # the claim moves the share once this request has read it
            claimed.append(_claim(client, human, created["api_key"]))
        return found
    monkeypatch.setattr(shares, "owned_as_read", read_then_claimed)
    if action == "change":
        changed = shares.update_share(deps.settings(), agent.user, share.share_id, ShareChanges(name="renamed"), BASE)
        assert (changed.owner_id, changed.name) == (human_id, "renamed")
    else:
        assert share_deletion.delete_share(deps.share_files(), agent.user, share.share_id) == []
    monkeypatch.undo()
    assert claimed and claimed[0]["moved"]["shares"] == 1, claimed
    status, listed, _ = call(client, "GET", "/shares", token=human)
    expected = [] if action == "delete" else ["renamed"]
    assert [item["name"] for item in listed if item["id"] == share.share_id] == expected, listed
    assert account_store.get(human_id, consistent=True).active_shares == (0 if action == "delete" else 1)


@pytest.mark.parametrize("action", ["read", "change", "delete"])
def test_a_share_the_claim_has_not_moved_yet_is_the_new_owners(backend_client, monkeypatch, action):
    """Once a claim marked the agent's account, the agent's key acts as the new owner; a request
    on a share the claim had not moved yet answered 404 (the share still the claimed account's).
    The share is now moved by the request, as the claim would, and the request made on it."""
    client = backend_client
    created, agent, human, human_id = _agent_and_human(client, f"claim-unmoved-{action}@example.com")
    share = share_creation.create_share(deps.settings(), deps.share_files(), agent.user, ShareOptions(name="moves"),
                                        [UploadedFile("index.html", b"<p>hi</p>", "text/html")], BASE, agent.key)
    moving, started, done = share_moves.move_to_owner, [], []

    def request_first(*args):
        if not started:  # the request of the agent's key (now the human's) comes before the claim's move
            started.append(args)
            person = account_store.get(human_id, consistent=True)
            if action == "read":
                done.append(shares.get_owned(person, share.slug).owner_id)
            elif action == "change":
                done.append(shares.update_share(deps.settings(), person, share.share_id,
                                                ShareChanges(name="renamed"), BASE).owner_id)
            else:
                done.append(share_deletion.delete_share(deps.share_files(), person, share.share_id))
        return moving(*args)
    monkeypatch.setattr(share_moves, "move_to_owner", request_first)
    _claim(client, human, created["api_key"])
    monkeypatch.undo()
    assert done == ([[]] if action == "delete" else [human_id]), done
    status, listed, _ = call(client, "GET", "/shares", token=human)
    expected = [] if action == "delete" else ["renamed" if action == "change" else "moves"]
    assert [item["name"] for item in listed if item["id"] == share.share_id] == expected, listed
    assert account_store.get(human_id, consistent=True).active_shares == (0 if action == "delete" else 1)
    assert not account_store.get(created["account_id"], consistent=True).active_shares
    with pytest.raises(NotFound):  # someone else's share stays "not found" for the new owner
        shares.get_owned(account_store.get(human_id, consistent=True), _someone_elses_share(client).share_id)
