"""The one source of truth for physical resource names: the models, the local runner, the
test fixtures and (later) the CloudFormation template all derive names from here."""
from __future__ import annotations

from typing import Dict

from chalicelib.settings import Settings

# Logical table name -> short description (documented in docs/data-model.md).
TABLES: Dict[str, str] = {
    "users": "accounts, tier and Stripe subscription state",
    "auth": "magic-link tokens, bearer tokens, device codes, login poll pointers",
    "shares": "share records and slug claims",
    "spikes": "feedback items",
    "ledger": "quota counters, rate-limit windows, idempotency markers",
    "keys": "API keys (hashes only), listed by owner",
    "deliveries": "outbound webhook events (the outbox) and their delivery attempts",
    "outbox": "agent-tier usage events waiting to be reported to Stripe",
}


def table_name(settings: Settings, logical: str) -> str:
    if logical not in TABLES:
        raise KeyError(logical)
    return f"{settings.resource_prefix}{logical}"
