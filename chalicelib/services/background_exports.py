"""Exports that outgrow one request (``POST /exports``): read and sent to S3 over as many runs as
they need (services/export_runs.py: the request that starts the export, then the ``exports`` job
every minute, or the local server's loop), then handed over by a short-lived link
(``GET /exports/{id}``).

Each running export holds one of its requester's slots (store/export_slots.py: at most
``SPIKES_MAX_RUNNING_EXPORTS``, per account or per client network as ``exports.counted_as``
counts exports), taken before it is stored, given back by the run that finishes or fails it (if
that run died first, by the job's next run, or else at the export's deadline by itself).

Who may read an export is who started it (``requester``): the same account (any of its signed-in
sessions; an export started with an API key, that key only, since a key may hold fewer scopes or
places than the account), the admin token, or, for a caller without an account (a public project
key, a share's password), the same project and password. The id alone opens nothing. And only
while the access it was started with holds (``same_access``): every read asks again, as the start
asked, for the project it named, so a share deleted or made private since, its password changed,
or an owner's key no longer acting for it, ends the reading of its export (docs/security.md, 265).
"""
from __future__ import annotations

import hmac
import secrets
from dataclasses import asdict
from typing import Any, Dict, Optional

from chalicelib import clock
from chalicelib.crypto import sign
from chalicelib.limit_errors import ExportLimit
from chalicelib.logs import get_logger
from chalicelib.services import export_runs, exports, own_exports, ownership, pending_work, share_access, spikes
from chalicelib.services.identity import Principal
from chalicelib.settings import Settings
from chalicelib.store import export_slots
from chalicelib.store import exports as export_store
from chalicelib.store.exports import DONE, FAILED, RUNNING, Job
from chalicelib.store.files import Exports
from chalicelib.store.models import Share
from chalicelib.store.rows import ReadLimit
from chalicelib.store.spike_filters import Filters
from chalicelib.store.spikes import Scope

REQUEST_SLICE_SECONDS = 10  # what the starting request spends reading before it answers
# What a job run gives one export before the next one's turn (it then goes behind the others): a
# caller who started many large exports does not hold up everyone else's until theirs are done.
TURN_SECONDS = 45
MAX_ID_CHARS = 64
DUE_PER_RUN = 25
# A start stores its export just after taking its slot: a slot held longer by no running export
# was left by a start that died between the two, or a run that died before giving it back.
SLOT_START_SECONDS = 60
# A run that took the export just before its 6 hours were up reads on for at most its lease, by a
# clock that may be behind the starter's: its slot is held that much past the export's deadline,
# so no start takes it over while that run still reads (docs/security.md, 326).
SLOT_OVERRUN_SECONDS = export_runs.LEASE_SECONDS + 60
log = get_logger("spikes.exports")
OWNER_SCOPE = "owner"  # the index of one's own feedback (spikes.scope_for)
_FORGOTTEN = "forgotten"  # what run_due says of an ended export whose slot and unit it gave back


def requester(secret: str, principal: Optional[Principal], project: Optional[str], password: Optional[str]) -> Dict:
    """Who started an export, as stored with it (see the module's docstring)."""
    if principal is not None and principal.is_admin:
        return {"admin": True}
    if principal is not None and principal.user_id:
        return {"user": principal.user_id, "key": principal.key.key_id if principal.is_key and principal.key else None}
    return {"anonymous": sign(secret, f"export\n{project or ''}\n{password or ''}")}


def may_read(secret: str, job: Job, principal: Optional[Principal], project: Optional[str],
             password: Optional[str]) -> bool:
    """Whether the reader is who started ``job``: the same account (with the same key, when it reads
    with a key), or the one a claim merged the starter's key-only account into, whose key now
    authenticates as the claimer (``ownership.owns``: one read, only when the accounts differ; 311)."""
    started_by, reader = job.detail.get("requester") or {}, requester(secret, principal, project, password)
    if "user" in started_by:
        if principal is None or not reader.get("user") or (principal.is_key and reader.get("key") != started_by.get("key")):
            return False
        return reader["user"] == started_by["user"] or ownership.owns(principal.user, started_by["user"])
    if "anonymous" in started_by:
        return "anonymous" in reader and hmac.compare_digest(reader["anonymous"], started_by["anonymous"])
    return bool(started_by.get("admin")) and bool(reader.get("admin"))


def same_access(job: Job, decided: spikes.Access) -> bool:
    """Whether what the reader may read now (``spikes.readable`` for the export's ``project``) is
    what the export was started with: the same spikes, the reviewers' addresses if it has them,
    and a share's password if one let the start in: with the password removed, nothing asks it,
    and an anonymous starter's mark, compared uncounted, told whoever held the id the old one (285)."""
    if job.detail.get("password_seal") and not (decided.share is not None and share_access.is_private(decided.share)):
        return False
    scope = [decided.scope.index, decided.scope.partition]
    # An export of one's own feedback is the reader's own whichever account that is now: ``may_read``
    # tied the reader to its starter, whose account a claim may have merged into the reader's (311).
    own_feedback = job.detail.get("project") is None and scope[0] == job.detail["scope"][0] == OWNER_SCOPE
    return (scope == job.detail["scope"] or own_feedback) and (decided.reviewer_emails or not job.detail["emails"])


