"""One run of a background export (services/background_exports.py): while its time lasts, it
reads the export's spikes and sends them to S3, from where the last run stopped.

A run (the request that starts the export, then the ``exports`` job every minute, or the local
server's loop) takes the export's lease (store/exports.py), reads the spikes after the position
the last run stored, renders them as ``GET /spikes/export`` does (services/exports.py) and sends
the file to an S3 multipart upload a part at a time (``part_bytes``; S3 takes 5 MiB at least but
for the last). After each part it stores the part's ETag with the position after its last spike.
When the run's time runs out, the rows read since the last part, too few for one, are kept in S3
beside the file (``held``) with the position after them, and the next run starts from them: a
run always gets further than the last, however little a filter matches. The file is byte for
byte what one ``GET /spikes/export`` of the same data answers. A part's number is reserved
(stored) before it is sent: two runs never send the same number, and a part a run sent but could
not record (its lease taken over) is left out of the completed file. The last part completes the
upload. The run that finishes or fails the export gives back its running-export slot and forgets
its pending unit.
"""
from __future__ import annotations

import copy
import time
from typing import Callable, Dict, Optional

from chalicelib import clock
from chalicelib.errors import ExportReadLimit
from chalicelib.logs import get_logger
from chalicelib.services import exports, own_exports, spikes
from chalicelib.store import export_slots
from chalicelib.store import exports as export_store
from chalicelib.store import spike_listings
from chalicelib.store.rows import ReadLimit, ReadsSpent
from chalicelib.store.exports import DONE, FAILED, Job, LeaseLost
from chalicelib.store import files as export_files
from chalicelib.store.files import Exports
from chalicelib.store.spike_filters import Filters
from chalicelib.store.spikes import Scope

log = get_logger("spikes.exports")

LEASE_SECONDS = 15 * 60  # longer than any function runs (Lambda's most): a run that died frees it then
MAX_RUNNING_SECONDS = 6 * 60 * 60  # an export not done by then is failed, its upload aborted
# A finished export (its state and link) is kept this long; the bucket expires exports/ a day
# after the file is written (store/files.py), so a link handed out is never to a file gone.
KEEP_SECONDS = 12 * 60 * 60
FINISHING_MS = exports.FINISHING_MS  # what a run leaves of its time: one part sent and recorded

TimeLeft = Callable[[], float]


def free_slot(export_id: str, detail: Dict) -> bool:
    """The export's slot given back (it ended or was never stored): False when that failed (the
    job's next run tries again while the export's unit is kept; the export's deadline frees it)."""
    try:
        export_slots.give_back(detail.get("slot"), export_id)
    except Exception:  # noqa: BLE001 - the slot runs out by itself
        log.warning("export.slot_release_failed", export_id=export_id)
        return False
    return True


def _forget(job: Job, detail: Dict) -> None:
    """The ended export's slot given back and its pending unit deleted, each once. A slot that
    could not be given back keeps the unit, so that the job's next run frees them both
    (background_exports.run_due); deleted, nothing would give the slot back before the deadline."""
    if free_slot(job.export_id, detail):
        export_store.finish_unit(job.export_id)


def overdue(job: Job, now: float) -> bool:
    return now > clock.parse_iso(job.detail["created_at"]).timestamp() + MAX_RUNNING_SECONDS


def within(seconds: float, time_left_ms: Optional[TimeLeft] = None) -> TimeLeft:
    """Time left, in ms: ``seconds`` from now, or what ``time_left_ms`` says if less."""
    until = time.monotonic() + seconds
    return lambda: min((until - time.monotonic()) * 1000, time_left_ms() if time_left_ms else float("inf"))


def advance(files: Exports, export_id: str, time_left_ms: TimeLeft, part_bytes: Optional[int] = None) -> Optional[str]:
    """One run of an export, while ``time_left_ms`` allows: None when another run holds it or it
    is no longer running, else the state the run left: DONE or FAILED when it ended the export
    (and gave back its slot and unit), RUNNING when the next run continues (or another took it)."""
    job = export_store.claim(export_id, int(clock.epoch()), LEASE_SECONDS)
    if job is None:
        return None
    spent = dict(job.detail.get("spent") or {})  # this run's reads added, as they are made
    try:
        _advance(files, job, time_left_ms, part_bytes or export_files.EXPORT_PART_BYTES, spent)
    except LeaseLost:
        log.warning("export.lease_lost", export_id=export_id)
    except Exception:
        _give_back(job, spent)
        raise
    return job.state


def _give_back(job: Job, spent: Dict) -> None:
    """The lease let go after a failure, so the next run tries again at once: from where the last
    save was, but with every read made since counted (``spent``). Gone back to the saved count, a
    run failing after its reads (a Query throttled, a save refused) read uncounted, and an export
    whose runs kept failing read on for its 6 hours whatever its budget (docs/security.md, 306)."""
    try:
        export_store.save(job, {**job.detail, "spent": spent}, release=True)
    except Exception:  # noqa: BLE001 - the lease then runs out by itself
        log.warning("export.release_failed", export_id=job.export_id)


