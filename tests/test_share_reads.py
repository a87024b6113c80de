"""Reads of a share's feedback through the share routes and by its owner's narrow keys
(docs/security.md 350)."""
from __future__ import annotations

from chalicelib.crypto import hash_password
from tests.conftest import call, sign_in
from tests.factories import make_share
from tests.test_apikeys import create_key
from tests.test_open_spikes import _stored

PASSWORD = {"X-Share-Password": "open sesame"}


def test_an_owners_key_without_spikes_read_opens_its_private_share_with_the_password(client):
    """327: such a key reads as anyone does, yet its own private share was 403 to it even with
    the right password, which lets anyone else in. It now gets what the password gives anyone
    (no reviewer's address); without the password it is still told the scope it lacks."""
    owner = sign_in(client, "owner@example.com")
    share = make_share("owner@example.com", "vault", password_hash=hash_password("open sesame"))
    _stored(share, 1, lambda i: {"reviewer": {"id": "r1", "name": "R", "email": "r@example.com"}})
    narrow = {"X-API-Key": create_key(client, owner, scopes="shares:read")["api_key"]}
    anyone = call(client, "GET", "/spikes?project=vault", headers=PASSWORD)
    status, body, _ = call(client, "GET", "/spikes?project=vault", headers={**narrow, **PASSWORD})
    assert status == 200 and body["data"] == anyone[1]["data"] and len(body["data"]) == 1, body  # before: 403
    assert "r@example.com" not in str(body)
    status, body, _ = call(client, "GET", "/spikes?project=vault", headers=narrow)
    assert (status, body["code"]) == (403, "SCOPE_DENIED")
    status, body, _ = call(client, "GET", "/spikes?project=vault", headers={**narrow, "X-Share-Password": "wrong"})
    assert (status, body["code"]) == (403, "SCOPE_DENIED")
