"""How many sign-in mails (``POST /auth/login``, ``/auth/recover``, ``/auth/device/confirm``) go
out: per mailbox, whoever asks, and per client network.

The mailbox is the address as a mail server delivers it, not as typed: ``jane+1@example.com``
and ``jane+2@example.com`` (and, at Gmail, ``j.ane@gmail.com``) land in one inbox, so they
share one budget. Counted apart, each spelling took a fresh allowance and a client with a few
networks could fill anyone's inbox without end (docs/security.md, 180).
"""
from __future__ import annotations

from chalicelib.services import ratelimit
from chalicelib.services.addresses import mailbox
from chalicelib.settings import Settings

def enforce(settings: Settings, address: str, client_ip: str) -> None:
    """Count one sign-in mail; 429 RATE_LIMIT past either limit. The mailbox's budget is shared
    with everyone who asks for it, so how much is left is not reported to the caller (122)."""
    ratelimit.enforce("login-address", mailbox(address), settings.rate_login_per_address,
                      settings.rate_login_window_seconds, reported=False)
    ratelimit.enforce_per_client("login-ip", client_ip, settings.rate_login_per_ip, settings.rate_login_window_seconds)
