"""How many key-only accounts self-signup makes (``POST /auth/api-key`` without credentials).

Per client network (``SPIKES_RATE_AGENT_SIGNUP_PER_HOUR``), and from everywhere together
(``SPIKES_RATE_AGENT_SIGNUPS_PER_HOUR``): each account holds the free tier's shares and spikes on
the operator's bill, and a client with many networks (an IPv6 /48 holds 65,536 /64s, a botnet
many addresses) took a fresh allowance on each (docs/security.md, 153).
"""
from __future__ import annotations

from chalicelib.services import ratelimit
from chalicelib.settings import Settings

TOTAL_SUBJECT = "all"


def enforce(settings: Settings, client_ip: str) -> None:
    """Count one signup; 429 RATE_LIMIT past either limit. The client's own limit is checked
    first, so a client it refuses takes none of everyone's. Everyone's budget is not reported in
    the caller's X-RateLimit-* headers (it tells how many others signed up) until it refuses."""
    ratelimit.enforce_per_client("agent-signup", client_ip, settings.rate_agent_signup_per_hour, 3600)
    ratelimit.enforce("agent-signups", TOTAL_SUBJECT, settings.rate_agent_signups_per_hour, 3600, reported=False)
