"""Domain errors of a limit reached: each a 429 with a code of its own, so a client can tell
a rate from a plan's limit, a key's or an export's places, or a spending cap. Mapped to the
contract's envelope as every ``SpikesError`` is (``chalicelib.api.routing``)."""
from __future__ import annotations

from typing import Optional

from chalicelib.errors import SpikesError


class RateLimited(SpikesError):
    status = 429
    code = "RATE_LIMIT"
    message = "Rate limit exceeded"

    def __init__(self, retry_after: int, limit: int = 0, reset_at: int = 0, message: Optional[str] = None):
        retry_after = max(1, int(retry_after))
        headers = {"Retry-After": str(retry_after)}
        if limit:
            headers.update({"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": "0",
                            "X-RateLimit-Reset": str(reset_at)})
        super().__init__(message, extra={"retry_after": retry_after}, headers=headers)


# A plan's limits: each answers its own code (no base of theirs names one it never answers).
class SpikeLimit(SpikesError):
    """A share's feedback this period is at its owner's plan's limit."""
    status = 429
    code = "SPIKE_LIMIT"

    def __init__(self, message: str, upgrade_url: str, limit: int):
        super().__init__(message, extra={"upgrade_url": upgrade_url, "limit": limit})


class ShareLimit(SpikesError):
    """An account holds as many active shares as its plan allows."""
    status = 429
    code = "SHARE_LIMIT"

    def __init__(self, message: str, upgrade_url: str, limit: int):
        super().__init__(message, extra={"upgrade_url": upgrade_url, "limit": limit})


class KeyLimit(SpikesError):
    """An account holds as many live API keys as it may (``SPIKES_MAX_API_KEYS``)."""
    status = 429
    code = "KEY_LIMIT"

    def __init__(self, limit: int):
        super().__init__(f"This account has {limit} live API keys, the most it may hold; revoke one it no longer "
                         "needs (DELETE /auth/api-key/{key_id}) and create the new key again",
                         extra={"limit": limit})


class ExportLimit(SpikesError):
    """The requester has as many background exports running as it may (``SPIKES_MAX_RUNNING_EXPORTS``)."""
    status = 429
    code = "EXPORT_LIMIT"
    RETRY_AFTER_SECONDS = 60  # the exports job runs every minute: one may be done by then

    def __init__(self, limit: int):
        super().__init__(f"{limit} exports of yours are running, the most at once; wait until one is done "
                         "(GET /exports/{id}) and start this one again",
                         extra={"limit": limit, "retry_after": self.RETRY_AFTER_SECONDS},
                         headers={"Retry-After": str(self.RETRY_AFTER_SECONDS)})


class BudgetExceeded(SpikesError):
    """An agent-tier account or key would pass its monthly spending cap (the CLI shows
    "monthly spending cap reached")."""
    status = 429
    code = "BUDGET_EXCEEDED"

    def __init__(self, which: str, cap_cents: int, period_ends: str):
        subject = "This API key" if which == "key" else "This account"
        super().__init__(f"{subject} reached its monthly spending cap of {cap_cents} cents; raise the cap or "
                         f"wait for the next period ({period_ends})",
                         extra={"cap": which, "monthly_cap_cents": cap_cents, "period_ends": period_ends})
        self.which, self.period_ends = which, period_ends


class BudgetExceededForOthers(BudgetExceeded):
    """The same refusal told to someone who is not the account's owner (a reviewer posting
    feedback): the cap an owner set is theirs to read, not the public's (docs/security.md, 155)."""

    def __init__(self, which: str, period_ends: str):
        SpikesError.__init__(self, "This feedback cannot be stored now: the owner of this page reached a monthly "
                                   f"spending limit. Try again after {period_ends}, or tell them",
                             extra={"cap": which, "period_ends": period_ends})
        self.which, self.period_ends = which, period_ends
