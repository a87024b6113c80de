"""Opaque, signed pagination cursors.

A cursor is the key of the last item a page returned, bound to the index and partition it
was issued for and signed, so a tampered or transplanted cursor is a 400, never a query
that starts somewhere it should not.
"""
from __future__ import annotations

import base64
import json
from typing import Dict, Optional

from chalicelib.errors import InvalidCursor
from chalicelib.crypto import sign, verify_signature


def encode(secret: str, scope: str, key: Dict[str, str]) -> str:
    payload = base64.urlsafe_b64encode(json.dumps({"s": scope, "k": key}, separators=(",", ":")).encode())
    body = payload.decode("ascii").rstrip("=")
    return f"{body}.{sign(secret, body)}"


def decode(secret: str, scope: str, cursor: Optional[str]) -> Optional[Dict[str, str]]:
    if not cursor:
        return None
    body, _, signature = cursor.partition(".")
    if not body or not signature or not verify_signature(secret, body, signature):
        raise InvalidCursor()
    try:
        data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except ValueError:
        raise InvalidCursor() from None
    if not isinstance(data, dict) or data.get("s") != scope or not isinstance(data.get("k"), dict):
        raise InvalidCursor()
    key = data["k"]
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in key.items()):
        raise InvalidCursor()
    return key
