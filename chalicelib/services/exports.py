"""Spike exports: CSV for spreadsheets, JSON lines for scripts. Up to a few megabytes the
route answers with the file itself; beyond that (a Lambda response is capped at 6 MB) the
file is staged in S3, written as it is read, and the caller is sent to a short-lived download
link."""
from __future__ import annotations

import collections
import csv
import io
import itertools
import json
import unicodedata
from dataclasses import dataclass
from typing import Callable, Deque, Iterable, Iterator, Optional, Tuple

from chalicelib import clock, lambda_answer
from chalicelib.errors import ExportReadLimit, ExportTooSlow
from chalicelib.services import spikes
from chalicelib.services.identity import Principal
from chalicelib.settings import API_TIMEOUT_SECONDS
from chalicelib.store.files import Exports
from chalicelib.store.rows import ReadsSpent

FORMATS = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson; charset=utf-8"}
MAX_INLINE_BYTES = lambda_answer.MAX_BODY_WEIGHT
# What an export leaves of the function's time: one more read and part, aborting, answering.
FINISHING_MS = 3000

CSV_COLUMNS = ["id", "type", "projectKey", "page", "url", "rating", "comments", "reviewer_id", "reviewer_name",
               "reviewer_email", "selector", "xpath", "elementText", "bbox_x", "bbox_y", "bbox_width", "bbox_height",
               "viewport_width", "viewport_height", "timestamp", "resolved", "resolvedAt"]
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
# What a spreadsheet may skip before a formula's sign: spaces, line breaks, and their Unicode kin.
SKIPPED_BEFORE_FORMULA = " \t\r\n\u00a0\u3000"


@dataclass(frozen=True)
class Export:
    filename: str
    content_type: str
    text: Optional[str]  # the file, when small enough to answer with
    download_url: Optional[str] = None  # else where it was staged


def _cell(value) -> str:
    """Spreadsheets run cells starting with = + - @ as formulas: make them plain text. Some also
    take the sign after leading spaces, or in its full-width form (``＝``, typed with an East
    Asian input method), so a cell is judged by its first visible character, compatibility-folded."""
    if value is None:
        return ""
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return "'" + text if _reads_as_formula(text) else text


def _reads_as_formula(text: str) -> bool:
    if text.startswith(FORMULA_PREFIXES):
        return True
    visible = text.lstrip(SKIPPED_BEFORE_FORMULA)[:1]
    return bool(visible) and unicodedata.normalize("NFKC", visible) in FORMULA_PREFIXES


def _csv_row(item: dict) -> list:
    reviewer, box, viewport = item.get("reviewer") or {}, item.get("boundingBox") or {}, item.get("viewport") or {}
    flat = {**item, "reviewer_id": reviewer.get("id"), "reviewer_name": reviewer.get("name"),
            "reviewer_email": reviewer.get("email"), "bbox_x": box.get("x"), "bbox_y": box.get("y"),
            "bbox_width": box.get("width"), "bbox_height": box.get("height"),
            "viewport_width": viewport.get("width"), "viewport_height": viewport.get("height")}
    return [_cell(flat.get(column)) for column in CSV_COLUMNS]


def render(items: Iterable[dict], fmt: str, header: bool = True) -> Iterator[str]:
    """Spikes as the client sees them (``spikes.to_client``), in ``fmt`` ("csv" or "jsonl"): the
    file's text a row at a time, as ``items`` are read (after the CSV's header, unless ``header``
    is False: the rest of a file continued, services/export_runs.py)."""
    if fmt != "csv":
        for item in items:
            yield json.dumps(item, ensure_ascii=False) + "\n"
        return
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    if header:
        buffer.write("\ufeff")  # so spreadsheet apps read UTF-8
        writer.writerow(CSV_COLUMNS)
        yield _taken(buffer)
    for item in items:
        writer.writerow(_csv_row(item))
        yield _taken(buffer)


def _taken(buffer: io.StringIO) -> str:
    """What was written to ``buffer``, which is emptied."""
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text


ACCOUNT_COUNTER, NETWORK_COUNTER = "exports-account", "exports"  # the export limit's two counters (248, 263)


