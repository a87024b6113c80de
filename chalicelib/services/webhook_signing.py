"""Signing outbound webhook deliveries: a share's signing secrets, derived and never stored, and
the ``X-Spikes-Signature`` header (docs/webhooks.md, "Verifying a delivery")."""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets as _secrets
from typing import List, Optional

from chalicelib.settings import Settings
from chalicelib.store.models import Delivery, Share


def new_nonce() -> str:
    return _secrets.token_urlsafe(18)


def signing_secret(settings: Settings, share_id: str, nonce: str) -> str:
    digest = hmac.new(settings.secret_key.get_secret_value().encode("utf-8"),
                      f"outbound-webhook\x1f{share_id}\x1f{nonce}".encode("utf-8"), hashlib.sha256).digest()
    return "whsec_" + base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def signature_header(secrets_in_force: List[str], body: str, timestamp: int) -> str:
    signed = f"{timestamp}.{body}".encode("utf-8")
    parts = [f"t={timestamp}"] + [
        "v1=" + hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest() for secret in secrets_in_force]
    return ",".join(parts)


def secrets_for(settings: Settings, share: Optional[Share], delivery: Delivery, now: float) -> List[str]:
    """The current secret, plus the previous one while its grace period lasts. A deleted
    share's last event is signed with the secret it had."""
    if share is None or not share.webhook_secret_nonce:
        return [signing_secret(settings, delivery.share_id, delivery.secret_nonce)]
    found = [signing_secret(settings, share.share_id, share.webhook_secret_nonce)]
    if share.webhook_previous_nonce and (share.webhook_previous_until or 0) > now:
        found.append(signing_secret(settings, share.share_id, share.webhook_previous_nonce))
    return found
