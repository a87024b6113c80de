"""Exports that outgrow one request (``POST /exports``): read and sent to S3 over as many runs as
they need, then handed over by a short-lived link (``GET /exports/{id}``).

A run (the request that starts the export, then the ``exports`` job every minute, or the local
server's loop) takes the export's lease (store/exports.py), reads the spikes after the position
the last run stored, renders them as ``GET /spikes/export`` does (services/exports.py) and sends
the file to an S3 multipart upload a part at a time (``part_bytes``; S3 takes 5 MiB at least but
for the last). After each part it stores the part's ETag with the position after its last spike.
When the run's time runs out, the rows read since the last part, too few for one, are kept in S3
beside the file (``held``) with the position after them, and the next run starts from them: a
run always gets further than the last, however little a filter matches. The file is byte for
byte what one ``GET /spikes/export`` of the same data answers. A part's number is reserved (stored) before it is sent: two runs never send the same
number, and a part a run sent but could not record (its lease taken over) is left out of the
completed file. The last part completes the upload.

Each running export holds one of its requester's slots (store/export_slots.py: at most
``SPIKES_MAX_RUNNING_EXPORTS``, per account or per client network as ``exports.counted_as``
counts exports), taken before it is stored, given back by the run that finishes or fails it, and
free by itself at the export's deadline if that run died first.

Who may read an export is who started it (``requester``): the same account (any of its signed-in
sessions; an export started with an API key, that key only, since a key may hold fewer scopes or
places than the account), the admin token, or, for a caller without an account (a public project
key, a share's password), the same project and password. The id alone opens nothing. And only
while the access it was started with holds (``same_access``): every read asks again, as the start
asked, for the project it named, so a share deleted or made private since, its password changed,
or an owner's key no longer acting for it, ends the reading of its export (docs/security.md, 265).
"""
from __future__ import annotations

import copy
import hmac
import secrets
import time
from dataclasses import asdict
from typing import Any, Callable, Dict, Optional

from chalicelib import clock
from chalicelib.crypto import sign
from chalicelib.errors import ExportLimit
from chalicelib.logs import get_logger
from chalicelib.services import exports, pending_work, share_access, spikes
from chalicelib.services.identity import Principal
from chalicelib.settings import Settings
from chalicelib.store import export_slots
from chalicelib.store import exports as export_store
from chalicelib.store import spike_listings
from chalicelib.store.exports import DONE, FAILED, RUNNING, Job, LeaseLost
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
REQUEST_SLICE_SECONDS = 10  # what the starting request spends reading before it answers
# What a job run gives one export before the next one's turn (it then goes behind the others): a
# caller who started many large exports does not hold up everyone else's until theirs are done.
TURN_SECONDS = 45
MAX_ID_CHARS = 64
DUE_PER_RUN = 25
# A start stores its export just after taking its slot: a slot held longer by no running export
# was left by a start that died between the two, or a run that died before giving it back.
SLOT_START_SECONDS = 60

TimeLeft = Callable[[], float]


def requester(secret: str, principal: Optional[Principal], project: Optional[str], password: Optional[str]) -> Dict:
    """Who started an export, as stored with it (see the module's docstring)."""
    if principal is not None and principal.is_admin:
        return {"admin": True}
    if principal is not None and principal.user_id:
        return {"user": principal.user_id, "key": principal.key.key_id if principal.is_key and principal.key else None}
    return {"anonymous": sign(secret, f"export\n{project or ''}\n{password or ''}")}


def may_read(secret: str, job: Job, principal: Optional[Principal], project: Optional[str],
             password: Optional[str]) -> bool:
    started_by, reader = job.detail.get("requester") or {}, requester(secret, principal, project, password)
    if "user" in started_by:
        return reader.get("user") == started_by["user"] and (
            principal is not None and (not principal.is_key or reader.get("key") == started_by.get("key")))
    if "anonymous" in started_by:
        return "anonymous" in reader and hmac.compare_digest(reader["anonymous"], started_by["anonymous"])
    return bool(started_by.get("admin")) and bool(reader.get("admin"))


