"""Feedback: POST /spikes (public, the widget), listing, one spike, export."""
from __future__ import annotations

import json
from typing import List, Optional, Tuple

from chalice import Blueprint, Response

from chalicelib import deps, lambda_answer
from chalicelib.api import inputs, spike_body
from chalicelib.api.routing import EMPTY_BODY_TYPE, json_response, route
from chalicelib.errors import ValidationFailed
from chalicelib.lazy import lazy_import

responses = lazy_import("chalicelib.api.responses")
schemas = lazy_import("chalicelib.api.schemas")
claimed_cursors = lazy_import("chalicelib.services.claimed_cursors")
exports = lazy_import("chalicelib.services.exports")
push_listing = lazy_import("chalicelib.services.push_listing")
ratelimit = lazy_import("chalicelib.services.ratelimit")
spike_posts = lazy_import("chalicelib.services.spike_posts")
spike_by_id = lazy_import("chalicelib.services.spike_by_id")
spikes = lazy_import("chalicelib.services.spikes")

bp = Blueprint(__name__)

DEFAULT_LIMIT = 100
MAX_PROJECT_CHARS = 200  # as for a posted projectKey
MAX_LIMIT = 1000
# The CLI's push compares its local ids with one bare array and re-posts every id it does not
# see there (60 a minute per IP): the array holds as many as one answer carries, not one page.
MAX_PUSH_LISTING = 10_000
NEXT_CURSOR = "X-Next-Cursor"  # where the push's array ended, when more follow (as GET /auth/api-keys)
# What the widget reads off a page is cut to length, not refused (docs/api-notes.md): the body
# may weigh more than other JSON routes take, so a very long URL or title loses no feedback.
MAX_SPIKE_BODY_BYTES = 512 * 1024
# A listing stops short of this weight of items in the answer (Lambda answers at most 6 MB).
MAX_LISTING_BYTES = lambda_answer.MAX_BODY_WEIGHT
# A paged listing stops reading with this much of the function's time left, and answers the
# items found so far with a cursor: a filter matching little in a large partition would
# otherwise read on until the function is killed (API Gateway's 503, no cursor to go on with).
LISTING_FINISHING_MS = 3000
# What a page read without a credential, or with one not the feedback owner's (nor the admin's),
# may evaluate (each of its one or two reads): the items DynamoDB reads (a filter is applied
# after) and the Queries (1 MB each at most). A filter that matched little read on until the time
# above, a whole partition of any size, 120 times a minute per network, or uncounted with a free
# account's credential (docs/security.md, 280 and 282). A page without a filter reads limit + 1
# items whatever this says; 8 MB of spikes weighs more than an answer carries (5 MB: it ends there anyway).
ANONYMOUS_READ_ITEMS = 2000
ANONYMOUS_READ_QUERIES = 8
# What an export (GET /spikes/export, POST /exports) of feedback not the caller's may read in all;
# past it the export is refused (409). A whole project read for whoever names it, 10 a minute per
# network: at these, no more than the listings above allow a minute (120 pages), 200,000 items and
# 800 Queries (docs/security.md, 284). The owner and the admin export all of it.
ANONYMOUS_EXPORT_ITEMS = 20_000
ANONYMOUS_EXPORT_QUERIES = 80


@route(bp, "/spikes", methods=["POST"])
def create_spike():
    request = bp.current_request
    settings = deps.settings()
    ratelimit.enforce_per_client("spikes", inputs.client_ip(request), settings.rate_spikes_per_minute, 60)
    author = _acting(request, "spikes:write")
    new = spike_body.new_spike(inputs.json_body(request, max(settings.max_json_bytes, MAX_SPIKE_BODY_BYTES)))
    recorded = spike_posts.record(new, settings, inputs.base_url(request), author)
    return json_response(responses.SpikeCreatedOut(id=recorded.id), 201)


def filters_of(params: dict) -> spikes.Filters:
    rating = (params.get("rating") or "").lower() or None
    if rating is not None and rating not in spikes.RATINGS:
        raise ValidationFailed.field("rating", f"rating must be one of {', '.join(spikes.RATINGS)}")
    return spikes.Filters(page=params.get("page") or None, reviewer=params.get("reviewer") or None, rating=rating,
                          resolved=inputs.flag(params, "resolved", None))


