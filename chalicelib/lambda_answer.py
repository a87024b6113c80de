"""What a body weighs in a Lambda answer, whose limit (6 MB) counts the proxy answer as the
runtime writes it: JSON, in which the body is one string. The Python 3.11 runtime escapes every
non-ASCII character there (``\\uXXXX``: 6 bytes for a letter that takes 2 or 3 in UTF-8, 12 for
one outside the BMP), and quotes, backslashes and line breaks take two bytes each. So a body
measured in UTF-8 can weigh three times that in the answer (more than the limit: the function
fails and API Gateway answers 502); whatever is held to the limit is measured here. (From the
python3.12 runtime on, non-ASCII goes unescaped: this then errs on the safe side.)"""
from __future__ import annotations

import json
from typing import Optional

# What a body may weigh: Lambda's 6 MB, less room for the status line, headers and envelope.
MAX_BODY_WEIGHT = 5 * 1024 * 1024
# No character weighs more than this in the answer (one outside the BMP, escaped as a pair).
_MAX_CHAR_WEIGHT = 12


def weight(body: str) -> int:
    """Bytes ``body`` takes in the answer as the runtime writes it."""
    return len(json.dumps(body)) - 2  # less the quotes around the string, counted in the room


def too_heavy(body: str, limit: Optional[int] = None) -> bool:
    """Whether ``body`` weighs more than ``limit`` (``MAX_BODY_WEIGHT``) in the answer; measured
    only when it could."""
    limit = MAX_BODY_WEIGHT if limit is None else limit
    return len(body) * _MAX_CHAR_WEIGHT > limit and weight(body) > limit