def same_access(job: Job, scope: Scope, reviewer_emails: bool) -> bool:
    """Whether what the reader may read now (``spikes.readable`` for the export's ``project``) is
    what the export was started with: the same spikes, and the reviewers' addresses if it has them."""
    return [scope.index, scope.partition] == job.detail["scope"] and (reviewer_emails or not job.detail["emails"])


def password_seal(settings: Settings, principal: Optional[Principal], project: Optional[str],
                  password: Optional[str]) -> Optional[str]:
    """What an export keeps of the share's password that let its start in, so that its reader's
    polls, which give the password again, spend no counted password try (share_access.password_seal)."""
    if not project or password is None:
        return None
    return share_access.sealed_password(settings, spikes.share_of(project), principal, password)


def start(started_by: Dict, scope: Scope, filters: Filters, reviewer_emails: bool, fmt: str,
          project: Optional[str], counted_as: str, max_running: int, sealed: Optional[str] = None) -> Job:
    """A new running export of what ``scope`` and ``filters`` select (the caller's access checked),
    holding one of ``counted_as``'s ``max_running`` slots: ExportLimit when none is free.
    ``sealed``: the share's password that let the start in (``password_seal``)."""
    now = clock.now()
    epoch, export_id = int(now.timestamp()), "exp_" + secrets.token_urlsafe(18)
    slot = export_slots.take(counted_as, max_running, export_id, epoch, epoch + MAX_RUNNING_SECONDS,
                             export_store.is_running, SLOT_START_SECONDS)
    if slot is None:
        raise ExportLimit(max_running)
    filename = exports.filename_for(project, fmt)
    detail = {"requester": started_by, "scope": [scope.index, scope.partition], "emails": reviewer_emails,
              "filters": {name: value for name, value in asdict(filters).items() if name != "hidden_partitions"},
              "format": fmt, "filename": filename, "key": Exports.new_key(filename), "upload_id": None, "parts": [],
              "next_part": 1, "after": None, "bytes": 0, "created_at": clock.iso_millis(now), "slot": slot,
              "project": project, "password_seal": sealed}
    try:
        return export_store.create(export_id, detail, epoch, epoch + MAX_RUNNING_SECONDS + KEEP_SECONDS,
                                   owner_id=started_by.get("user"))
    except Exception:
        _free_slot(export_id, detail)
        raise


def _free_slot(export_id: str, detail: Dict) -> None:
    """The export's slot given back (it ended); if that fails, its deadline frees it."""
    try:
        export_slots.give_back(detail.get("slot"), export_id)
    except Exception:  # noqa: BLE001 - the slot runs out by itself
        log.warning("export.slot_release_failed", export_id=export_id)


def get(export_id: str) -> Optional[Job]:
    """The export, None when there is none or it expired (TTL deletes late)."""
    if not export_id or len(export_id) > MAX_ID_CHARS:
        return None
    job = export_store.get(export_id)
    return job if job is not None and job.expires_at > clock.epoch() else None


def view(job: Job, files: Exports) -> Dict[str, Any]:
    """The export as ``GET /exports/{id}`` shows it."""
    detail = job.detail
    status = job.state
    if status == RUNNING and _overdue(job, clock.epoch()):
        status = FAILED  # the job fails it when it next comes to it
    shown = {"id": job.export_id, "status": status, "spike_count": job.count, "format": detail["format"],
             "filename": detail["filename"], "bytes": int(detail.get("bytes") or 0),
             "created_at": detail["created_at"], "expires_at": clock.iso_millis_at(job.expires_at)}
    if status == DONE:
        shown["download_url"] = files.download_url(detail["key"])
    if status == FAILED:
        shown["error"] = detail.get("error") or "The export took too long and was stopped"
    return shown


def _overdue(job: Job, now: float) -> bool:
    return now > clock.parse_iso(job.detail["created_at"]).timestamp() + MAX_RUNNING_SECONDS


def within(seconds: float, time_left_ms: Optional[TimeLeft] = None) -> TimeLeft:
    """Time left, in ms: ``seconds`` from now, or what ``time_left_ms`` says if less."""
    until = time.monotonic() + seconds
    return lambda: min((until - time.monotonic()) * 1000, time_left_ms() if time_left_ms else float("inf"))