def _limit(params: dict, default: int = DEFAULT_LIMIT) -> int:
    return inputs.page_limit(params, default, MAX_LIMIT)


def principal_of(request):
    """On /spikes, ?token= may carry any credential (the CLI's push sends its token there)."""
    return inputs.principal(request, any_credential_in_param=True)


def _acting(request, scope: str):
    principal = principal_of(request)
    return principal.require(scope) if principal is not None else None


def _project_of(params: dict) -> Optional[str]:
    project = params.get("project") or None
    if project and len(project) > MAX_PROJECT_CHARS:
        raise ValidationFailed.field("project", f"project is at most {MAX_PROJECT_CHARS} characters")
    return project


def access_of(request, params: dict, principal=None, emails: bool = True,
              password_seal: Optional[str] = None) -> spikes.Access:
    """What the caller (``principal`` when already resolved) may list, whether reviewers' e-mail
    addresses are shown, and the share read to decide it (``spikes.readable``; ``emails`` False: not asked)."""
    project = _project_of(params)
    principal = principal if principal is not None else principal_of(request)
    return spikes.readable(deps.settings(), principal, project,
                           password=request.headers.get("x-share-password") or params.get("password"),
                           client_ip=inputs.client_ip(request), emails=emails, password_seal=password_seal)


def wants_bare_array(request) -> bool:
    """The CLI's push (ureq, token in the query, no Authorization header) parses a bare JSON
    array; every other caller gets the contract's {data, next_cursor}. See docs/clients.md."""
    return ("token" in inputs.query(request) and not request.headers.get("authorization")
            and inputs.is_rust_client(request))


def _count_listing(request, principal, decided: Optional[spikes.Access] = None) -> None:
    """A listing of feedback not the caller's counts per client network: a public project key is
    in every page the widget is on, and each page is Queries billed to the operator (257).
    Without a credential it is counted before the share or any spike is read (``decided`` None);
    with one, once the access is decided, if the credential is not the feedback's owner's (nor
    the admin's): a free account (agent signups need no e-mail) paged someone else's project
    uncounted (307). Both on one counter, so a credential adds no allowance to its network's. The
    owner (the dashboard, the CLI's pull and push, the MCP server's get_spikes) is not counted."""
    # Asked twice: before the access (counts the caller without a credential), after it (with one).
    counted = principal is None if decided is None else principal is not None and not decided.as_owner()
    if counted:
        _count_per_network(request)


def _count_per_network(request) -> None:
    ratelimit.enforce_per_client("listings", inputs.client_ip(request), deps.settings().rate_listings_per_minute, 60)


def _surely_not_the_owners(principal, project: Optional[str]) -> bool:
    """With a credential on ``project``, whether the listing reads someone else's feedback as
    far as is known before ownership's reads (docs/security.md 341): a key without spikes:read
    (counted whoever owns it, 327), or a caller with an e-mail address (a key-only one may have
    been merged since) on a share of neither its account nor the one its key was made for. Only a
    claim of the share's owner into the caller's account, that share not moved yet, could still
    make the caller its owner; telling is the account read this saves a refused listing."""
    if principal is None or not project:
        return False
    if not spikes.reads_feedback(principal):
        return True
    if principal.is_admin or principal.user is None or principal.user.email is None:
        return False
    share = spikes.share_of(project)  # cached: the access asks the same
    return share is None or share.owner_id not in (principal.user_id, principal.claimed_from)


