"""GET /shares: the owner's shares with their spike counts, newest first. One answer holds as
many as ``limit`` asks (the CLI, which never pages, asks none: as many as one answer carries),
read as consecutive pages of ``READ_SIZE`` shares, each counted in batch reads, and ends short
of the answer's weight or of the function's time with a cursor where it ended (docs/security.md
305): a Pro account has no share limit, and read whole, 20,000 shares outlasted the function and
outweighed the answer."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, List, Optional

from chalicelib import lambda_answer
from chalicelib.errors import InvalidCursor
from chalicelib.services import ratelimit
from chalicelib.store import spike_counters
from chalicelib.store import shares as share_store
from chalicelib.store.models import User

READ_SIZE = 250  # shares read, then counted (9 ledger keys each: 23 batch reads), at a time
LIMIT_NAME = "share-listings"
SHARES_PER_UNIT = 100  # a listing pays one unit of the account's limit per 100 shares, at least one


def count_listing(user_id: str, units_per_minute: int, cursor: Optional[str], secret: str) -> None:
    """Before a share is read: the listing's first unit, refused (429) past the account's limit
    (docs/security.md 309). ``charge_listed`` adds the rest once the listing's size is known.
    A cursor that is no share listing's we signed is refused first (400, no read): it costs no
    unit (340). A signed one of another account's listing is counted: whether a claim joined that
    account to the caller's is a read (services/claimed_cursors.carried_on)."""
    if cursor and not share_store.is_listing_cursor(secret, cursor):
        raise InvalidCursor()
    ratelimit.enforce(LIMIT_NAME, user_id, units_per_minute, 60)


def charge_listed(user_id: str, listed: int, units_per_minute: int) -> None:
    """After the read: one unit per 100 shares past the first 100. What a listing costs grows
    with what it reads, so an account of a few shares lists often (a `watch spikes shares`) and
    one of 10,000 rarely, instead of both 30 calls a minute (docs/security.md 338). Units the
    store fails to count (throttled) are logged, not a 503 that would hide the shares read (340)."""
    rest = -(-listed // SHARES_PER_UNIT) - 1
    if rest > 0:
        ratelimit.charge(LIMIT_NAME, user_id, rest, units_per_minute, 60)


@dataclass(frozen=True)
class Listed:
    items: List[dict]  # as ``shape`` made them
    items_json: str  # the items as one compact JSON array
    next_cursor: Optional[str]  # where the answer ended, None when nothing follows


def list_owned(user: User, limit: int, cursor: Optional[str], secret: str, shape: Callable[[Any, int], dict],
               max_bytes: int, keep_reading: Optional[Callable[[], bool]] = None) -> Listed:
    """Up to ``limit`` of the user's shares, newest first, after ``cursor``, without those whose
    deletion started: each ``shape(share, spike_count)`` (a share has store/shares.LISTED_FIELDS),
    the array weighing at most ``max_bytes`` in the answer (lambda_answer). ``keep_reading``
    (False: the request's time is running out) is asked before each read after the first."""
    items: List[dict] = []
    parts: List[str] = []
    used = 2  # the array's brackets
    last_listed: Any = None
    while len(items) < limit:
        if parts and keep_reading is not None and not keep_reading():
            break  # between two pages, as between two reads of one
        wanted = min(READ_SIZE, limit - len(items))
        shares, next_cursor = share_store.owned_page(user.user_id, wanted, cursor, secret, keep_reading)
        counts = spike_counters.share_spike_counts([share.share_id for share in shares]) if shares else {}
        for share in shares:
            item = shape(share, counts[share.share_id])
            text = json.dumps(item, separators=(",", ":"))
            weight = lambda_answer.weight(text) + (1 if parts else 0)
            if parts and used + weight > max_bytes:  # the first is always listed: no share weighs that much
                return Listed(items, f"[{','.join(parts)}]", share_store.cursor_at(last_listed, secret))
            items.append(item)
            last_listed = share
            parts.append(text)
            used += weight
        cursor = next_cursor
        if cursor is None or len(shares) < wanted:
            break  # the end, or the reads stopped short of time
    return Listed(items, f"[{','.join(parts)}]", cursor)
