"""Reads of a share's feedback through the share routes and by its owner's narrow keys
(docs/security.md 350, 352)."""
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


def test_reading_a_share_with_its_feedback_counts_as_an_export(client, env, from_network):
    """GET /shares/{key} answers the share's whole feedback inline (up to ~5 MB read) and counted
    nothing: a key with shares:read alone (finding 30: no addresses) read it as often as its
    holder liked. It now counts as an export (docs/security.md 352): the owner's session or
    spikes:read key on the account's export counter, a key without spikes:read on its network's;
    the dashboard's ``?exported_spikes=false`` reads no spike and is never counted."""
    env(RATE_EXPORTS_PER_MINUTE="2")
    owner = sign_in(client, "owner@example.com")
    share = make_share("owner@example.com", "vault", password_hash=hash_password("open sesame"))
    _stored(share, 3, lambda i: {"reviewer": {"id": "r1", "name": "R", "email": "r@example.com"}})
    narrow = {"X-API-Key": create_key(client, owner, scopes="shares:read")["api_key"]}
    from_network("203.0.113.7")
    answers = [call(client, "GET", "/shares/vault", headers=narrow) for _ in range(3)]
    assert [status for status, _, _ in answers] == [200, 200, 429]  # before: 200 every time
    assert len(answers[0][1]["exported_spikes"]) == 3 and "r@example.com" not in str(answers[0][1])
    status, body, headers = answers[2]
    assert body["code"] == "RATE_LIMIT" and int(headers["Retry-After"]) >= 1
    assert headers["X-RateLimit-Limit"] == "2" and headers["X-RateLimit-Remaining"] == "0"
    # The narrow key spent its network's exports, not its owner's account's.
    from_network("198.51.100.9")
    owned = [call(client, "GET", "/shares/vault", token=owner) for _ in range(3)]
    assert [status for status, _, _ in owned] == [200, 200, 429]
    assert owned[0][2]["X-RateLimit-Remaining"] == "1" and len(owned[0][1]["exported_spikes"]) == 3
    # The dashboard's way, and the listing, go on.
    for _ in range(5):
        status, body, _ = call(client, "GET", "/shares/vault?exported_spikes=false", token=owner)
        assert status == 200 and body["exported_spikes"] == [] and body["id"] == share.share_id
