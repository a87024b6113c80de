"""API keys: the CLI's create/list/revoke requests and structs, both headers, scopes against
every route, revocation and expiry, shown once, stored only as a hash, last_used_at."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone


from chalicelib import deps
from chalicelib.services import apikeys, scopes
from chalicelib.store.models import ALL_MODELS, ApiKey
from tests.conftest import call, sign_in

# The CLI's structs (cli/src/commands/auth_keys.rs): field -> allowed JSON types.
CREATE_KEY_RESPONSE = {"ok": (bool,), "api_key": (str,), "key_id": (str,), "name": (str, type(None)),
                       "scopes": (str,), "created_at": (str,)}
API_KEY_ENTRY = {"key_id": (str,), "key_prefix": (str,), "name": (str, type(None)), "scopes": (str,),
                 "monthly_cap_cents": (int, type(None)), "revoked_at": (str, type(None)),
                 "expires_at": (str, type(None)), "created_at": (str,), "last_used_at": (str, type(None))}


def assert_struct(value: dict, struct: dict) -> None:
    for field, types in struct.items():
        assert field in value, f"missing {field}"
        assert isinstance(value[field], types) and not (bool in types) ^ isinstance(value[field], bool), \
            f"{field}={value[field]!r}"


def create_key(client, token=None, headers=None, **body):
    status, data, _ = call(client, "POST", "/auth/api-key", body, token=token, headers=headers)
    assert status == 201, data
    return data


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# --- the CLI's requests ----------------------------------------------------------------------

def test_create_key_with_a_session_answers_the_clis_struct(client, user_token):
    for body in ({}, {"name": "my agent"}):
        status, data, headers = call(client, "POST", "/auth/api-key", body, token=user_token)
        assert status == 201, data
        assert_struct(data, CREATE_KEY_RESPONSE)
        assert data["ok"] is True and data["scopes"] == "full"
        assert data["api_key"].startswith("sk_spikes_") and len(data["api_key"]) == len("sk_spikes_") + 16 + 43
        assert data["name"] == body.get("name")
        assert data["key_prefix"] == data["api_key"][len("sk_spikes_"):][:8]
        assert headers["Cache-Control"] == "no-store"
        parse_iso(data["created_at"])


def test_list_keys_is_a_bare_array_of_the_clis_entries_without_secrets(client, user_token):
    first = create_key(client, user_token, name="one")
    second = create_key(client, user_token, scopes="read", monthly_cap_cents=500)
    status, listed, _ = call(client, "GET", "/auth/api-keys", token=user_token)
    assert status == 200 and isinstance(listed, list) and len(listed) == 2
    for entry in listed:
        assert_struct(entry, API_KEY_ENTRY)
        assert "api_key" not in entry and "key_hash" not in entry
    by_id = {entry["key_id"]: entry for entry in listed}
    assert by_id[first["key_id"]]["name"] == "one" and by_id[first["key_id"]]["scopes"] == "full"
    assert by_id[second["key_id"]]["scopes"] == "read" and by_id[second["key_id"]]["monthly_cap_cents"] == 500
    assert [e["key_id"] for e in listed] == [second["key_id"], first["key_id"]]  # newest first


def test_the_cli_manages_keys_with_its_stored_key(client):
    """list-keys and revoke-key send the saved API key as the bearer."""
    created = create_key(client)  # no credentials: self-signup
    key = created["api_key"]
    other = create_key(client, key, name="second")
    status, listed, _ = call(client, "GET", "/auth/api-keys", token=key)
    assert status == 200 and {e["key_id"] for e in listed} == {created["key_id"], other["key_id"]}
    status, body, _ = call(client, "DELETE", f"/auth/api-key/{other['key_id']}", token=key)
    assert status == 200 and body["ok"] is True
    assert call(client, "GET", "/me", token=other["api_key"])[0] == 401


# --- revocation, expiry, shown once, hash only ----------------------------------------------

def test_revocation_takes_effect_on_the_next_request(client, user_token):
    created = create_key(client, user_token)
    assert call(client, "GET", "/shares", token=created["api_key"])[0] == 200
    status, body, _ = call(client, "DELETE", f"/auth/api-key/{created['key_id']}", token=user_token)
    assert status == 200 and body == {"ok": True, "key_id": created["key_id"], "revoked_at": body["revoked_at"]}
    status, body, _ = call(client, "GET", "/shares", token=created["api_key"])
    assert (status, body["code"]) == (401, "AUTH_FAILED")
    assert "revoked" in body["error"] and "POST /auth/api-key" in body["error"]  # what to do next
    _, listed, _ = call(client, "GET", "/auth/api-keys", token=user_token)
    assert listed[0]["revoked_at"] == body_revoked_at(client, user_token, created["key_id"])
    # Revoking again is fine and keeps the first time; a revoked key cannot be changed.
    assert call(client, "DELETE", f"/auth/api-key/{created['key_id']}", token=user_token)[0] == 200
    status, body, _ = call(client, "PATCH", f"/auth/api-key/{created['key_id']}", {"name": "x"}, token=user_token)
    assert (status, body["code"]) == (409, "CONFLICT")


def body_revoked_at(client, token, key_id):
    _, listed, _ = call(client, "GET", "/auth/api-keys", token=token)
    return next(e["revoked_at"] for e in listed if e["key_id"] == key_id)


def test_expired_keys_are_refused(client, user_token):
    soon = (datetime.now(timezone.utc) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    created = create_key(client, user_token, expires_at=soon)
    assert parse_iso(created["expires_at"]) == parse_iso(soon)
    assert call(client, "GET", "/me", token=created["api_key"])[0] == 200
    ApiKey(created["key_id"]).update(actions=[ApiKey.expires_at.set("2020-01-01T00:00:00.000Z")])
    status, body, _ = call(client, "GET", "/me", token=created["api_key"])
    assert (status, body["code"]) == (401, "AUTH_FAILED") and "expired" in body["error"]
    assert "POST /auth/api-key" in body["error"]


def test_past_expiry_and_unknown_scopes_are_validation_errors(client, user_token):
    status, body, _ = call(client, "POST", "/auth/api-key", {"expires_at": "2020-01-01T00:00:00Z"}, token=user_token)
    assert status == 400 and body["details"][0]["field"] == "expires_at"
    status, body, _ = call(client, "POST", "/auth/api-key", {"scopes": "read admin"}, token=user_token)
    assert status == 400 and body["details"][0]["field"] == "scopes" and "admin" in body["details"][0]["message"]
    status, body, _ = call(client, "POST", "/auth/api-key", {"monthly_cap_cents": -1}, token=user_token)
    assert status == 400 and body["details"][0]["field"] == "monthly_cap_cents"


def test_keys_are_stored_only_as_hashes(client, user_token):
    created = create_key(client, user_token, name="secret-keeper")
    secret = created["api_key"][len("sk_spikes_") + 16:]
    for model in ALL_MODELS:
        for item in model.scan():
            dumped = str(item.serialize())
            assert created["api_key"] not in dumped and secret not in dumped, model.__name__
    stored = ApiKey.get(created["key_id"])
    assert stored.key_hash != created["api_key"] and len(stored.key_hash) == 64
    assert stored.key_prefix == created["key_prefix"] and len(stored.key_prefix) == 8


def test_wrong_malformed_and_forged_keys_fail(client, user_token):
    created = create_key(client, user_token)
    forged = created["api_key"][:-4] + ("AAAA" if not created["api_key"].endswith("AAAA") else "BBBB")
    for bad in (forged, "sk_spikes_short", "sk_spikes_" + "a" * 59):
        status, body, _ = call(client, "GET", "/me", token=bad)
        assert (status, body["code"]) == (401, "AUTH_FAILED"), bad
        status, body, _ = call(client, "GET", "/me", headers={"X-API-Key": bad})
        assert (status, body["code"]) == (401, "AUTH_FAILED"), bad
    status, body, _ = call(client, "GET", "/me", headers={"X-API-Key": "not-a-key"})
    assert (status, body["code"]) == (401, "AUTH_FAILED")
    # A key cut short (a copy-paste) is told what a whole key looks like and where it came from.
    status, body, _ = call(client, "GET", "/me", headers={"X-API-Key": "sk_spikes_short"})
    assert "sk_spikes_ and 59 characters" in body["error"] and "POST /auth/api-key" in body["error"]


# --- both headers, /me -----------------------------------------------------------------------

def test_both_headers_are_accepted(client, user_token):
    created = create_key(client, user_token, name="header-test", scopes="read")
    for headers in ({"Authorization": f"Bearer {created['api_key']}"}, {"X-API-Key": created["api_key"]}):
        status, listed, _ = call(client, "GET", "/shares", headers=headers)
        assert status == 200 and listed == []
        status, me, _ = call(client, "GET", "/me", headers=headers)
        assert status == 200 and me["key_id"] == created["key_id"]


def test_me_with_a_key_describes_the_key_and_its_owner(client, user_token):
    created = create_key(client, user_token, name="agent", scopes="read", monthly_cap_cents=250)
    status, me, _ = call(client, "GET", "/me", token=created["api_key"])
    assert status == 200
    assert me["scopes"] == "read" and isinstance(me["scopes"], str)
    assert (me["key_id"], me["name"], me["key_prefix"]) == (created["key_id"], "agent", created["key_prefix"])
    assert me["email"] == "owner@example.com" and me["tier"] == "free" and me["monthly_cap_cents"] == 250
    assert me["claimable"] is False and "api_key" not in me


# --- scopes against every route --------------------------------------------------------------

SESSION_ONLY = "session-only"
ROUTES = [
    ("GET", "/spikes", "spikes:read"),
    ("GET", "/spikes/export", "spikes:read"),
    ("POST", "/exports", "spikes:read"),
    ("GET", "/spikes/spk_missing", "spikes:read"),
    ("PATCH", "/spikes/spk_missing", "spikes:write"),
    ("DELETE", "/spikes/spk_missing", "spikes:write"),
    ("POST", "/spikes", "spikes:write"),
    ("POST", "/shares", "shares:write"),
    ("POST", "/shares/uploads", "shares:write"),
    ("POST", "/shares/missing-share/complete", "shares:write"),
    ("GET", "/shares", "shares:read"),
    ("GET", "/shares/missing-share", "shares:read"),
    ("DELETE", "/shares/missing-share", "shares:write"),
    ("PATCH", "/shares/missing-share", "shares:write"),
    ("GET", "/v1/shares", "shares:read"),
    ("POST", "/v1/spikes", "spikes:write"),
    ("GET", "/usage", "usage:read"),
    ("GET", "/auth/api-keys", "keys:manage"),
    ("POST", "/auth/api-key", "keys:manage"),
    ("PATCH", "/auth/api-key/key_missing", "keys:manage"),
    ("DELETE", "/auth/api-key/key_missing", "keys:manage"),
    ("GET", "/shares/missing-share/webhook", "shares:read"),
    ("GET", "/shares/missing-share/webhook/deliveries", "shares:read"),
    ("POST", "/shares/missing-share/webhook/rotate", "shares:write"),
    ("POST", "/shares/missing-share/webhook/test", "shares:write"),
    ("POST", "/shares/missing-share/webhook/resume", "shares:write"),
    ("GET", "/billing/checkout", SESSION_ONLY),
    ("GET", "/billing/checkout?tier=agent", SESSION_ONLY),
    ("POST", "/billing/checkout", SESSION_ONLY),
    ("GET", "/billing/portal", SESSION_ONLY),
    ("POST", "/billing/portal", SESSION_ONLY),
    ("PATCH", "/me", SESSION_ONLY),
    ("POST", "/auth/link-key", SESSION_ONLY),
    ("POST", "/auth/rotate-token", SESSION_ONLY),
    ("POST", "/auth/logout", SESSION_ONLY),
]
ENDS_THE_SESSION = {"/auth/rotate-token", "/auth/logout"}
# Routes that take credentials but need no scope: any key may describe itself (the MCP server
# reads its `scopes` there before writing).
# An export is read back only by the credential that started it, whose access is asked again as
# its start asked it (services/background_exports.may_read, api/exports._still_readable): any
# other caller gets 404, whatever its scopes.
NO_SCOPE_NEEDED = {("GET", "/me"), ("GET", "/exports/{export_id}")}
CONCRETE = {"spk_missing": "{spike_id}", "missing-share": "{key}", "key_missing": "{key_id}"}
BODIES = {("POST", "/spikes"): {"type": "page", "projectKey": "scope-test", "comments": "hi"},
          ("POST", "/v1/spikes"): {"type": "page", "projectKey": "scope-test", "comments": "hi"},
          ("PATCH", "/shares/missing-share"): {"name": "renamed"},
          ("PATCH", "/spikes/spk_missing"): {"resolved": True}, ("PATCH", "/auth/api-key/key_missing"): {"name": "x"}}


def test_each_scope_against_each_route(client, user_token):
    keys = {scope: create_key(client, user_token, scopes=scope)["api_key"] for scope in scopes.FINE_SCOPES}
    for method, path, needed in ROUTES:
        body = BODIES.get((method, path), {})
        for scope, key in keys.items():
            status, data, _ = call(client, method, path, body, token=key)
            if scope == needed:
                assert status != 403, (method, path, scope, data)
            else:
                assert (status, data["code"]) == (403, "SCOPE_DENIED"), (method, path, scope, status, data)
                assert data["required_scope"] in (needed, "billing:write", "auth:write", "account:write")
        # A session holds every scope (a fresh one for the routes that end the session).
        session = sign_in(client, "owner@example.com") if path in ENDS_THE_SESSION else user_token
        status, data, _ = call(client, method, path, body, token=session)
        assert status not in (401, 403), (method, path, status, data)


def test_the_scope_table_covers_every_route_that_takes_credentials():
    """A new route taking credentials fails here until it is added to ROUTES (and so tested
    against every scope above)."""
    from chalicelib.api import openapi

    def template(path: str) -> str:
        path = path.split("?")[0]
        for concrete, variable in CONCRETE.items():
            path = path.replace(concrete, variable)
        return path[len("/v1"):] if path.startswith("/v1/") else path
    tested = {(method, template(path)) for method, path, _ in ROUTES}
    credentialed = {operation for operation, spec in openapi.OPERATIONS.items() if spec.auth != openapi.PUBLIC}
    assert credentialed - NO_SCOPE_NEEDED - tested == set()


def test_client_words_read_write_full(client, user_token):
    read = create_key(client, user_token, scopes="read")["api_key"]
    write = create_key(client, user_token, scopes="write")["api_key"]
    full = create_key(client, user_token, scopes="full")["api_key"]
    spike = {"type": "page", "projectKey": "words", "comments": "x"}
    status, body, _ = call(client, "POST", "/spikes", spike, token=read)
    assert (status, body["code"], body["required_scope"]) == (403, "SCOPE_DENIED", "spikes:write")
    assert call(client, "GET", "/spikes", token=read)[0] == 200
    assert call(client, "POST", "/spikes", spike, token=write)[0] == 201
    assert call(client, "GET", "/spikes", token=write)[0] == 200
    assert call(client, "GET", "/auth/api-keys", token=write)[0] == 403
    assert call(client, "GET", "/auth/api-keys", token=full)[0] == 200
    status, body, _ = call(client, "GET", "/billing/checkout", token=full)
    assert (status, body["code"]) == (403, "SCOPE_DENIED") and "session" in body["error"]


def test_scope_strings_are_normalised(client, user_token):
    assert create_key(client, user_token, scopes="")["scopes"] == "full"
    assert create_key(client, user_token, scopes="read full")["scopes"] == "full"
    assert create_key(client, user_token, scopes="spikes:read  spikes:read usage:read")["scopes"] == \
        "spikes:read usage:read"


# --- keys acting on keys only tighten --------------------------------------------------------

def test_patch_changes_name_cap_and_expiry(client, user_token):
    created = create_key(client, user_token, name="before", monthly_cap_cents=100)
    later = (datetime.now(timezone.utc) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    status, body, _ = call(client, "PATCH", f"/auth/api-key/{created['key_id']}",
                           {"name": "after", "monthly_cap_cents": 900, "expires_at": later}, token=user_token)
    assert status == 200 and body["ok"] is True
    assert (body["name"], body["monthly_cap_cents"], parse_iso(body["expires_at"])) == ("after", 900, parse_iso(later))
    status, body, _ = call(client, "PATCH", f"/auth/api-key/{created['key_id']}",
                           {"monthly_cap_cents": None, "expires_at": None}, token=user_token)
    assert status == 200 and body["monthly_cap_cents"] is None and body["expires_at"] is None
    assert body["name"] == "after"  # absent fields stay


def test_a_key_can_tighten_but_not_loosen(client, user_token):
    agent = create_key(client, user_token, scopes="read keys:manage", monthly_cap_cents=500)
    key, key_id = agent["api_key"], agent["key_id"]
    status, body, _ = call(client, "PATCH", f"/auth/api-key/{key_id}", {"monthly_cap_cents": 300}, token=key)
    assert status == 200 and body["monthly_cap_cents"] == 300
    for change in ({"monthly_cap_cents": 400}, {"monthly_cap_cents": None}):
        status, body, _ = call(client, "PATCH", f"/auth/api-key/{key_id}", change, token=key)
        assert (status, body["code"]) == (403, "SCOPE_DENIED"), change
    # Keys it creates inherit its cap and cannot exceed its scopes.
    child = create_key(client, key, name="child")
    assert child["monthly_cap_cents"] == 300 and child["scopes"] == "read keys:manage"
    status, body, _ = call(client, "POST", "/auth/api-key", {"scopes": "write"}, token=key)
    assert (status, body["code"]) == (403, "SCOPE_DENIED")
    status, body, _ = call(client, "POST", "/auth/api-key", {"monthly_cap_cents": 10_000}, token=key)
    assert (status, body["code"]) == (403, "SCOPE_DENIED")
    # The owner's session may loosen.
    status, body, _ = call(client, "PATCH", f"/auth/api-key/{key_id}", {"monthly_cap_cents": None}, token=user_token)
    assert status == 200 and body["monthly_cap_cents"] is None


def test_keys_of_other_users_are_not_found(client, user_token):
    created = create_key(client, user_token)
    stranger = sign_in(client, "stranger@example.com")
    for method, body in (("DELETE", None), ("PATCH", {"name": "mine now"})):
        status, data, _ = call(client, method, f"/auth/api-key/{created['key_id']}", body, token=stranger)
        assert (status, data["code"]) == (404, "NOT_FOUND")
    assert call(client, "GET", "/auth/api-keys", token=stranger)[1] == []


# --- last_used_at ----------------------------------------------------------------------------

def test_last_used_at_is_written_at_most_once_per_resolution(client, user_token):
    created = create_key(client, user_token)
    raw, key_id = created["api_key"], created["key_id"]
    settings = deps.settings()
    start = time.time()
    apikeys.authenticate(raw, settings, now=start)
    first = ApiKey.get(key_id).last_used_at
    assert first is not None
    apikeys.authenticate(raw, settings, now=start + 60)
    assert ApiKey.get(key_id).last_used_at == first  # within the resolution: no write
    apikeys.authenticate(raw, settings, now=start + settings.key_last_used_resolution_seconds + 5)
    assert ApiKey.get(key_id).last_used_at > first
    _, listed, _ = call(client, "GET", "/auth/api-keys", token=user_token)
    assert listed[0]["last_used_at"] is not None


def test_last_used_skips_the_write_when_fresh(client, user_token, monkeypatch):
    created = create_key(client, user_token)
    call(client, "GET", "/me", token=created["api_key"])
    writes = []
    original = ApiKey.update

    def counting_update(self, *args, **kwargs):
        writes.append(self.key_id)
        return original(self, *args, **kwargs)
    monkeypatch.setattr(ApiKey, "update", counting_update)
    for _ in range(5):
        assert call(client, "GET", "/me", token=created["api_key"])[0] == 200
    assert writes == []


# --- the CLI's exact requests, byte for byte (cli/src/commands/auth_keys.rs, usage.rs) -------

def test_the_clis_key_lifecycle_with_its_exact_requests(client):
    """create-key: POST with Content-Type and serde_json's bytes, no credentials; list-keys and
    revoke-key: the saved key as bearer, no body; usage: GET /usage with the key. Each answer
    parsed as the CLI's struct would be (strings, nullable fields, u64 counts)."""
    import json

    from tests.test_clients import ureq
    status, raw = ureq(client, "POST", "/auth/api-key", b'{"name":"my-agent"}', content_type=True)
    assert status == 201, raw
    created = json.loads(raw)
    assert_struct(created, CREATE_KEY_RESPONSE)
    key = created["api_key"]
    status, raw = ureq(client, "POST", "/auth/api-key", b"{}", content_type=True)  # create-key without --name
    assert status == 201 and json.loads(raw)["name"] is None
    # list-keys and revoke-key act on the account of the saved key: a second key of it first.
    second = create_key(client, key, name="second")
    status, raw = ureq(client, "GET", "/auth/api-keys", bearer=key)
    assert status == 200
    listed = json.loads(raw)
    assert isinstance(listed, list) and {entry["key_id"] for entry in listed} == {created["key_id"], second["key_id"]}
    for entry in listed:
        assert_struct(entry, API_KEY_ENTRY)
    status, raw = ureq(client, "DELETE", f"/auth/api-key/{second['key_id']}", bearer=key)
    assert status == 200 and json.loads(raw)["ok"] is True
    revoked = {e["key_id"]: e for e in json.loads(ureq(client, "GET", "/auth/api-keys", bearer=key)[1])}
    assert revoked[second["key_id"]]["revoked_at"] and revoked[created["key_id"]]["revoked_at"] is None
    # The CLI derives "expired" by parsing expires_at as RFC 3339.
    assert parse_iso(revoked[second["key_id"]]["revoked_at"])
    status, raw = ureq(client, "GET", "/usage", bearer=key)
    usage = json.loads(raw)
    assert status == 200 and usage["tier"] == "free"
    for field in ("spikes", "shares"):
        assert isinstance(usage[field], int) and not isinstance(usage[field], bool) and usage[field] >= 0
    assert all(usage[field] is None or isinstance(usage[field], int) for field in ("spike_limit", "share_limit"))
    # The MCP server's check before a write: GET /me with the key, `scopes` a string.
    status, raw = ureq(client, "GET", "/me", bearer=key)
    assert status == 200 and json.loads(raw)["scopes"] == "full"


def test_the_key_is_shown_once(client, user_token):
    """Only the creation answer carries the secret: no later answer about the key does."""
    created = create_key(client, user_token, name="once")
    secret = created["api_key"]
    answers = [
        call(client, "GET", "/auth/api-keys", token=user_token)[1],
        call(client, "GET", "/me", token=secret)[1],
        call(client, "GET", "/usage", token=secret)[1],
        call(client, "PATCH", f"/auth/api-key/{created['key_id']}", {"name": "renamed"}, token=user_token)[1],
        call(client, "DELETE", f"/auth/api-key/{created['key_id']}", token=user_token)[1],
    ]
    for answer in answers:
        assert secret not in str(answer) and secret[len("sk_spikes_") + 16:] not in str(answer)
