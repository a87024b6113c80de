"""docs/agents.md's quickstart against the real local server, over HTTP, with the requests the
CLI (ureq) sends: a key with no credentials, a share, a spike, reading and resolving it."""
from __future__ import annotations

import pytest
import requests

pytestmark = pytest.mark.e2e

UREQ = {"User-Agent": "ureq/2.12.1"}


def test_the_agent_quickstart_and_a_restart(live_server_factory):
    server = live_server_factory()
    api = server.url
    created = requests.post(f"{api}/auth/api-key", json={"name": "my-agent"}, headers=UREQ, timeout=30)
    assert created.status_code == 201, created.text
    key, key_id = created.json()["api_key"], created.json()["key_id"]
    assert key.startswith("sk_spikes_") and created.json()["scopes"] == "full"
    auth = {**UREQ, "Authorization": f"Bearer {key}"}

    share = requests.post(f"{api}/shares", headers=auth, timeout=30,
                          files={"metadata": (None, '{"name": "landing"}'),
                                 "files": ("index.html", b"<!doctype html><h1>Hi</h1>", "text/html")})
    assert share.status_code == 201, share.text
    slug = share.json()["slug"]

    spike = requests.post(f"{api}/spikes", headers={**UREQ, "X-API-Key": key}, timeout=30,
                          json={"type": "page", "projectKey": slug, "page": "/", "rating": "meh",
                                "comments": "Hero text too long"})
    assert spike.status_code == 201, spike.text
    spike_id = spike.json()["id"]

    open_items = requests.get(f"{api}/spikes?resolved=false", headers=auth, timeout=30).json()
    assert [item["id"] for item in open_items["data"]] == [spike_id]
    resolved = requests.patch(f"{api}/spikes/{spike_id}", json={"resolved": True}, headers=auth, timeout=30)
    assert resolved.status_code == 200 and resolved.json()["resolved_at"]

    server.restart()  # keys live in the saved local data like everything else
    me = requests.get(f"{api}/me", headers=auth, timeout=30)
    # A key-only account has no e-mail: "" for the CLI (its whoami parses a string), else null.
    assert me.status_code == 200 and me.json()["key_id"] == key_id and me.json()["email"] == ""
    listed = requests.get(f"{api}/auth/api-keys", headers=auth, timeout=30).json()
    assert [entry["key_id"] for entry in listed] == [key_id] and listed[0]["last_used_at"]

    revoked = requests.delete(f"{api}/auth/api-key/{key_id}", headers=auth, timeout=30)
    assert revoked.status_code == 200 and revoked.json()["ok"] is True
    refused = requests.get(f"{api}/me", headers=auth, timeout=30)
    assert refused.status_code == 401 and refused.json()["code"] == "AUTH_FAILED"
