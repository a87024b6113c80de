"""What a request's Accept header takes (RFC 9110 §12.5.1): the media ranges it names, less
those it refuses with a weight of 0 (``image/png;q=0``)."""
from __future__ import annotations

from typing import FrozenSet


def accepted(accept: str) -> FrozenSet[str]:
    """The media ranges ``accept`` names with a weight above 0, lowercase, parameters dropped."""
    taken = set()
    for element in (accept or "").split(","):
        media_range, *parameters = (part.strip().lower() for part in element.split(";"))
        if media_range and not any(_refuses(parameter) for parameter in parameters):
            taken.add(media_range)
    return frozenset(taken)


def _refuses(parameter: str) -> bool:
    name, _, value = parameter.partition("=")
    if name.strip() != "q":
        return False
    try:
        return float(value) == 0
    except ValueError:  # an unreadable weight is left as the client's default, 1
        return False
