"""Byte ranges (RFC 9110 §14) of the files the function serves itself, so that a browser can
seek in a video or resume a download; larger files go to presigned S3 links, where S3 answers
ranges. One range is answered (``206``); a multi-range or malformed ``Range`` is answered with
the whole file (``200``), which the RFC allows: a ``multipart/byteranges`` answer would need a
binary type of its own in the API, and the clients that need ranges (media elements, download
resumes) ask for one."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional, Union

from chalicelib.services import entity_tags

_RANGE = re.compile(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", re.IGNORECASE)


@dataclass(frozen=True)
class ByteRange:
    first: int
    last: int  # inclusive, as Content-Range writes it

    def content_range(self, length: int) -> str:
        return f"bytes {self.first}-{self.last}/{length}"


@dataclass(frozen=True)
class Unsatisfiable:
    """No byte of the range is in the file: ``416`` with ``Content-Range: bytes */<length>``."""

    @staticmethod
    def content_range(length: int) -> str:
        return f"bytes */{length}"


def requested(range_header: Optional[str], if_range: Optional[str], etag: str,
              length: int) -> Union[None, ByteRange, Unsatisfiable]:
    """The range to answer for a file of ``length`` bytes with ``etag``, or None for the whole file."""
    if not range_header or (if_range is not None and not entity_tags.strong_match(if_range, etag)):
        # If-Range: the client holds part of a file; if that file changed, it gets the new one
        # whole. A date cannot match: these answers carry no Last-Modified.
        return None
    specs = [spec for spec in range_header.split(",") if spec.strip()]
    matched = _RANGE.fullmatch(specs[0]) if len(specs) == 1 else None
    if matched is None or not any(matched.groups()):
        return None
    try:
        first, last = (int(group) if group else None for group in matched.groups())
    except ValueError:  # more digits than Python converts
        return None
    if first is None:  # bytes=-n: the last n bytes
        return ByteRange(max(length - last, 0), length - 1) if last and length else Unsatisfiable()
    if last is not None and last < first:
        return None  # invalid (RFC 9110 §14.1.1): ignored like any malformed range
    if first >= length:
        return Unsatisfiable()
    return ByteRange(first, length - 1 if last is None else min(last, length - 1))
