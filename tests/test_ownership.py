"""Who may act as the owner is decided in one place (services/ownership.py), the claim window
included: a claim marks the agent's key-only account merged into the person's, then moves its
shares, spikes and keys one by one, so a request and what it acts on can sit on two sides of
the move (docs/security.md 134, 145). On moto and on DynamoDB Local."""
from __future__ import annotations

import pytest

from chalicelib import deps
from chalicelib.crypto import hash_password
from chalicelib.errors import NotFound
from chalicelib.services import identity, share_access, share_creation, spike_by_id, spike_posts, spikes
from chalicelib.services.share_creation import ShareOptions
from chalicelib.services.spike_posts import NewSpike
from chalicelib.services.uploads import UploadedFile
from chalicelib.store import accounts as account_store
from chalicelib.store import shares as share_store
from chalicelib.store.models import Share
from tests.conftest import call
from tests.test_claim_leftovers import BASE, _agent_and_human, _claim, _someone_elses_share


def _agents_share(agent, protected: bool) -> Share:
    share = share_creation.create_share(deps.settings(), deps.share_files(), agent.user, ShareOptions(name="mine"),
                                        [UploadedFile("index.html", b"<p>hi</p>", "text/html")], BASE, agent.key)
    if protected:  # an agent-tier account may protect its shares; written here to keep the account free
        share.update(actions=[Share.password_hash.set(hash_password("open sesame"))])
    return share_store.get_by_id(share.share_id)


def _reviewed(client, share: Share) -> str:
    """Feedback from the widget on the agent's share, with the address its reviewer gave. By the
    share's id, as every served page's widget posts: a protected share's slug takes posts only
    from its owner (docs/security.md, 157)."""
    status, body, _ = call(client, "POST", "/spikes", {
        "type": "page", "projectKey": share.share_id, "comments": "nice",
        "reviewer": {"id": "r1", "name": "Rev", "email": "rev@example.com"}})
    assert status == 201, body
    return body["id"]


@pytest.mark.parametrize("protected", [True, False], ids=["protected", "public"])
def test_the_agents_key_reads_its_shares_feedback_while_the_claim_runs(backend_client, protected):
    """Once the claim marked the agent's account its key acts as the person; the share not moved
    yet was still the claimed account's, so its feedback was a 404 when protected, and shown
    without the reviewers' addresses when public. Both are the owner's view again."""
    client = backend_client
    created, agent, human, human_id = _agent_and_human(client, f"own-feedback-{str(protected).lower()}@example.com")
    share = _agents_share(agent, protected)
    spike_id = _reviewed(client, share)
    # The claim's first step: the account is marked; its shares have not moved yet.
    assert account_store.mark_merged(account_store.get(created["account_id"], consistent=True), human_id)
    assert share_store.get_by_id(share.share_id).owner_id == created["account_id"]
    status, body, _ = call(client, "GET", f"/spikes?project={share.slug}", token=created["api_key"])
    assert status == 200, body
    assert [(item["id"], item["reviewer"].get("email")) for item in body["data"]] == [(spike_id, "rev@example.com")]
    # Someone else's credential still gets the stranger's answer.
    stranger = call(client, "GET", f"/spikes?project={share.slug}", token=_someone_elses_token(client))
    assert stranger[0] == (404 if protected else 200)
    if not protected:
        assert "email" not in stranger[1]["data"][0]["reviewer"]


def test_a_request_that_read_the_agent_before_the_claim_reads_the_moved_shares_feedback(backend_client):
    """The other side of the move: a request whose key was authenticated before the claim
    marked the account (it acts as the claimed account) reaches the share after it moved."""
    client = backend_client
    created, agent, human, human_id = _agent_and_human(client, "own-feedback-before@example.com")
    share = _agents_share(agent, protected=True)
    _reviewed(client, share)
    _claim(client, human, created["api_key"])
    moved = share_store.get_by_id(share.share_id)
    assert moved.owner_id == human_id
    share_access.require_feedback_access(deps.settings(), moved, agent, None, "127.0.0.1")
    assert spikes.shows_reviewer_emails(agent, moved.owner_id)
    other = _someone_elses_share(client)
    with pytest.raises(NotFound):
        share_access.require_feedback_access(deps.settings(), _protect(other), agent, None, "127.0.0.1")
    assert not spikes.shows_reviewer_emails(agent, other.owner_id)