def counted_as(principal: Optional[Principal], project: Optional[str], client_network: str) -> Tuple[str, str]:
    """Whom an export counts against (a rate limit's name and subject), for its rate and for the
    background exports it may have running (services/background_exports.py), after what is
    refused without a read: one's own feedback (no ``project``) without a credential or without
    ``spikes:read``, as ``spikes.readable`` would refuse it, so a refusal counts nothing
    (docs/security.md, 263). A credential that reads the account's feedback (a session, a key
    with ``spikes:read``) counts per account, whatever its network, as share uploads do: agents of
    different accounts behind one CI network do not use up each other's exports. Anyone else (a
    public project key, a share's password, the admin token, and a key without ``spikes:read``,
    which reads only what anyone may) counts per client network, as the widget's posts do: a
    narrow key, leaked, cannot use up its owner's exports."""
    if not project:
        spikes.scope_for(principal)  # AuthRequired without a credential
        principal.require("spikes:read")
    if principal is not None and principal.user_id and principal.allows("spikes:read"):
        return ACCOUNT_COUNTER, principal.user_id
    return NETWORK_COUNTER, client_network


def counted_as_reader(counted: Tuple[str, str], as_owner: Callable[[], bool], client_network: str) -> Tuple[str, str]:
    """Whom an export counts against once its access is decided: an account's export of feedback
    not its own (a public project, someone else's share, by its password) counts on its network's
    counter as well, and holds a running slot of the network's: an agent's signup (no e-mail, 5 an
    hour per network) multiplied the network's exports and slots otherwise (docs/security.md, 308).
    ``counted`` otherwise (``counted_as``: the account's own feedback, or already the network's)."""
    if counted[0] == ACCOUNT_COUNTER and not as_owner():
        return NETWORK_COUNTER, client_network
    return counted


def filename_for(label: Optional[str], fmt: str) -> str:
    """ASCII only: the name travels in a ``Content-Disposition`` header (here and on S3), and
    servers write headers as Latin-1 (chalice local's refuses anything else and drops the answer)."""
    safe = "".join(ch if (ch.isascii() and ch.isalnum()) or ch in "-_" else "-" for ch in (label or "all"))[:60]
    return f"spikes-{safe}-{clock.now().strftime('%Y%m%d-%H%M%S')}.{fmt}"


def export(exports: Exports, items: Iterable[dict], fmt: str, label: Optional[str],
           max_inline_bytes: Optional[int] = None, time_left_ms: Optional[Callable[[], float]] = None) -> Export:
    """The export of ``items``, named after ``label`` (the project asked for, or "all");
    staged through ``exports`` when larger than ``max_inline_bytes``. Only what the answer may
    carry is held: past that, the rows held and the rest, as they are read, go to S3 a part at
    a time. Held whole, a large project's export outgrew the function's memory (security 227).
    ``time_left_ms``: the function's time left (Lambda's context), see ``_in_time``."""
    filename = filename_for(label, fmt)
    limit = MAX_INLINE_BYTES if max_inline_bytes is None else max_inline_bytes
    rows = render(_in_time(items, time_left_ms), fmt)
    # Held as UTF-8: a row's text takes four bytes a character in memory once one is an emoji.
    held: Deque[bytes] = collections.deque()
    weight = 0
    for row in rows:
        held.append(row.encode("utf-8"))
        # Measured as the answer carries it, not in UTF-8: letters outside ASCII weigh up to
        # three times more there (chalicelib/lambda_answer.py). Escaping goes a character at a
        # time, so the rows' weights add up to the text's.
        weight += lambda_answer.weight(row)
        if weight > limit:
            body = itertools.chain(_drained(held), (text.encode("utf-8") for text in rows))
            return Export(filename, FORMATS[fmt], None, exports.stage(body, filename, FORMATS[fmt]))
    return Export(filename, FORMATS[fmt], b"".join(held).decode("utf-8"))


def _drained(held: Deque[bytes]) -> Iterator[bytes]:
    """The rows held, each let go once sent."""
    while held:
        yield held.popleft()


def _in_time(items: Iterable[dict], time_left_ms: Optional[Callable[[], float]]) -> Iterator[dict]:
    """``items``, until the function has too little time left to finish: then ExportTooSlow,
    which aborts the upload under way. Killed at its timeout instead, the function left the
    parts sent for the bucket's rule to abort a day later, and the client was told to retry. And
    ExportReadLimit once the reads of ``items`` reached their ``ReadLimit`` (284), aborting it too."""
    check = deadline(time_left_ms)
    try:
        for item in items:
            check()
            yield item
    except ReadsSpent as spent:  # items read under a ReadLimit: not the feedback's owner (284)
        raise ExportReadLimit(spent.items) from None


def deadline(time_left_ms: Optional[Callable[[], float]]) -> Callable[[], None]:
    """What raises ExportTooSlow once too little time is left: asked between rows and, by the
    reading of ``items`` (``spikes.iterate``), before each Query, since a filter matching little
    reads on without a row to ask between."""
    def check() -> None:
        if time_left_ms is not None and time_left_ms() < FINISHING_MS:
            raise ExportTooSlow(API_TIMEOUT_SECONDS)
    return check
