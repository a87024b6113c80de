"""Entity-tag comparisons (RFC 9110 §8.8.3, §13.1) for the answers the function serves itself.

``If-None-Match`` (revalidation: ``304``) takes the weak comparison, a list of tags, or ``*``;
``If-Range`` (byte ranges: ``206``) takes the strong one, a single tag."""
from __future__ import annotations

import re
from typing import List, Optional

# One list member: an entity tag, W/ optional. Its opaque part may hold commas (only DQUOTE is
# excluded), so the list is read tag by tag, not split on commas.
_MEMBER = re.compile(r'\s*(W/)?("[^"]*")\s*(?:,|$)')
_EMPTY_MEMBER = re.compile(r"\s*,")


def _listed(header: str) -> Optional[List[str]]:
    """The opaque tags of an entity-tag list, W/ dropped; None if the header is not one."""
    tags: List[str] = []
    position = 0
    while position < len(header):
        member = _MEMBER.match(header, position)
        if member is None:
            empty = _EMPTY_MEMBER.match(header, position)  # the #rule allows empty members
            if empty is None:
                return None if header[position:].strip() else tags
            position = empty.end()
            continue
        tags.append(member.group(2))
        position = member.end()
    return tags


def revalidates(if_none_match: Optional[str], etag: str) -> bool:
    """Whether ``If-None-Match`` names the current representation (tagged ``etag``), so that a
    GET or HEAD is answered ``304``: ``*``, or a listed tag equal to it by the weak comparison
    (W/ on either side ignored). A header that is no entity-tag list matches nothing: the
    client gets the whole answer."""
    if not if_none_match or not etag:
        return False
    if if_none_match.strip() == "*":
        return True
    opaque = etag[2:] if etag.startswith("W/") else etag
    return opaque in (_listed(if_none_match) or ())


def strong_match(if_range: str, etag: str) -> bool:
    """The strong comparison: both strong (no W/) and identical."""
    return bool(etag) and not etag.startswith("W/") and if_range.strip() == etag