def advance(files: Exports, export_id: str, time_left_ms: TimeLeft, part_bytes: Optional[int] = None) -> bool:
    """One run of an export, while ``time_left_ms`` allows: False when another run holds it or it
    is no longer running, else True (done, failed, or to be continued by the next run)."""
    job = export_store.claim(export_id, int(clock.epoch()), LEASE_SECONDS)
    if job is None:
        return False
    try:
        _advance(files, job, time_left_ms, part_bytes or export_files.EXPORT_PART_BYTES)
    except LeaseLost:
        log.warning("export.lease_lost", export_id=export_id)
    except Exception:
        _give_back(job)
        raise
    return True


def _give_back(job: Job) -> None:
    """The lease let go after a failure, so the next run tries again at once."""
    try:
        export_store.save(job, job.detail, release=True)
    except Exception:  # noqa: BLE001 - the lease then runs out by itself
        log.warning("export.release_failed", export_id=job.export_id)


def _advance(files: Exports, job: Job, time_left_ms: TimeLeft, part_bytes: int) -> None:
    detail = copy.deepcopy(job.detail)
    if _overdue(job, clock.epoch()):
        _fail(files, job, detail, f"The export did not finish within {MAX_RUNNING_SECONDS // 3600} hours")
        return
    if not detail["upload_id"]:
        _open_upload(files, job, detail)
    scope = Scope(*detail["scope"])
    filters = spikes.hiding_deletions(scope, Filters(**detail["filters"]))
    held_before = detail.get("held") or {}
    read = {"rows": held_before.get("rows", 0), "sent": 0, "after": detail["after"], "between_reads": False}
    position = {"after": detail["after"]}

    def in_time() -> None:  # asked between rows and before each Query (a filter matching little reads on)
        if time_left_ms() < FINISHING_MS:
            raise _OutOfTime()

    def before_read() -> None:
        read["between_reads"] = True
        in_time()
        read["between_reads"] = False

    def items():
        for row in spike_listings.iterate(scope, filters, before_read, position):
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
    if held:
        _send(files, job, detail, bytes(held), read)
    if detail["parts"]:
        files.complete_upload(detail["key"], detail["upload_id"], [tuple(part) for part in detail["parts"]])
    else:  # nothing matched (JSON lines have no header)
        files.abort_upload(detail["key"], detail["upload_id"])
        files.put_empty(detail["key"], detail["filename"], exports.FORMATS[detail["format"]])
    detail["finished_at"] = clock.iso_millis(clock.now())
    export_store.save(job, detail, state=DONE, expires_at=int(clock.epoch()) + KEEP_SECONDS)
    _free_slot(job.export_id, detail)
    export_store.finish_unit(job.export_id)
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
    _free_slot(job.export_id, detail)
    export_store.finish_unit(job.export_id)
    log.warning("export.failed", export_id=job.export_id, reason=reason)


def run_due(files: Exports, time_left_ms: TimeLeft, part_bytes: Optional[int] = None) -> Dict[str, Any]:
    """The job: the running exports, each continued for a turn of ``TURN_SECONDS`` (then due again
    behind the others), the longest waiting first, while the run's time lasts."""
    now = clock.epoch()
    runs = pending_work.Pass(export_store.QUEUE, now)
    summary = {"pending": 0, "advanced": 0, "finished": 0}
    for unit in export_store.QUEUE.due(DUE_PER_RUN, due_by=now):
        summary["pending"] += 1
        if runs.stopped or time_left_ms() < FINISHING_MS * 2:
            break
        turn = within(TURN_SECONDS, time_left_ms)
        ok, advanced = runs.attempt(unit, lambda: advance(files, unit.name, turn, part_bytes))
        summary["advanced"] += bool(ok and advanced)
        stored = export_store.get(unit.name) if ok else None
        if ok and (stored is None or stored.state != RUNNING):  # its run died before forgetting it
            if stored is not None:
                _free_slot(unit.name, stored.detail)
            summary["finished"] += export_store.finish_unit(unit.name)
        elif ok and advanced:
            export_store.QUEUE.postpone(unit, int(clock.epoch()))
    return {**summary, "failed": runs.failed, "parked": runs.parked, "stopped": runs.stopped}
