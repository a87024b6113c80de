"""API keys: the credential agents use, with scopes, expiry, a budget cap and revocation.

A key is ``sk_spikes_<16-char id part><43-char secret>`` (256 random bits of secret). The id
part names the stored item (``key_<id part>``), so authenticating is one GetItem plus a
constant-time comparison of SHA-256 hashes; the key itself is shown once and never stored.

What a key's scopes grant is ``services/scopes.py``. Some things no key can do: paying, and
loosening a key's limits, need the account owner's signed-in session. A key acting on keys can
only tighten (``services/key_limits.py``).
"""
from __future__ import annotations

import base64
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import List, Optional, Tuple

from chalicelib import clock
from chalicelib.errors import AuthFailed, AuthRequired, Conflict, NotFound
from chalicelib.logs import get_logger
from chalicelib.services import key_budgets, key_limits, key_owners, key_places, ownership, quotas, ratelimit
from chalicelib.services import signup_limits
from chalicelib.services.scopes import normalise_scopes
from chalicelib.services.usage import key_usage
from chalicelib.crypto import constant_time_equals, token_hash
from chalicelib.settings import Settings, get_settings
from chalicelib.store import accounts as account_store
from chalicelib.store import apikeys as key_store
from chalicelib.store.models import ApiKey, User

log = get_logger("spikes.apikeys")

PREFIX = "sk_spikes_"
# Refusals that say what to do next: a 401 alone sends a person to sign in, an agent nowhere.
MALFORMED = "Malformed API key: send it whole, as POST /auth/api-key answered it (sk_spikes_ and 59 characters)"
REVOKED = "This API key was revoked: use another key of the account, or create one (POST /auth/api-key)"
EXPIRED = "This API key has expired: use another key of the account, or create one (POST /auth/api-key)"
_ID_PART = re.compile(r"^[a-z2-7]{16}$")
_SECRET_PART = re.compile(r"^[A-Za-z0-9_\-]{43}$")
DISPLAY_PREFIX_CHARS = 8


# --- the key itself --------------------------------------------------------------------------

def _new_secret() -> Tuple[str, str]:
    id_part = base64.b32encode(secrets.token_bytes(10)).decode("ascii").lower()
    return f"key_{id_part}", f"{PREFIX}{id_part}{secrets.token_urlsafe(32)}"


def key_id_of(raw: str) -> Optional[str]:
    """The item a presented key names, or None when it is not shaped like one of ours."""
    if not raw.startswith(PREFIX):
        return None
    body = raw[len(PREFIX):]
    id_part, secret = body[:16], body[16:]
    if not _ID_PART.match(id_part) or not _SECRET_PART.match(secret):
        return None
    return f"key_{id_part}"


def looks_like_key(credential: Optional[str]) -> bool:
    return bool(credential) and credential.startswith(PREFIX)


def entry(key: ApiKey) -> dict:
    """One key as ``GET /auth/api-keys`` lists it (the CLI's ApiKeyEntry)."""
    return {"key_id": key.key_id, "key_prefix": key.key_prefix, "name": key.name, "scopes": key.scopes,
            "monthly_cap_cents": key_limits.cents(key.monthly_cap_cents), "revoked_at": key.revoked_at,
            "expires_at": key.expires_at, "created_at": key.created_at, "last_used_at": key.last_used_at}


def describe(key: ApiKey, user: User) -> dict:
    """``GET /me`` with a key: the key (``scopes`` as the MCP server reads it) and its owner
    (``email`` is None for a key-only account until it is claimed)."""
    return {**entry(key), "credential": "api_key", "id": user.user_id, "email": user.email,
            "tier": quotas.effective_tier(user), "account_created_at": user.created_at,
            "claimable": user.email is None, "usage": key_usage(key, clock.current_period())}


def _now_iso(now: Optional[float] = None) -> str:
    """All key times in one format (with milliseconds), so they order as strings."""
    return clock.iso_millis(datetime.fromtimestamp(clock.epoch() if now is None else now, timezone.utc))


# --- creating --------------------------------------------------------------------------------

@dataclass(frozen=True)
class KeyRequest:
    name: Optional[str] = None
    scopes: Optional[str] = None
    expires_at: Optional[datetime] = None
    monthly_cap_cents: Optional[int] = None


