"""Shares: lookup by id or slug (used by spikes, serving and billing)."""
from __future__ import annotations

import re
from typing import Optional

from chalicelib.store.models import Share

SHARE_ID_PATTERN = re.compile(r"^sh_[a-z0-9]{12}$")


def share_pk(share_id: str) -> str:
    return f"share#{share_id}"


def slug_pk(slug: str) -> str:
    return f"slug#{slug}"


def get_by_id(share_id: str) -> Optional[Share]:
    try:
        return Share.get(share_pk(share_id))
    except Share.DoesNotExist:
        return None


def resolve(key: str) -> Optional[Share]:
    """The share a project key / path segment names: its id (``sh_...``) or its slug."""
    if not key:
        return None
    if SHARE_ID_PATTERN.match(key):
        return get_by_id(key)
    try:
        claim = Share.get(slug_pk(key.lower()))
    except Share.DoesNotExist:
        return None
    return get_by_id(claim.share_id)


def strip_pro_features(owner_id: str) -> int:
    """On downgrade: remove passwords and webhook URLs from the owner's shares, deleting
    nothing. Returns how many shares changed. Idempotent."""
    changed = 0
    for share in Share.owner_index.query(owner_id):
        if share.password_hash is None and share.webhook_url is None:
            continue
        share.update(actions=[Share.password_hash.remove(), Share.webhook_url.remove(),
                              Share.password_version.add(1)])
        changed += 1
    return changed
