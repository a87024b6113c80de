"""Who is calling: a principal resolved from a bearer token or the admin token.

Every route states what it needs (a user, the admin, or a scope); API keys with scopes
(roadmap) resolve to the same ``Principal`` with a non-empty ``scopes`` set.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import FrozenSet, Optional

from chalicelib.errors import AuthFailed, AuthRequired, ScopeDenied
from chalicelib.services.secrets import constant_time_equals, token_hash
from chalicelib.store.models import AuthItem, User


@dataclass(frozen=True)
class Principal:
    kind: str  # "user" | "admin"
    user: Optional[User] = None
    token_hash: Optional[str] = None
    scopes: FrozenSet[str] = field(default_factory=frozenset)  # empty = full access

    @property
    def is_admin(self) -> bool:
        return self.kind == "admin"

    @property
    def user_id(self) -> Optional[str]:
        return self.user.user_id if self.user else None

    def require(self, scope: str) -> "Principal":
        if self.scopes and scope not in self.scopes:
            raise ScopeDenied(f"This credential lacks the '{scope}' scope")
        return self


def from_bearer(token: str) -> Principal:
    hashed = token_hash(token)
    try:
        item = AuthItem.get(f"bearer#{hashed}")
    except AuthItem.DoesNotExist:
        raise AuthFailed() from None
    try:
        user = User.get(item.user_id)
    except User.DoesNotExist:
        raise AuthFailed() from None
    return Principal(kind="user", user=user, token_hash=hashed)


def resolve(bearer: Optional[str], admin_param: Optional[str], admin_token: Optional[str]) -> Optional[Principal]:
    """Bearer wins; ``?token=`` is the admin token of the contract. A wrong credential is an
    error, not anonymity: callers must not silently fall back to public access."""
    if bearer:
        return from_bearer(bearer)
    if admin_param is not None:
        if constant_time_equals(admin_param, admin_token):
            return Principal(kind="admin")
        raise AuthFailed()
    return None


def require_user(principal: Optional[Principal], scope: str) -> Principal:
    if principal is None:
        raise AuthRequired()
    if principal.user is None:
        raise AuthFailed("This endpoint needs a user's bearer token")
    return principal.require(scope)