@dataclass(frozen=True)
class CreatedKey:
    key: ApiKey
    api_key: str  # the only time the secret exists outside the caller
    user: User

    def body(self) -> dict:
        return {"ok": True, "api_key": self.api_key, **entry(self.key), "account_id": self.user.user_id}


def _new_item(user_id: str, request: KeyRequest, scopes: str, expires: Optional[str], cap: Optional[int],
              created_by: str, now: float) -> Tuple[ApiKey, str]:
    key_id, raw = _new_secret()
    name = (request.name or "").strip() or None
    return ApiKey(key_id, key_hash=token_hash(raw), key_prefix=raw[len(PREFIX):len(PREFIX) + DISPLAY_PREFIX_CHARS],
                  user_id=user_id, name=name, scopes=scopes, monthly_cap_cents=cap, created_at=_now_iso(now),
                  expires_at=expires, created_by=created_by), raw


def create(user: User, request: KeyRequest, actor: Optional[ApiKey] = None, now: Optional[float] = None,
           settings: Optional[Settings] = None) -> CreatedKey:
    """A key of ``user``, asked for with the user's session or (``actor``) one of its keys,
    within the account's limits: creations per hour and live keys at once, whoever asks."""
    now = clock.epoch() if now is None else now
    settings = settings or get_settings()
    asked = actor.scopes if actor is not None and not (request.scopes or "").strip() else request.scopes
    scopes, expires, cap = key_limits.for_new_key(actor, normalise_scopes(asked), request.expires_at,
                                                  request.monthly_cap_cents, now)
    made_by = key_budgets.lineage(actor)  # the keys whose caps bound it too
    # The rate bounds churn (create, revoke, create); the cap is exact (services/key_places.py).
    # A full account is refused first: a refusal takes none of the hourly allowance.
    key_places.refuse_when_full(user.user_id, settings.max_api_keys, now, lambda: ratelimit.enforce(
        "api-keys-full", user.user_id, settings.rate_keys_per_hour, 3600))
    ratelimit.enforce("api-keys", user.user_id, settings.rate_keys_per_hour, 3600)
    key, raw = _new_item(user.user_id, request, scopes, expires, cap,
                         f"key:{actor.key_id}" if actor else "session", now)
    key.made_by = made_by
    try:
        key_places.within_cap(user.user_id, settings.max_api_keys, now,
                              lambda: key_store.insert(key, settings.max_api_keys, parent=actor))
    except key_store.ParentRevoked:
        raise AuthFailed(REVOKED) from None
    except key_store.MadeTooMany:
        raise Conflict(f"This key has made {key_store.MAX_MADE_KEYS:,} keys, the most one key may make; create "
                       "further keys with another of the account's keys or a session") from None
    except key_store.AccountMerged:  # claimed since this request read it: sent again, it acts as the new owner
        raise Conflict("This key's account was claimed by a signed-in user meanwhile; send the request again") from None
    log.info("apikey.created", key_id=key.key_id, user_id=user.user_id, scopes=scopes)
    return CreatedKey(key, raw, user)


def signup(settings: Settings, client_ip: str, request: KeyRequest, now: Optional[float] = None) -> CreatedKey:
    """An agent signs up with no human step: a key-only account on the free tier and its key,
    written together. Rate-limited per client and in all; off unless the server allows it."""
    if not settings.agent_signup_enabled:
        raise AuthRequired("Agent self-signup is disabled on this server: sign in (`spikes login`) and create "
                           "keys with your session (POST /auth/api-key with Authorization: Bearer <token>)")
    now = clock.epoch() if now is None else now
    scopes = normalise_scopes(request.scopes)  # a refused request takes no allowance (finding 169)
    expires = key_limits.future_iso(request.expires_at, now)
    signup_limits.enforce(settings, client_ip)
    user = User(str(uuid.uuid4()), email=None, tier=quotas.FREE, created_at=_now_iso(now), active_shares=0)
    key, raw = _new_item(user.user_id, request, scopes, expires, request.monthly_cap_cents, "signup", now)
    key_store.insert_with_account(user, key)
    log.info("apikey.signup", key_id=key.key_id, user_id=user.user_id)
    return CreatedKey(key, raw, user)


# --- managing --------------------------------------------------------------------------------

def list_page(user: User, limit: int, cursor: Optional[str], secret: str) -> Tuple[List[ApiKey], Optional[str]]:
    """A page of the user's keys, newest first, and the next page's cursor (None at the end)."""
    return key_store.page(user.user_id, limit, cursor, secret)


