"""Background exports: ``POST /exports`` starts one (what ``GET /spikes/export`` would answer, for
exports that outgrow one request), ``GET /exports/{id}`` says how far it is and, once done,
where to download it (services/background_exports.py)."""
from __future__ import annotations

from typing import Optional
from urllib.parse import quote

from chalice import Blueprint

from chalicelib import deps
from chalicelib.api import inputs
from chalicelib.api import spikes as spike_routes
from chalicelib.api.routing import json_response, route
from chalicelib.errors import AuthRequired, NotFound, ScopeDenied, ValidationFailed
from chalicelib.lazy import lazy_import

responses = lazy_import("chalicelib.api.responses")
background_exports = lazy_import("chalicelib.services.background_exports")
export_runs = lazy_import("chalicelib.services.export_runs")
logs = lazy_import("chalicelib.logs")

bp = Blueprint(__name__)

PARAMETERS = ("project", "format", "page", "reviewer", "rating", "resolved")


def _parameters(request) -> dict:
    """The query's, and those of a JSON body (which win): the parameters of ``GET /spikes/export``."""
    params = dict(inputs.query(request))
    body = inputs.json_body(request) if request.raw_body else {}
    for name in PARAMETERS:
        value = body.get(name)
        if isinstance(value, bool):
            params[name] = "true" if value else "false"
        elif isinstance(value, str):
            params[name] = value
        elif value is not None:
            raise ValidationFailed.field(name, f"{name} must be a string")
    return params


def _password(request, params: dict) -> Optional[str]:
    return request.headers.get("x-share-password") or params.get("password")


@route(bp, "/exports", methods=["POST"])
def start_export():
    request = bp.current_request
    params = _parameters(request)
    fmt = spike_routes.export_format(params)
    principal = spike_routes.principal_of(request)
    counted_as = spike_routes.count_export(request, params, principal)  # one with GET /spikes/export
    counted_before = spike_routes.count_export_before_access(request, params, principal, counted_as)  # 342
    decided, filters = spike_routes.access_of(request, params, principal), spike_routes.filters_of(params)
    counted_as = spike_routes.count_export_of(request, counted_as, decided, counted_before)  # and its running slot (308)
    settings = deps.settings()
    project = params.get("project") or None
    password = _password(request, params)
    started_by = background_exports.requester(settings.secret_key.get_secret_value(), principal, project, password)
    # The seal of the share the access was decided on: read again, a password changed meanwhile
    # would seal the old one as the new one's (docs/security.md, 283).
    job = background_exports.start(started_by, decided.scope, filters, decided.reviewer_emails, fmt, project,
                                   "|".join(counted_as), settings.max_running_exports,
                                   background_exports.password_seal(settings, principal, decided.share, password),
                                   spike_routes.export_read_limit(decided))
    # The first part of the work now: a small export is done before the answer.
    time_left = getattr(bp.lambda_context, "get_remaining_time_in_millis", None)
    try:
        export_runs.advance(deps.exports(), job.export_id,
                            export_runs.within(background_exports.REQUEST_SLICE_SECONDS, time_left))
    except Exception:  # noqa: BLE001 - the job continues it; the caller has its id
        logs.get_logger("spikes.exports").exception("export.first_run_failed", export_id=job.export_id)
    location = f"{inputs.base_url(request)}/exports/{job.export_id}"
    if "anonymous" in started_by and project:  # read again with the same project (and password)
        location += f"?project={quote(project, safe='')}"
    return json_response(_shown(background_exports.get(job.export_id)), 202,
                         headers={"Location": location, "Cache-Control": "no-store"})


@route(bp, "/exports/{export_id}", methods=["GET"])
def get_export(export_id: str):
    request = bp.current_request
    params = inputs.query(request)
    principal = spike_routes.principal_of(request)
    job = background_exports.get(export_id)
    if job is None or not _readable_by(request, params, principal, job):
        raise NotFound("Export not found")
    return json_response(_shown(job), headers={"Cache-Control": "no-store"})


def _readable_by(request, params: dict, principal, job) -> bool:
    """Whether the reader is who started the export, with the access it was started with. An
    anonymous starter is told by its project and password: the access is asked first, where a
    password not the one the export keeps is a counted try; compared first, a wrong one was a 404
    that counted nothing, and whoever held the id guessed the share's password unlimited (276).
    Anyone else's starter is compared first: a stranger's password is never asked."""
    def starter() -> bool:
        return background_exports.may_read(deps.settings().secret_key.get_secret_value(), job, principal,
                                           params.get("project") or None, _password(request, params))

    def access() -> bool:
        return _still_readable(request, params, principal, job)
    checks = (access, starter) if "anonymous" in (job.detail.get("requester") or {}) else (starter, access)
    return all(check() for check in checks)


def _still_readable(request, params: dict, principal, job) -> bool:
    """The access the export was started with, asked again as its start asked it, for the project
    it named (docs/security.md, 265): refused, the reader is answered as a stranger. One read at
    most (the share, cached for seconds), the reviewers' addresses asked about only if it has them;
    the share's password, given again, is matched against what the start kept of it, not counted
    as a new try while it is unchanged (275)."""
    try:
        decided = spike_routes.access_of(request, {**params, "project": job.detail.get("project")}, principal,
                                         emails=job.detail["emails"], password_seal=job.detail.get("password_seal"))
    except (NotFound, ScopeDenied, AuthRequired):
        return False
    return background_exports.same_access(job, decided)


def _shown(job):
    if job is None:
        raise NotFound("Export not found")
    return responses.ExportOut(**background_exports.view(job, deps.exports()))