@route(bp, "/spikes", methods=["GET"])
def list_spikes():
    request = bp.current_request
    params = inputs.query(request)
    # Without ?limit= the contract's 100, except for the CLI and the MCP server (pull, pull
    # --from, push, get_spikes), which would drop everything past the first page: the largest.
    default_limit = MAX_LIMIT if inputs.is_rust_client(request) else DEFAULT_LIMIT
    bare_array = wants_bare_array(request)
    filters = filters_of(params)
    limit = inputs.page_limit(params, MAX_PUSH_LISTING, MAX_PUSH_LISTING) if bare_array else _limit(params, default_limit)
    principal = principal_of(request)
    _count_listing(request, principal)  # without a credential: before the share or any spike is read
    # With one surely not the owner's: before ownership's reads (341); else once the access is decided.
    counted_before = _surely_not_the_owners(principal, _project_of(params))
    if counted_before:
        _count_per_network(request)
    decided = access_of(request, params, principal)
    if not counted_before:
        _count_listing(request, principal, decided)  # with one not the owner's: before any spike is read
    scope, reviewer_emails = decided.scope, decided.reviewer_emails
    secret = deps.settings().secret_key.get_secret_value()
    cursor = claimed_cursors.carried_on(principal, params.get("cursor") or None, secret)
    # Items are in responses.SpikeOut's wire shape already (spikes.to_client), and serialized once (to be
    # measured against the page's byte budget): sent as they are, not validated again here.
    time_left_ms = getattr(bp.lambda_context, "get_remaining_time_in_millis", None)
    keep_reading = time_left_ms and (lambda: time_left_ms() >= LISTING_FINISHING_MS)
    # Only the feedback's owner (or the admin) reads without a limit: a free account's credential
    # on someone else's project reads as the anonymous caller does (docs/security.md, 282).
    read_limit = None if decided.as_owner() else \
        spikes.ReadLimit(max(min(limit, MAX_LIMIT) + 1, ANONYMOUS_READ_ITEMS), ANONYMOUS_READ_QUERIES)
    if bare_array and read_limit is not None:
        # Counted once, like a page: ten pages' reads for one count of the network's, for feedback
        # not the caller's, which the push never lists (docs/security.md, 328).
        limit = min(limit, MAX_LIMIT)
    if bare_array:  # ends short of time too (281): the push re-posts what it does not see, never lost
        listed = push_listing.list_unpaged(scope, filters, limit, cursor, secret, MAX_LISTING_BYTES,
                                           reviewer_emails, keep_reading=keep_reading, read_limit=read_limit)
        return json_response(responses.Preshaped(List[responses.SpikeOut], listed.items, listed.items_json),
                             headers={NEXT_CURSOR: listed.next_cursor} if listed.next_cursor else None)
    page = spikes.list_page(scope, filters, limit, cursor, secret, max_bytes=MAX_LISTING_BYTES,
                            reviewer_emails=reviewer_emails, keep_reading=keep_reading, read_limit=read_limit)
    return responses.Preshaped(responses.SpikePageOut, {"data": page.items, "next_cursor": page.next_cursor},
                     f'{{"data":{page.items_json},"next_cursor":{json.dumps(page.next_cursor)}}}')


def _project(request) -> Optional[str]:
    return inputs.query(request).get("project") or None


@route(bp, "/spikes/{spike_id}", methods=["GET"])
def get_spike(spike_id: str):
    request = bp.current_request
    spike = spike_by_id.get_for(_acting(request, "spikes:read"), spike_id, _project(request))
    return responses.SpikeOut(**spikes.to_client(spike))


@route(bp, "/spikes/{spike_id}", methods=["PATCH"])
def patch_spike(spike_id: str):
    request = bp.current_request
    principal = _acting(request, "spikes:write")
    body = inputs.parse(request, schemas.ResolveIn)
    spike = spike_by_id.set_resolved(principal, spike_id, body.resolved, _project(request), _prefix_ok(request))
    # The answer shows the spike: reviewers' addresses only to whom a listing shows them.
    return responses.SpikeResolvedOut(**spikes.shown_to(principal, spike), resolved_at=spike.resolved_at)


@route(bp, "/spikes/{spike_id}", methods=["DELETE"])
def delete_spike(spike_id: str):
    request = bp.current_request
    spike = spike_by_id.delete(_acting(request, "spikes:write"), spike_id, _project(request), _prefix_ok(request))
    return responses.DeletedOut(id=spikes.to_client(spike)["id"])


def _prefix_ok(request) -> bool:
    """The MCP server resolves and deletes by the 8 characters of an id it shows; every other
    caller names a spike by its whole id (docs/clients.md)."""
    return inputs.is_rust_client(request)


# --- export ----------------------------------------------------------------------------------

