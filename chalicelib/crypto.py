"""Random secrets and their stored form. Tokens are only ever stored as SHA-256 hashes
(they are high-entropy, so a fast hash is enough); passwords use argon2 (slow, salted)."""
from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
from typing import Optional



@functools.lru_cache(maxsize=1)
def _passwords():
    """argon2 loads on the first password (share passwords only), not on every cold start."""
    from argon2 import PasswordHasher
    return PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


def new_token(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)


def _bytes(text: str) -> bytes:
    """UTF-8 that never raises: a caller's text may hold lone surrogates (``%ED%A0%80``)."""
    return text.encode("utf-8", "surrogatepass")


def token_hash(token: str) -> str:
    return hashlib.sha256(_bytes(token)).hexdigest()


def subject_hash(*parts: str) -> str:
    """A short stable hash of identifiers (IP, e-mail) for keys and logs: no raw PII stored."""
    return hashlib.sha256(_bytes("\x1f".join(parts))).hexdigest()[:32]


def constant_time_equals(a: Optional[str], b: Optional[str]) -> bool:
    # Bytes, not str: compare_digest raises TypeError for non-ASCII strings.
    if not a or not b:
        return False
    return hmac.compare_digest(_bytes(a), _bytes(b))


def hash_password(password: str) -> str:
    return _passwords().hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    from argon2.exceptions import InvalidHashError, VerificationError
    try:
        return _passwords().verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def sign(secret: str, message: str) -> str:
    digest = hmac.new(_bytes(secret), _bytes(message), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:18]).decode("ascii")


def verify_signature(secret: str, message: str, signature: str) -> bool:
    # Bytes, not str: compare_digest raises TypeError when a forged signature is not ASCII.
    return hmac.compare_digest(sign(secret, message).encode("ascii"), _bytes(signature))
