"""What `make dev` prints for each request: the request line with its secrets masked.

Stock chalice local prints the request line as sent, so the terminal (and any file it is piped
to) kept sign-in tokens (`/auth/verify?token=`), the CLI push's `?token=`, device and poll codes,
share passwords (`?pw=`) and share access paths (`/~u.<token>/`). Query values are shown only
for parameters that carry no secret; a new parameter is masked until it is added here.
"""
from __future__ import annotations

from urllib.parse import unquote

# Query parameters whose values say what was asked for and unlock nothing.
SHOWN_PARAMETERS = frozenset({"project", "cursor", "page", "limit", "rating", "resolved", "reviewer",
                              "format"})
MASK = "***"


def _masked_path(path: str) -> str:
    from chalicelib.services.share_links import ACCESS_PREFIX
    return "/".join(ACCESS_PREFIX + MASK if unquote(segment).lower().startswith(ACCESS_PREFIX) else segment
                    for segment in path.split("/"))


def _masked_query(query: str) -> str:
    pairs = []
    for pair in query.split("&"):
        name, has_value, _ = pair.partition("=")
        shown = unquote(name.replace("+", " ")).strip().lower() in SHOWN_PARAMETERS
        pairs.append(pair if shown or not has_value else f"{name}={MASK}")
    return "&".join(pairs)


def masked_request_line(request_line: str) -> str:
    """``GET /auth/verify?token=abc HTTP/1.1`` → ``GET /auth/verify?token=*** HTTP/1.1``."""
    parts = request_line.split(" ")
    if len(parts) < 2:
        return request_line
    path, has_query, query = parts[1].partition("?")
    parts[1] = _masked_path(path) + (f"?{_masked_query(query)}" if has_query else "")
    return " ".join(parts)