def export_format(params: dict) -> str:
    """The format an export asks for (``GET /spikes/export``, ``POST /exports``): csv unless it says."""
    fmt = (params.get("format") or "csv").lower()
    if fmt not in exports.FORMATS:
        raise ValidationFailed.field("format", "format must be csv or jsonl")
    return fmt


def count_export(request, params: dict, principal) -> Tuple[str, str]:
    """Each export (``GET /spikes/export``, and ``POST /exports`` on the same counter) reads a
    whole partition and may stage a file in S3 for a day (docs/security.md, 248): counted against
    whom ``exports.counted_as`` says, which is answered, before the share or any spike is read,
    and after what is refused without a read (a bad filter or project, 263)."""
    filters_of(params)
    counted_as = exports.counted_as(principal, _project_of(params), ratelimit.client_network(inputs.client_ip(request)))
    ratelimit.enforce(*counted_as, deps.settings().rate_exports_per_minute, 60)
    return counted_as


def count_export_before_access(request, params: dict, principal, counted_as: Tuple[str, str]) -> Tuple[str, str]:
    """An account's export surely not of its own feedback (``_surely_not_the_owners``) counts on
    its network's counter right after the share's read, before ownership's account read and the
    password (docs/security.md 342); what it counts on then, else ``counted_as`` (counted later)."""
    if counted_as[0] != exports.ACCOUNT_COUNTER or not _surely_not_the_owners(principal, _project_of(params)):
        return counted_as
    network = exports.NETWORK_COUNTER, ratelimit.client_network(inputs.client_ip(request))
    ratelimit.enforce(*network, deps.settings().rate_exports_per_minute, 60)
    return network


def count_export_of(request, counted_as: Tuple[str, str], decided: spikes.Access,
                    counted_before: Optional[Tuple[str, str]] = None) -> Tuple[str, str]:
    """Once the access is decided, whom the export counts against (``exports.counted_as_reader``):
    an account's export of feedback not its own also counts on its network's counter (308),
    unless ``count_export_before_access`` counted it there already (``counted_before``)."""
    reader = exports.counted_as_reader(counted_as, decided.as_owner, ratelimit.client_network(inputs.client_ip(request)))
    if reader not in (counted_as, counted_before):
        ratelimit.enforce(*reader, deps.settings().rate_exports_per_minute, 60)
    return reader


def export_read_limit(decided: spikes.Access) -> Optional[spikes.ReadLimit]:
    """What an export may read: everything for the feedback's owner and the admin
    (``Access.as_owner``), ``ANONYMOUS_EXPORT_*`` for anyone else (docs/security.md, 284)."""
    if decided.as_owner():
        return None
    return spikes.ReadLimit(ANONYMOUS_EXPORT_ITEMS, ANONYMOUS_EXPORT_QUERIES)


@route(bp, "/spikes/export", methods=["GET"])
def export_spikes():
    request = bp.current_request
    params = inputs.query(request)
    fmt = export_format(params)
    principal = principal_of(request)
    counted_as = count_export(request, params, principal)  # before the share or any spike is read
    counted_before = count_export_before_access(request, params, principal, counted_as)  # before ownership's reads
    decided, filters = access_of(request, params, principal), filters_of(params)
    count_export_of(request, counted_as, decided, counted_before)  # before any spike is read
    scope, reviewer_emails = decided.scope, decided.reviewer_emails
    # Lambda's context: an export that cannot finish in time ends with 409, its upload aborted.
    time_left_ms = getattr(bp.lambda_context, "get_remaining_time_in_millis", None)
    items = (spikes.to_client(spike, reviewer_emails)
             for spike in spikes.iterate(scope, filters, exports.deadline(time_left_ms),
                                         export_read_limit(decided)))
    result = exports.export(deps.exports(), items, fmt, params.get("project"), time_left_ms=time_left_ms)
    if result.download_url:
        # Lambda cannot answer with more than 6 MB: large exports are handed over through S3.
        return Response(body="", status_code=303, headers={"Location": result.download_url, "Cache-Control": "no-store",
                                                            "Content-Type": EMPTY_BODY_TYPE})
    return Response(body=result.text, status_code=200, headers={
        "Content-Type": result.content_type, "Content-Disposition": f'attachment; filename="{result.filename}"',
        "Cache-Control": "no-store"})