def test_the_agents_key_posts_resolved_feedback_to_its_share_while_the_claim_runs(backend_client):
    """The owner of the feedback may post it resolved (the CLI's push of a resolved spike);
    the agent's key, acting as the person once the account is marked, was no longer taken for
    the owner of a share not moved yet: its feedback was stored open."""
    client = backend_client
    created, agent, human, human_id = _agent_and_human(client, "own-feedback-post@example.com")
    share = _agents_share(agent, protected=False)
    assert account_store.mark_merged(account_store.get(created["account_id"], consistent=True), human_id)
    status, body, _ = call(client, "POST", "/spikes", {"type": "page", "projectKey": share.slug, "id": "done-1",
                                                       "comments": "fixed", "resolved": True},
                           token=created["api_key"])
    assert status == 201, body
    status, listed, _ = call(client, "GET", f"/spikes?project={share.slug}", token=created["api_key"])
    assert [(item["id"], item["resolved"]) for item in listed["data"]] == [("done-1", True)], listed
    # A stranger's key posting "resolved" to that share is still a reviewer: stored open.
    status, body, _ = call(client, "POST", "/spikes", {"type": "page", "projectKey": share.slug, "id": "strange-1",
                                                       "resolved": True}, token=_someone_elses_token(client))
    assert status == 201, body
    status, listed, _ = call(client, "GET", f"/spikes?project={share.slug}", token=created["api_key"])
    assert {item["id"]: item["resolved"] for item in listed["data"]}["strange-1"] is False


def _someone_elses_token(client) -> str:
    from tests.conftest import sign_in
    return sign_in(client, "someone-else@example.com")


def _protect(share: Share) -> Share:
    share.update(actions=[Share.password_hash.set(hash_password("other"))])
    return share_store.get_by_id(share.share_id)


def test_a_principal_is_the_owner_of_its_own_and_the_admin_of_everything(backend_client):
    """The plain cases the one check keeps: the owner, the admin, nobody else, nobody at all."""
    client = backend_client
    created, agent, _, _ = _agent_and_human(client, "own-plain@example.com")
    mine = identity.from_api_key(created["api_key"], deps.settings())
    assert spikes.shows_reviewer_emails(mine, created["account_id"])
    assert spikes.shows_reviewer_emails(identity.Principal(kind="admin"), created["account_id"])
    other = _someone_elses_share(client)
    assert not spikes.shows_reviewer_emails(mine, other.owner_id)
    assert not spikes.shows_reviewer_emails(None, created["account_id"])
    assert not spikes.shows_reviewer_emails(mine, None)


@pytest.mark.parametrize("action", ["resolve", "delete"])
def test_the_agents_key_acts_on_its_feedback_by_id_while_the_claim_runs(backend_client, action):
    """A claim moves spikes after shares. Once it marked the agent's account, the agent's key
    (acting as the person) looked for a spike by id among the person's alone: its share's
    feedback, not moved yet, was a 404 to read, resolve or delete (the MCP server's
    resolve_spike, an agent's cleanup). It is found as its owner's again."""
    client = backend_client
    created, agent, human, human_id = _agent_and_human(client, f"own-spike-{action}@example.com")
    share = _agents_share(agent, protected=False)
    spike_id = _reviewed(client, share)
    assert account_store.mark_merged(account_store.get(created["account_id"], consistent=True), human_id)
    stranger = _someone_elses_token(client)
    assert call(client, "GET", f"/spikes/{spike_id}", token=stranger)[0] == 404
    assert call(client, "PATCH", f"/spikes/{spike_id}", {"resolved": True}, token=stranger)[0] == 404
    status, body, _ = call(client, "GET", f"/spikes/{spike_id}", token=created["api_key"])
    assert status == 200 and body["id"] == spike_id, body
    if action == "resolve":
        status, body, _ = call(client, "PATCH", f"/spikes/{spike_id}", {"resolved": True}, token=created["api_key"])
        assert status == 200 and body["resolved"] and body["reviewer"].get("email") == "rev@example.com", body
    else:
        status, body, _ = call(client, "DELETE", f"/spikes/{spike_id}", token=created["api_key"])
        assert status == 200 and body["id"] == spike_id, body
    status, listed, _ = call(client, "GET", f"/spikes?project={share.slug}", token=created["api_key"])
    assert [item["resolved"] for item in listed["data"]] == ([True] if action == "resolve" else []), listed


def test_a_request_that_read_the_agent_before_the_claim_acts_on_its_moved_feedback_by_id(backend_client):
    """The other side: a request authenticated before the marking (acting as the claimed account)
    looked among that account's spikes, which the claim had moved since: 404."""
    client = backend_client
    created, agent, human, human_id = _agent_and_human(client, "own-spike-before@example.com")
    share = _agents_share(agent, protected=False)
    on_share = _reviewed(client, share)
    own = spike_posts.record(NewSpike(type="page", project_key="agent-notes", client_id="own-1"),
                             deps.settings(), BASE, author=agent).id
    _claim(client, human, created["api_key"])
    assert spike_by_id.get_for(agent, own).owner_id == human_id
    assert spike_by_id.set_resolved(agent, on_share, True).resolved
    spike_by_id.delete(agent, own)
    status, listed, _ = call(client, "GET", "/spikes", token=human)
    assert {item["id"]: item["resolved"] for item in listed["data"]} == {on_share: True}, listed
    other = _someone_elses_share(client)
    with pytest.raises(NotFound):  # someone else's feedback stays "not found"
        spike_by_id.get_for(agent, _reviewed(client, other))
