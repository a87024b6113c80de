"""Who is calling: a principal resolved from a bearer token, an API key or the admin token.

Every route states what it needs (a user, the admin, or a scope). A user's session holds
every scope; an API key (``sk_spikes_…``, as ``Authorization: Bearer`` or ``X-API-Key``)
resolves to its owner with the key's scopes, and never holds the session-only ones.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import FrozenSet, Optional

from chalicelib.errors import AuthFailed, AuthRequired, ScopeDenied
from chalicelib.crypto import constant_time_equals
from chalicelib.services import apikeys, sessions
from chalicelib.services import scopes as key_scopes
from chalicelib.settings import Settings, get_settings
from chalicelib.store.models import ApiKey, User


@dataclass(frozen=True)
class Principal:
    kind: str  # "user" | "key" | "admin"
    user: Optional[User] = None
    token_hash: Optional[str] = None
    scopes: FrozenSet[str] = field(default_factory=frozenset)  # empty = full access (sessions, admin)
    key: Optional[ApiKey] = None

    @property
    def is_admin(self) -> bool:
        return self.kind == "admin"

    @property
    def is_key(self) -> bool:
        return self.kind == "key"

    @property
    def user_id(self) -> Optional[str]:
        return self.user.user_id if self.user else None

    @property
    def claimed_from(self) -> Optional[str]:
        """The key-only account a key was made for, when a signed-in user claimed it: the key
        acts as that user (moved to them, or still moving)."""
        if self.key is None:
            return None
        return self.key.claimed_from or (self.key.user_id if self.key.user_id != self.user_id else None)

    def allows(self, scope: str) -> bool:
        """Whether this credential holds ``scope`` (sessions and the admin hold every one)."""
        return not (self.is_key or self.scopes) or scope in self.scopes

    def require(self, scope: str) -> "Principal":
        if not self.allows(scope):
            if scope in key_scopes.SESSION_SCOPES:
                key_only = self.user is not None and self.user.email is None
                raise ScopeDenied(scope, key_scopes.KEY_ONLY_MESSAGE if key_only else key_scopes.SESSION_ONLY_MESSAGE)
            raise ScopeDenied(scope, f"This API key lacks the '{scope}' scope (it has: {self.key.scopes})"
                              if self.key else None)
        return self


def from_bearer(token: str, settings: Optional[Settings] = None) -> Principal:
    user, hashed = sessions.authenticate(token, settings or get_settings())
    return Principal(kind="user", user=user, token_hash=hashed)


def from_api_key(raw: str, settings: Settings) -> Principal:
    key, user = apikeys.authenticate(raw, settings)
    return Principal(kind="key", user=user, scopes=key_scopes.expand(key.scopes), key=key)


def _from_credential(credential: str, settings: Optional[Settings]) -> Principal:
    if apikeys.looks_like_key(credential):
        return from_api_key(credential, settings)
    return from_bearer(credential, settings)


def resolve(bearer: Optional[str], token_param: Optional[str], admin_token: Optional[str],
            api_key: Optional[str] = None, settings: Optional[Settings] = None,
            any_credential_in_param: bool = False) -> Optional[Principal]:
    """Bearer wins (a session token, an API key, or the admin token: the upstream CLI sends
    ``[remote].token`` that way), then ``X-API-Key``; ``?token=`` is the admin token of the
    contract. On the routes that pass ``any_credential_in_param`` (``/spikes``, where the
    CLI's push sends its token in the query) ``?token=`` may carry any credential. A wrong
    credential is an error, not anonymity: callers must not silently fall back to public
    access."""
    if bearer:
        if constant_time_equals(bearer, admin_token):
            return Principal(kind="admin")
        return _from_credential(bearer, settings)
    if api_key:
        return from_api_key(api_key, settings)
    if token_param is not None:
        if constant_time_equals(token_param, admin_token):
            return Principal(kind="admin")
        if any_credential_in_param and token_param:
            return _from_credential(token_param, settings)
        raise AuthFailed()
    return None


def require_user(principal: Optional[Principal], scope: str) -> Principal:
    if principal is None:
        raise AuthRequired()
    if principal.user is None:
        raise AuthFailed("This endpoint needs a user's bearer token or API key")
    return principal.require(scope)
