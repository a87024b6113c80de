"""Test data written straight to the store (for tests that are not about creating it)."""
from __future__ import annotations

import secrets
import string
from datetime import datetime, timezone
from typing import Optional

from chalicelib.services.accounts import user_id_for
from chalicelib.store.models import Share, User


def make_user(email: str, tier: str = "free") -> User:
    user = User(user_id_for(email), email=email, tier=tier, created_at="2026-01-01T00:00:00Z", active_shares=0)
    user.save()
    return user


def make_share(owner_email: str, slug: str, tier: Optional[str] = None, **fields) -> Share:
    """A share owned by ``owner_email`` (the user is created if missing)."""
    owner_id = user_id_for(owner_email)
    if tier is not None or not _exists(owner_id):
        make_user(owner_email, tier or "free")
    share_id = "sh_" + "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(12))
    created = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    share = Share(f"share#{share_id}", share_id=share_id, slug=slug, owner_id=owner_id, name=slug,
                  created_at=created, status="active", **fields)
    share.save()
    Share(f"slug#{slug}", share_id=share_id).save()
    return share


def _exists(user_id: str) -> bool:
    try:
        User.get(user_id)
        return True
    except User.DoesNotExist:
        return False