def _advance(files: Exports, job: Job, time_left_ms: TimeLeft, part_bytes: int, spent: Dict) -> None:
    detail = copy.deepcopy(job.detail)
    detail["spent"] = spent
    if overdue(job, clock.epoch()):
        _fail(files, job, detail, f"The export did not finish within {MAX_RUNNING_SECONDS // 3600} hours")
        return
    if not detail["upload_id"]:
        _open_upload(files, job, detail)
    scope = Scope(*detail["scope"])
    filters = spikes.hiding_deletions(scope, Filters(**detail["filters"]))
    held_before = detail.get("held") or {}
    read = {"rows": held_before.get("rows", 0), "sent": 0, "after": detail["after"], "between_reads": False}
    position = {"after": detail["after"]}
    # What an export of feedback not its starter's may read in all, counted over its runs (284).
    read_limit = ReadLimit(*detail["read_limit"]) if detail.get("read_limit") else None

    def in_time() -> None:  # asked between rows and before each Query (a filter matching little reads on)
        if time_left_ms() < FINISHING_MS:
            raise _OutOfTime()

    def before_read() -> None:
        read["between_reads"] = True
        in_time()
        read["between_reads"] = False

    def items():
        for row in spike_listings.iterate(scope, filters, before_read, position, read_limit, spent):
            read["rows"] += 1
            read["after"] = spike_listings.key_of(scope, filters, row)
            yield spikes.to_client(row, detail["emails"])
    held = bytearray(files.held(held_before["key"]) if held_before else b"")
    try:
        # Each row's text is held before the time is asked: what was read is what is held.
        for text in exports.render(items(), detail["format"], header=not (detail["parts"] or held_before)):
            held += text.encode("utf-8")
            if len(held) >= part_bytes:
                _send(files, job, detail, bytes(held), read)
                held.clear()
            in_time()
    except _OutOfTime:
        # Reads all done since the last row (a filter matching little): the next run starts past them.
        detail["after"] = position.get("scanned") if read["between_reads"] and position.get("scanned") else read["after"]
        if held:
            detail["held"] = {"key": files.hold(detail["key"], bytes(held)), "rows": read["rows"] - read["sent"]}
        export_store.save(job, detail, release=True)
        return
    except ReadsSpent as reads:
        _fail(files, job, detail, ExportReadLimit(reads.items).message)
        return
    if not own_exports.whole(scope, detail.get("claims_begun")):  # a claim moved spikes meanwhile (311)
        _fail(files, job, detail, own_exports.MOVED)
        return
    if held:
        _send(files, job, detail, bytes(held), read)
    if detail["parts"]:
        files.complete_upload(detail["key"], detail["upload_id"], [tuple(part) for part in detail["parts"]])
    else:  # nothing matched (JSON lines have no header)
        files.abort_upload(detail["key"], detail["upload_id"])
        files.put_empty(detail["key"], detail["filename"], exports.FORMATS[detail["format"]])
    detail["finished_at"] = clock.iso_millis(clock.now())
    export_store.save(job, detail, state=DONE, expires_at=int(clock.epoch()) + KEEP_SECONDS)
    _forget(job, detail)
    log.info("export.done", export_id=job.export_id, spikes=job.count, bytes=detail["bytes"])


def _open_upload(files: Exports, job: Job, detail: Dict) -> None:
    """The export's multipart upload, noted as started before it is, so that one a run created
    but died before recording is found by the next run (S3 alone knows its id) and taken over:
    it has no parts, which are sent to a recorded upload only. Before, it stayed open, never
    completed nor aborted, until the bucket's lifecycle rule aborted it a day later."""
    if detail.get("upload_started"):
        detail["upload_id"] = files.open_upload(detail["key"])
    if not detail["upload_id"]:
        detail["upload_started"] = True
        export_store.save(job, detail)
        detail["upload_id"] = files.start_upload(detail["key"], detail["filename"], exports.FORMATS[detail["format"]])
    export_store.save(job, detail)


class _OutOfTime(Exception):
    """The run's time (or the export's turn) is up: the next run continues."""


def _send(files: Exports, job: Job, detail: Dict, body: bytes, read: Dict) -> None:
    """One part: its number reserved, sent, then recorded with the position after its last row."""
    number = detail["next_part"]
    detail["next_part"] = number + 1
    export_store.save(job, detail)
    etag = files.send_part(detail["key"], detail["upload_id"], number, body)
    detail["parts"].append([number, etag])
    detail["after"], detail["bytes"], detail["held"] = read["after"], detail["bytes"] + len(body), None
    count = job.count + read["rows"] - read["sent"]
    read["sent"] = read["rows"]
    export_store.save(job, detail, count=count)


def _fail(files: Exports, job: Job, detail: Dict, reason: str) -> None:
    if detail["upload_id"]:
        files.abort_upload(detail["key"], detail["upload_id"])
    detail["error"] = reason
    export_store.save(job, detail, state=FAILED, expires_at=int(clock.epoch()) + KEEP_SECONDS)
    _forget(job, detail)
    log.warning("export.failed", export_id=job.export_id, reason=reason)
