"""The services serve a caller other than the HTTP routes (the roadmap's MCP endpoint): with an
API key resolved to a principal, every tool an agent uses (create a share, submit, read
feedback, resolve) is a service call, and the same scopes and owners decide as for the routes
(docs/architecture.md, "Room for the roadmap")."""
from __future__ import annotations

import pytest

from chalicelib import deps
from chalicelib.errors import NotFound, ScopeDenied
from chalicelib.services import identity, outbound_webhooks, share_creation, share_deletion, shares, spike_by_id, spike_posts, spikes
from chalicelib.services.uploads import UploadedFile
from chalicelib.store.models import User
from chalicelib.store.spike_filters import Filters
from tests.conftest import call, sign_in

BASE_URL = "https://spikes.example"
PAGE = UploadedFile(path="index.html", data=b"<!doctype html><title>t</title>", content_type="text/html")


def _key(client, token: str, scopes: str) -> str:
    status, data, _ = call(client, "POST", "/auth/api-key", {"name": scopes, "scopes": scopes}, token=token)
    assert status == 201, data
    return data["api_key"]


def _as_agent(raw_key: str):
    """What an MCP endpoint does with the key its caller sent: the one way an agent is authorized."""
    return identity.resolve(None, None, deps.settings().admin_token, api_key=raw_key, settings=deps.settings())


def test_an_agent_drives_the_services_without_a_route(client):
    owner = sign_in(client, "owner@example.com")
    raw_key = _key(client, owner, "spikes:read spikes:write shares:read shares:write")
    User(_as_agent(raw_key).user_id).update(actions=[User.tier.set("pro")])  # a password needs Pro
    agent = _as_agent(raw_key)  # the account as the next request reads it
    settings = deps.settings()
    share = share_creation.create_share(settings, deps.share_files(), agent.user,
                                        share_creation.ShareOptions(name="Landing", password="open sesame"), [PAGE],
                                        BASE_URL, agent.key)
    recorded = spike_posts.record(spike_posts.NewSpike(type="page", project_key=share.share_id, comments="Too slow",
                                                       reviewer={"id": "r1", "name": "Rae", "email": "rae@example.com"}),
                                  settings, BASE_URL, None)

    decided = spikes.readable(settings, agent, share.share_id)
    page = spikes.list_page(decided.scope, Filters(), 10, None, settings.secret_key.get_secret_value(),
                            reviewer_emails=decided.reviewer_emails)
    assert [item["id"] for item in page.items] == [recorded.id] and page.items[0]["reviewer"]["email"]
    resolved = spike_by_id.set_resolved(agent, recorded.id[:8], True, prefix_ok=True)
    assert spikes.shown_to(agent, resolved)["resolved"] is True

    # Another account's key: the private share's feedback is "not found", as over HTTP.
    stranger = _as_agent(_key(client, sign_in(client, "other@example.com"), "full"))
    with pytest.raises(NotFound):
        spikes.readable(settings, stranger, share.share_id)
    with pytest.raises(NotFound):
        spike_by_id.set_resolved(stranger, recorded.id, False)

    exported = share_deletion.delete_share(deps.share_files(), agent.user, share.share_id, with_export=True,
                                           presign_ttl_seconds=settings.presign_ttl_seconds)
    assert spikes.exported_for(agent, exported)[0]["reviewer"]["email"] == "rae@example.com"


def test_a_key_without_the_scope_is_refused_by_the_services_too(client):
    owner = sign_in(client, "owner@example.com")
    shares_only = _as_agent(_key(client, owner, "shares:read shares:write"))
    settings = deps.settings()
    share = share_creation.create_share(settings, deps.share_files(), shares_only.user, share_creation.ShareOptions(name="Docs"),
                                        [PAGE], BASE_URL, shares_only.key)
    spike_posts.record(spike_posts.NewSpike(type="page", project_key=share.share_id,
                                            reviewer={"id": "r1", "name": "Rae", "email": "rae@example.com"}),
                       settings, BASE_URL, None)
    with pytest.raises(ScopeDenied):
        spikes.readable(settings, shares_only, None)  # its own feedback needs spikes:read
    with pytest.raises(ScopeDenied):
        outbound_webhooks.require_receiver_scope(shares_only, "https://hooks.example/in")
    exported = spikes.exported_for(shares_only, shares.export_spikes(share))
    assert exported and "email" not in exported[0]["reviewer"]
    assert spikes.readable(settings, shares_only, share.share_id).reviewer_emails is False  # public listing