def get_owned(user: User, key_id: str) -> ApiKey:
    """Someone else's key is "not found", like a key that does not exist (and so is an id of a
    shape we never issue: it is not looked up). Amid a claim, see services/ownership.py."""
    if not (key_id.startswith("key_") and _ID_PART.match(key_id[len("key_"):])):
        raise NotFound("API key not found")
    key = key_store.get(key_id)
    if key is None or not ownership.owns(user, key.user_id):
        raise NotFound("API key not found")
    return key


def revoke(user: User, key_id: str, now: Optional[float] = None) -> ApiKey:
    """Idempotent: revoking a revoked key keeps its first revocation time. The keys it
    created (and theirs) are revoked with it, also when it was revoked before."""
    now = clock.epoch() if now is None else now
    key, at = get_owned(user, key_id), _now_iso(now)
    for item in key_owners.revoke_with_made(key, at, now):
        log.info("apikey.revoked", key_id=item.key_id, user_id=item.user_id, via=key_id)
    return key


UNSET = key_store.UNSET


def update(user: User, key_id: str, name=UNSET, monthly_cap_cents=UNSET, expires_at=UNSET,
           actor: Optional[ApiKey] = None, now: Optional[float] = None) -> ApiKey:
    """Change name, cap or expiry (``None`` removes a cap or expiry). A key acting here may
    only tighten limits, never loosen them."""
    now = clock.epoch() if now is None else now
    for _ in range(2):  # moved by a claim since read (services/key_owners.py): read again, the second time
        try:
            return _update(user, key_id, name, monthly_cap_cents, expires_at, actor, now)
        except key_store.Changed:
            pass
    raise Conflict("This API key was revoked, moved or expired meanwhile")


def _update(user: User, key_id: str, name, monthly_cap_cents, expires_at, actor: Optional[ApiKey],
            now: float) -> ApiKey:
    key = get_owned(user, key_id)
    if key.revoked_at:
        raise Conflict("This API key was revoked; create a new one")
    if key.expires_at and key.expires_at <= _now_iso(now):  # its place may be freed (services/key_places.py)
        raise Conflict("This API key has expired; create a new one")
    changes = {}
    if name is not UNSET:
        changes["name"] = (name or "").strip() or None
    if monthly_cap_cents is not UNSET:
        changes["monthly_cap_cents"] = key_limits.new_cap(actor, key, monthly_cap_cents)
    if expires_at is not UNSET:
        changes["expires_at"] = key_limits.new_expiry(actor, key, expires_at, now)
    return key_store.change(key, key.user_id, _now_iso(now), **changes)  # its owner as read


# --- authenticating --------------------------------------------------------------------------

def authenticate(raw: str, settings: Settings, now: Optional[float] = None) -> Tuple[ApiKey, User]:
    """The key and its owner, or 401 AUTH_FAILED. Revocation and expiry apply to the very next
    request (a strongly consistent read)."""
    now = clock.epoch() if now is None else now
    key_id = key_id_of(raw)
    if key_id is None:
        raise AuthFailed(MALFORMED)
    key = key_store.get(key_id)
    if key is None:
        raise AuthFailed()
    if not constant_time_equals(token_hash(raw), key.key_hash):
        raise AuthFailed()
    if key.revoked_at:
        raise AuthFailed(REVOKED)
    if key.expires_at and key.expires_at <= _now_iso(now):
        raise AuthFailed(EXPIRED)
    user = account_store.get(key.user_id)
    if user is not None and user.merged_into:  # claimed while its keys are still moving: act as the new owner
        user = account_store.get(user.merged_into)
    if user is None:
        raise AuthFailed()
    _touch(key, settings.key_last_used_resolution_seconds, now)
    return key, user


def _touch(key: ApiKey, resolution_seconds: int, now: float) -> None:
    """Record use at most once per ``resolution_seconds`` per key, whatever the request rate:
    the write is conditional on the stored time being older, so concurrent requests race for
    one write and the rest skip it. A failure here never fails the request."""
    threshold = _now_iso(now - resolution_seconds)
    if key.last_used_at and key.last_used_at > threshold:
        return
    try:
        key_store.touch(key, _now_iso(now), unless_after=threshold)
    except key_store.TouchFailed as failed:
        log.warning("apikey.touch_failed", key_id=key.key_id, error=failed.code)