def password_seal(settings: Settings, principal: Optional[Principal], share: Optional[Share],
                  password: Optional[str]) -> Optional[str]:
    """What an export keeps of the share's password that let its start in, so that its reader's
    polls, which give the password again, spend no counted password try (share_access.password_seal).
    ``share``: the one whose access was checked (``spikes.readable``'s), not read again (283)."""
    if share is None or password is None:
        return None
    return share_access.sealed_password(settings, share, principal, password)


def start(started_by: Dict, scope: Scope, filters: Filters, reviewer_emails: bool, fmt: str,
          project: Optional[str], counted_as: str, max_running: int, sealed: Optional[str] = None,
          read_limit: Optional[ReadLimit] = None) -> Job:
    """A new running export of what ``scope`` and ``filters`` select (the caller's access checked),
    holding one of ``counted_as``'s ``max_running`` slots: ExportLimit when none is free.
    ``sealed``: the share's password that let the start in (``password_seal``); ``read_limit``: what
    its runs may read in all (None: everything), past which it fails (export_runs, 284)."""
    claims_begun = own_exports.claims_before(scope)  # refused while a claim moves into it (311)
    now = clock.now()
    epoch, export_id = int(now.timestamp()), "exp_" + secrets.token_urlsafe(18)
    until = epoch + export_runs.MAX_RUNNING_SECONDS
    slot = export_slots.take(counted_as, max_running, export_id, epoch, until + SLOT_OVERRUN_SECONDS,
                             export_store.is_running, SLOT_START_SECONDS)
    if slot is None:
        raise ExportLimit(max_running)
    filename = exports.filename_for(project, fmt)
    detail = {"requester": started_by, "scope": [scope.index, scope.partition], "emails": reviewer_emails,
              "filters": {name: value for name, value in asdict(filters).items() if name != "hidden_partitions"},
              "format": fmt, "filename": filename, "key": Exports.new_key(filename), "upload_id": None, "parts": [],
              "next_part": 1, "after": None, "bytes": 0, "created_at": clock.iso_millis(now), "slot": slot,
              "project": project, "password_seal": sealed,
              "read_limit": [read_limit.items, read_limit.queries] if read_limit else None, "spent": {},
              "claims_begun": claims_begun}
    try:
        return export_store.create(export_id, detail, epoch, until + export_runs.KEEP_SECONDS,
                                   owner_id=started_by.get("user"))
    except Exception as failed:
        # DynamoDB can commit and answer 500, or the connection drop after the commit: the slot
        # is given back only when the export surely is not stored. Given back after a lost
        # commit, the export ran without one, and its requester could run one over the cap.
        try:
            stored = export_store.get(export_id)
        except Exception:  # noqa: BLE001 - unknown: the slot is kept (a start takes it over once no export runs)
            log.warning("export.start_unknown", export_id=export_id)
            raise failed from None
        if stored is not None and stored.detail.get("key") == detail["key"]:  # this write's (a fresh file key)
            return stored  # started all the same, holding its slot
        export_runs.free_slot(export_id, detail)
        raise


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
    if status == RUNNING and export_runs.overdue(job, clock.epoch()):
        status = FAILED  # the job fails it when it next comes to it
    shown = {"id": job.export_id, "status": status, "spike_count": job.count, "format": detail["format"],
             "filename": detail["filename"], "bytes": int(detail.get("bytes") or 0),
             "created_at": detail["created_at"], "expires_at": clock.iso_millis_at(job.expires_at)}
    if status == DONE:
        shown["download_url"] = files.download_url(detail["key"])
    if status == FAILED:
        shown["error"] = detail.get("error") or "The export took too long and was stopped"
    return shown


def run_due(files: Exports, time_left_ms: export_runs.TimeLeft, part_bytes: Optional[int] = None) -> Dict[str, Any]:
    """The job: the running exports, each continued for a turn of ``TURN_SECONDS`` (then due again
    behind the others), the longest waiting first, while the run's time lasts. An export its run
    ended is done with (that run gave back its slot and unit); one no run could take is looked at
    in case it ended and its run died before giving them back."""
    now = clock.epoch()
    runs = pending_work.Pass(export_store.QUEUE, now)
    summary = {"pending": 0, "advanced": 0, "finished": 0}
    for unit in export_store.QUEUE.due(DUE_PER_RUN, due_by=now):
        summary["pending"] += 1
        if runs.stopped or time_left_ms() < export_runs.FINISHING_MS * 2:
            break
        turn = export_runs.within(TURN_SECONDS, time_left_ms)
        ok, state = runs.attempt(unit, lambda: export_runs.advance(files, unit.name, turn, part_bytes)
                                 or _forget_ended(unit.name))
        summary["advanced"] += ok and state in (RUNNING, DONE, FAILED)
        summary["finished"] += ok and state in (DONE, FAILED, _FORGOTTEN)
        if ok and state == RUNNING:
            export_store.QUEUE.postpone(unit, int(clock.epoch()))
    return {**summary, "failed": runs.failed, "parked": runs.parked, "stopped": runs.stopped}


def _forget_ended(export_id: str) -> Optional[str]:
    """An export no run could take: if it ended (or is gone) and the run that ended it died before
    giving back its slot and unit, they are given back now (``_FORGOTTEN``); None while it runs
    (another run holds it), or when its unit was gone already."""
    stored = export_store.get(export_id)
    if stored is not None and stored.state == RUNNING:
        return None
    if stored is not None:  # a failure here is the unit's (tried again later), the unit kept till then
        export_slots.give_back(stored.detail.get("slot"), export_id)
    return _FORGOTTEN if export_store.finish_unit(export_id) else None
