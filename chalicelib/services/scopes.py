"""API key scopes: the words a key's ``scopes`` string may hold and what each grants.

One space-separated string, as in OAuth: the clients' words ``read``, ``write``, ``full`` and
finer ``resource:action`` scopes. ``full`` (or nothing) means every key scope. Some things no
key can do (``SESSION_SCOPES``): paying, account settings and sessions need the account
owner's signed-in session.
"""
from __future__ import annotations

from typing import Dict, FrozenSet, Optional

from chalicelib.errors import ValidationFailed

FINE_SCOPES = ("spikes:read", "spikes:write", "shares:read", "shares:write", "usage:read", "keys:manage")
READ = frozenset({"spikes:read", "shares:read", "usage:read"})
WRITE = READ | {"spikes:write", "shares:write"}
FULL = frozenset(FINE_SCOPES)
ALIASES: Dict[str, FrozenSet[str]] = {"read": READ, "write": WRITE, "full": FULL}
# Scopes only a signed-in user holds: billing, account settings, sessions, loosening key limits.
SESSION_SCOPES = frozenset({"billing:write", "account:write", "auth:write"})
SESSION_ONLY_MESSAGE = ("API keys cannot do this: it needs the account owner's signed-in session "
                        "(`spikes login`, then use that token)")
# A key-only account (an agent's self-signup) has no owner who could sign in: the way on is a claim.
KEY_ONLY_MESSAGE = ("API keys cannot do this, and this key-only account has nobody who signs in: a person signs in "
                    "(POST /auth/login), claims the account with this key (POST /auth/link-key, docs/agents.md) "
                    "and does it with that session")


def normalise_scopes(raw: Optional[str]) -> str:
    """The stored scope string: known words, each once, in the caller's order; "full" when
    empty or when it contains "full"."""
    words = (raw or "").replace(",", " ").split()
    unknown = [w for w in words if w not in ALIASES and w not in FULL]
    if unknown:
        raise ValidationFailed.field(
            "scopes", f"Unknown scope {', '.join(repr(w) for w in unknown)}; use read, write, full or "
                      f"{', '.join(FINE_SCOPES)}, separated by spaces")
    if not words or "full" in words:
        return "full"
    return " ".join(dict.fromkeys(words))


def expand(scopes: str) -> FrozenSet[str]:
    granted = set()
    for word in (scopes or "full").split():
        granted |= ALIASES.get(word, {word})
    return frozenset(granted & FULL)
