"""API keys: create (with a user's credentials, or none at all: an agent's self-signup),
list, revoke, change; and claiming a key-only account."""
from __future__ import annotations

from chalice import Blueprint

from chalicelib import deps
from chalicelib.api import inputs
from chalicelib.api.routing import json_response, route
from chalicelib.errors import AuthFailed
from chalicelib.lazy import lazy_import

responses = lazy_import("chalicelib.api.responses")
schemas = lazy_import("chalicelib.api.schemas")
apikeys = lazy_import("chalicelib.services.apikeys")
claimed_cursors = lazy_import("chalicelib.services.claimed_cursors")
claims = lazy_import("chalicelib.services.claims")
identity = lazy_import("chalicelib.services.identity")

bp = Blueprint(__name__)

NO_STORE = {"Cache-Control": "no-store"}
NEXT_CURSOR = "X-Next-Cursor"
# Without ?limit=, 100 keys a page; the CLI (ureq), which reads one page only, gets the most.
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


@route(bp, "/auth/api-key", methods=["POST"])
def create_key():
    request = bp.current_request
    body = inputs.parse(request, schemas.KeyCreateIn)
    wanted = apikeys.KeyRequest(name=body.name, scopes=body.scopes, expires_at=body.expires_at,
                                monthly_cap_cents=body.monthly_cap_cents)
    principal = inputs.principal(request)
    if principal is None and inputs.sends_credentials(request):
        # Meant for an account (a session sent without "Bearer ", say): never a new key-only one.
        raise AuthFailed("This request's Authorization or X-API-Key header holds no credential this server reads: "
                         "send `Authorization: Bearer <session token or API key>`, or no credentials at all "
                         "to sign up a new key-only account")
    if principal is None:  # exactly what `spikes auth create-key` sends: no credentials
        created = apikeys.signup(deps.settings(), inputs.client_ip(request), wanted)
    else:
        principal = identity.require_user(principal, "keys:manage")
        created = apikeys.create(principal.user, wanted, actor=principal.key, settings=deps.settings())
    return json_response(responses.ApiKeyCreatedOut(**created.body()), 201, NO_STORE)


@route(bp, "/auth/api-keys", methods=["GET"])
def list_keys():
    """A bare array, as the CLI's `list-keys` parses it: one page, newest first; the next page's
    cursor, when there is one, in the X-Next-Cursor header (docs/agents.md "Keys")."""
    request = bp.current_request
    principal = identity.require_user(inputs.principal(request), "keys:manage")
    params = inputs.query(request)
    limit = inputs.page_limit(params, MAX_LIMIT if inputs.is_rust_client(request) else DEFAULT_LIMIT, MAX_LIMIT)
    secret = deps.settings().secret_key.get_secret_value()
    keys, next_cursor = apikeys.list_page(principal.user, limit,
                                          claimed_cursors.carried_on(principal, params.get("cursor") or None, secret),
                                          secret)
    headers = {NEXT_CURSOR: next_cursor} if next_cursor else None
    return json_response([responses.ApiKeyOut(**apikeys.entry(key)) for key in keys], 200, headers)


@route(bp, "/auth/api-key/{key_id}", methods=["DELETE"])
def revoke_key(key_id: str):
    principal = identity.require_user(inputs.principal(bp.current_request), "keys:manage")
    key = apikeys.revoke(principal.user, key_id)
    return responses.ApiKeyRevokedOut(key_id=key.key_id, revoked_at=key.revoked_at)


@route(bp, "/auth/api-key/{key_id}", methods=["PATCH"])
def patch_key(key_id: str):
    request = bp.current_request
    principal = identity.require_user(inputs.principal(request), "keys:manage")
    body = inputs.parse(request, schemas.KeyPatchIn)
    changes = {name: getattr(body, name) for name in body.model_fields_set
               if name in ("name", "monthly_cap_cents", "expires_at")}
    key = apikeys.update(principal.user, key_id, actor=principal.key, **changes)
    return responses.ApiKeyChangedOut(**apikeys.entry(key))


@route(bp, "/auth/link-key", methods=["POST"])
def link_key():
    """Claim a key-only account: with the signed-in user's session and the key in the body,
    the account's keys, shares and spikes become the user's. 202 when the call's time ran out
    with some left: the same call again moves the rest."""
    request = bp.current_request
    principal = identity.require_user(inputs.principal(request), "account:write")
    body = inputs.parse(request, schemas.LinkKeyIn)
    claimed = claims.claim(principal.user, body.api_key, deps.settings())
    moved = responses.MovedOut(keys=claimed.keys, shares=claimed.shares, spikes=claimed.spikes)
    return json_response(responses.LinkedOut(user_id=principal.user_id, claimed_account_id=claimed.account_id,
                                             moved=moved, complete=claimed.complete),
                         200 if claimed.complete else 202)
