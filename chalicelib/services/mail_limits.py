"""How many sign-in mails (``POST /auth/login``, ``/auth/recover``, ``/auth/device/confirm``) go
out: per mailbox, whoever asks, per client network, and from everywhere together.

The mailbox is the address as a mail server delivers it, not as typed: ``jane+1@example.com``
and ``jane+2@example.com`` (and, at Gmail, ``j.ane@gmail.com``) land in one inbox, so they
share one budget. Counted apart, each spelling took a fresh allowance and a client with a few
networks could fill anyone's inbox without end (docs/security.md, 180). Everyone's budget
(``SPIKES_RATE_SIGN_IN_MAILS_PER_HOUR``) bounds what many networks together make SES send: its
cost, and the bounces and complaints that get an account's sending suspended (242).
"""
from __future__ import annotations

from chalicelib.limit_errors import RateLimited
from chalicelib.logs import get_logger
from chalicelib.services import ratelimit
from chalicelib.services.addresses import mailbox
from chalicelib.settings import Settings

log = get_logger("spikes.mail_limits")

TOTAL_SUBJECT = "all"
BUDGET_SPENT = "This server has sent as many sign-in mails as it may this hour; try again later"


def enforce_callers(settings: Settings, address: str, client_ip: str) -> None:
    """The mailbox's and the client's own limits, counted for every request, a mail sent or
    not (a device code's lookup: they bound guessing codes). The mailbox's budget is shared
    with everyone who asks for it, so how much is left is not reported to the caller (122)."""
    ratelimit.enforce("login-address", mailbox(address), settings.rate_login_per_address,
                      settings.rate_login_window_seconds, reported=False)
    ratelimit.enforce_per_client("login-ip", client_ip, settings.rate_login_per_ip, settings.rate_login_window_seconds)


def enforce_total(settings: Settings) -> None:
    """Everyone's budget, counted last and only for a mail about to be sent: a request the
    caller's own limits refuse, or one naming an unknown device code, takes none of it (242).
    Not reported to the caller either: it would tell how many others signed in."""
    try:
        ratelimit.enforce("sign-in-mails", TOTAL_SUBJECT, settings.rate_sign_in_mails_per_hour, 3600,
                          reported=False, refusal=BUDGET_SPENT)
    except RateLimited:
        log.warning("mail.budget_spent", per_hour=settings.rate_sign_in_mails_per_hour)
        raise
