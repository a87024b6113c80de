"""The listing the CLI's push reads: one bare JSON array of the newest spikes, no page of the
contract's envelope (docs/clients.md, "GET /spikes: array or envelope"), read as consecutive
pages of services/spikes.list_page."""
from __future__ import annotations

from typing import Callable, List, Optional

from chalicelib import lambda_answer
from chalicelib.services.spikes import Filters, Page, ReadLimit, Scope, hiding_deletions, list_page

READ_SIZE = 1000  # the largest page


def list_unpaged(scope: Scope, filters: Filters, limit: int, cursor: Optional[str], secret: str, max_bytes: int,
                 reviewer_emails: bool = True, read_size: Optional[int] = None,
                 keep_reading: Optional[Callable[[], bool]] = None, read_limit: Optional[ReadLimit] = None) -> Page:
    """Up to ``limit`` spikes, newest first, in one answer (the CLI's push never pages), whose
    items stop short of ``max_bytes``: read as consecutive pages of ``read_size``, so that no
    more than one page is held beyond what the answer carries. ``keep_reading`` (False: the
    request's time is running out) is asked before each read after the first, as a page asks it:
    the array then ends where the reads ended, as it does where ``read_limit`` cut a page (each
    page reads under it: a caller listing feedback not its own). ``next_cursor``: where the array
    ended, None when nothing follows (the push ignores it; ``?cursor=`` takes it, with the envelope too)."""
    filters, read_size = hiding_deletions(scope, filters), read_size or READ_SIZE  # deletions looked up once
    items: List[dict] = []
    parts: List[str] = []
    used = 2  # the array's brackets
    while len(items) < limit:
        if parts and keep_reading is not None and not keep_reading():
            break  # between two pages, as between two reads of one
        wanted, comma = min(read_size, limit - len(items)), 1 if parts else 0
        # The page is measured with brackets of its own, and joins the answer after a comma.
        page = list_page(scope, filters, wanted, cursor, secret, max_bytes=max_bytes - used + 2 - comma,
                         reviewer_emails=reviewer_emails, keep_reading=keep_reading, read_limit=read_limit)
        body = page.items_json[1:-1]
        weight = lambda_answer.weight(body) + comma
        if page.items and used + weight > max_bytes:
            break  # a page's first item (always listed) that does not fit: the array ends before it
        if page.items:
            items += page.items
            parts.append(body)
            used += weight
        cursor = page.next_cursor
        if cursor is None or len(page.items) < wanted:
            break  # the end, or the page ended early (at the weight left, short of time or of reads)
    return Page(items, cursor, f"[{','.join(parts)}]")
