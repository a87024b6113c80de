"""Sliding-window rate limits kept in DynamoDB, so every Lambda instance shares them.

The window is approximated the usual way (Cloudflare-style): the current fixed window's
count plus the previous window's count weighted by how much of it still overlaps the
sliding window. One atomic UpdateItem counts the hit and returns both windows' counts
(store/ledger.hit_rate_window); items expire through the table TTL.
"""
from __future__ import annotations

import contextvars
import ipaddress
import math
from dataclasses import dataclass
from typing import Optional, Tuple

from chalicelib import clock
from chalicelib.crypto import subject_hash
from chalicelib.limit_errors import RateLimited
from chalicelib.logs import get_logger
from chalicelib.store import ledger

log = get_logger("spikes.ratelimit")

# The tightest decision taken while serving the current request: the HTTP layer reports it
# in X-RateLimit-* headers, whichever service enforced the limit.
_tightest: contextvars.ContextVar[Optional["Decision"]] = contextvars.ContextVar("spikes_rate_limit", default=None)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_at: int  # epoch seconds when the current window ends; with none left, when one is let through
    retry_after: int

    def headers(self) -> dict:
        return {"X-RateLimit-Limit": str(self.limit), "X-RateLimit-Remaining": str(self.remaining),
                "X-RateLimit-Reset": str(self.reset_at)}


def client_network(client_ip: str) -> str:
    """The network a per-address limit counts for a client (``enforce_per_client`` applies it). An IPv6 address stands for its /64:
    a client given one address has the whole /64 (2^64 addresses it may send from), so counting
    each address apart would let it take a fresh allowance with every request. An IPv4 address,
    mapped into IPv6 or not, is its own subject."""
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return client_ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def check(name: str, subject: str, limit: int, window_seconds: int, now: Optional[float] = None,
          hits: int = 1) -> Decision:
    """Count one hit (or ``hits``) for ``subject`` under limit ``name`` and decide. Denied hits
    count too, so a client hammering past the limit stays limited."""
    now = clock.epoch() if now is None else now
    current, previous = ledger.hit_rate_window(name, subject, *_window(now, window_seconds), hits)
    return _decision(current, previous, limit, window_seconds, now)


def _window(now: float, window_seconds: int) -> Tuple[int, int]:
    """The window ``now`` is in, and when its item may expire (the next window still weighs it)."""
    window_index = int(now // window_seconds)
    return window_index, window_index * window_seconds + 2 * window_seconds + 60


def would_refuse(name: str, subject: str, limit: int, window_seconds: int, now: Optional[float] = None) -> bool:
    """Whether one more hit for ``subject`` would be refused now; a read, no hit counted."""
    now = clock.epoch() if now is None else now
    current, previous = ledger.rate_window(name, subject, int(now // window_seconds))
    return not _decision(current + 1, previous, limit, window_seconds, now).allowed


def _decision(current: int, previous: int, limit: int, window_seconds: int, now: float) -> Decision:
    """The decision on a hit counted in ``current`` (the window's hits, that one included)."""
    window_start = int(now // window_seconds) * window_seconds
    elapsed = now - window_start
    overlap = (window_seconds - elapsed) / window_seconds
    estimate = previous * overlap + current
    window_end = int(window_start + window_seconds)
    remaining = max(0, int(limit - estimate))
    if estimate <= limit and remaining:
        return Decision(True, limit, remaining, window_end, 0)
    # Nothing left: X-RateLimit-Reset says when the next request is let through, as Retry-After
    # does. The window's end is too early while the previous window still weighs (a sliding
    # window): a client waiting for it was refused again, and that refusal counted too.
    retry_after = max(1, math.ceil(_first_allowed_retry(current, previous, limit, window_seconds, window_start) - now))
    reset_at = max(window_end, math.ceil(now) + retry_after)
    if estimate <= limit:
        return Decision(True, limit, 0, reset_at, 0)
    return Decision(False, limit, 0, reset_at, retry_after)


def _first_allowed_retry(current: int, previous: int, limit: int, window_seconds: int, window_start: float) -> float:
    """When one more hit would be allowed, if nothing else is sent meanwhile. That retry is a
    hit too, and the refused ones stay counted: told any sooner, a client that obeys
    Retry-After is refused again (and pushed further back by that refusal)."""
    # Still in this window: previous * (1 - t/W) + current + 1 <= limit.
    if previous and current + 1 <= limit:
        return window_start + window_seconds * (1 - (limit - current - 1) / previous)
    # In the next one, this window weighs as `previous` did: current * (1 - t/W) + 1 <= limit.
    next_start = window_start + window_seconds
    return next_start + window_seconds * max(0.0, 1 - (limit - 1) / current)


def begin_request() -> None:
    _tightest.set(None)


def tightest() -> Optional[Decision]:
    """The decision with the fewest requests left among those enforced in this request."""
    return _tightest.get()


def enforce(name: str, subject: str, limit: int, window_seconds: int, reported: bool = True,
            refusal: Optional[str] = None) -> Decision:
    """Count a hit and refuse past ``limit`` (with ``refusal`` as the 429's message, when given).
    ``reported=False``: a budget the caller shares with everyone (an e-mail address's) is left
    out of the X-RateLimit-* headers, which would tell the caller how much others used of it,
    until it refuses (the 429 describes what refused)."""
    decision = check(name, subject, limit, window_seconds)
    _report(decision, reported)
    if not decision.allowed:
        raise RateLimited(decision.retry_after, decision.limit, decision.reset_at, refusal)
    return decision


def charge(name: str, subject: str, hits: int, limit: int, window_seconds: int) -> Optional[Decision]:
    """Count ``hits`` more for work a request has done, once its size is known (the shares a
    listing read): never refused, it is done; they weigh on the requests that follow, which
    ``enforce`` refuses while they do. None when the store failed to count them (throttled):
    logged (the limit, the units, the subject hashed as the ledger keys it), and the request answered all the same, since a 503 would have its caller do the
    work again in full (docs/security.md 340)."""
    now = clock.epoch()
    counted = ledger.hit_rate_window_unless_failing(name, subject, *_window(now, window_seconds), hits)
    if counted is None:
        # The subject as the ledger's key holds it (rl#<limit>#<hash>): that counter is found,
        # and no client address reaches the logs, whatever the limit counts (crypto.subject_hash).
        log.warning("rate_limit.charge_lost", limit=name, hits=hits, subject=subject_hash(subject))
        return None
    decision = _decision(*counted, limit, window_seconds, now)
    _report(decision, True)
    return decision


def _report(decision: Decision, reported: bool) -> None:
    current = _tightest.get()
    tighter = current is None or (decision.remaining, -decision.reset_at) < (current.remaining, -current.reset_at)
    if tighter and (reported or not decision.allowed):
        _tightest.set(decision)


def enforce_per_client(name: str, client_ip: str, limit: int, window_seconds: int, within: str = "") -> Decision:
    """The one way to limit per client address: the address as the HTTP layer reported it,
    counted as its network (``client_network``: an IPv6 client's /64), optionally ``within`` a
    narrower scope such as a share's slug. A limit passing an address to ``enforce`` itself
    would let an IPv6 client take a fresh allowance per address (docs/security.md, finding 49)."""
    return enforce(name, per_client(client_ip, within), limit, window_seconds)


def per_client(client_ip: str, within: str = "") -> str:
    """The subject ``enforce_per_client`` counts ``client_ip`` as."""
    network = client_network(client_ip)
    return f"{within}|{network}" if within else network
