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


def _signed(secret: str, cursor: str) -> dict:
    body, _, signature = cursor.partition(".")
    if not body or not signature or not verify_signature(secret, body, signature):
        raise InvalidCursor()
    try:
        data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except ValueError:
        raise InvalidCursor() from None
    if not isinstance(data, dict) or not isinstance(data.get("s"), str) or not isinstance(data.get("k"), dict):
        raise InvalidCursor()
    return data


def scope_of(secret: str, cursor: str) -> Optional[str]:
    """The scope a cursor we signed is bound to; None for anything else (``decode`` refuses it)."""
    try:
        return _signed(secret, cursor)["s"]
    except InvalidCursor:
        return None


def rebound(secret: str, cursor: str, scope: str, new_scope: str, field: str, old: str, new: str) -> str:
    """``cursor`` of ``scope`` whose ``field`` is ``old``, bound to ``new_scope`` with ``field``
    ``new`` instead: the same place in a listing whose items moved there keeping their other
    keys (a claim). Any other cursor as it is (``decode`` refuses it)."""
    try:
        start = decode(secret, scope, cursor)
    except InvalidCursor:
        return cursor
    if start is None or start.get(field) != old:
        return cursor
    return encode(secret, new_scope, {**start, field: new})


def decode(secret: str, scope: str, cursor: Optional[str]) -> Optional[Dict[str, str]]:
    if not cursor:
        return None
    data = _signed(secret, cursor)
    if data["s"] != scope:
        raise InvalidCursor()
    key = data["k"]
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in key.items()):
        raise InvalidCursor()
    return key
