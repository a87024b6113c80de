"""Shares: create (multipart upload, or presigned S3 uploads for large shares), list, read
and delete. Serving the uploaded pages lives in ``serving``."""
from __future__ import annotations

from typing import TYPE_CHECKING, List

from chalice import Blueprint

from chalicelib import deps, lambda_answer
from chalicelib.api import inputs
from chalicelib.api.routing import json_response, route
from chalicelib.errors import SizeLimit
from chalicelib.lazy import lazy_import

if TYPE_CHECKING:
    from chalicelib.services.identity import Principal
    from chalicelib.store.models import Share

responses = lazy_import("chalicelib.api.responses")
schemas = lazy_import("chalicelib.api.schemas")
claimed_cursors = lazy_import("chalicelib.services.claimed_cursors")
exports = lazy_import("chalicelib.services.exports")
identity = lazy_import("chalicelib.services.identity")
outbound_webhooks = lazy_import("chalicelib.services.outbound_webhooks")
presigned_uploads = lazy_import("chalicelib.services.presigned_uploads")
ratelimit = lazy_import("chalicelib.services.ratelimit")
share_creation = lazy_import("chalicelib.services.share_creation")
share_deletion = lazy_import("chalicelib.services.share_deletion")
share_links = lazy_import("chalicelib.services.share_links")
share_listing = lazy_import("chalicelib.services.share_listing")
shares = lazy_import("chalicelib.services.shares")
spikes = lazy_import("chalicelib.services.spikes")
uploads = lazy_import("chalicelib.services.uploads")

bp = Blueprint(__name__)

# Room for the announcement of a share with max_share_files (500) files and long paths.
MAX_ANNOUNCEMENT_BYTES = 256 * 1024
# GET /shares: the most one answer lists (a Pro account has no share limit: docs/security.md
# 305); it ends short of this weight of items (Lambda answers at most 6 MB) and, with this much
# of the function's time left, where its reads ended, as a listing of spikes does.
MAX_LISTED = 10_000
MAX_LISTING_BYTES = lambda_answer.MAX_BODY_WEIGHT
LISTING_FINISHING_MS = 3000
NEXT_CURSOR = "X-Next-Cursor"


def _uploader(request, budget: str = "shares") -> Principal:
    principal = identity.require_user(inputs.principal(request), "shares:write")
    settings = deps.settings()
    # Per account, whatever the credential: two tokens (or keys) must not double the limit.
    ratelimit.enforce(budget, principal.user_id or "", settings.rate_shares_per_minute, 60)
    return principal


def _new_webhook_secret(share: Share) -> dict:
    """The signing secret of a webhook just set: shown in this answer and never again."""
    if not outbound_webhooks.wants_events(share):
        return {}
    return {"webhook_secret": outbound_webhooks.signing_secret(deps.settings(), share.share_id,
                                                                share.webhook_secret_nonce)}


def _created(share: Share, base_url: str, http_status: int = 201, **extra):
    return json_response(responses.ShareCreatedOut(url=share_links.share_url(base_url, share), share_id=share.share_id,
                                         slug=share.slug, status=share.status, **extra), http_status)


@route(bp, "/shares", methods=["POST"])
def create_share():
    request = bp.current_request
    principal = _uploader(request)
    settings = deps.settings()
    raw = request.raw_body or b""
    if len(raw) > settings.max_direct_upload_bytes:
        raise SizeLimit(settings.max_direct_upload_bytes,
                        f"One upload request may carry at most {settings.max_direct_upload_bytes} bytes (AWS Lambda "
                        f"takes 6 MB per request). Share a bigger folder with presigned uploads: "
                        f"`python -m tools.share DIR --host {inputs.base_url(request)}` from the spikes-aws "
                        f"repository, or POST /shares/uploads (docs/shares.md)")
    upload = uploads.parse_multipart(request.headers.get("content-type", ""), raw, settings.max_share_files)
    metadata = inputs.validate(schemas.ShareMetadata, upload.metadata)
    outbound_webhooks.require_receiver_scope(principal, metadata.webhook_url)
    base_url = inputs.base_url(request)
    share = share_creation.create_share(settings, deps.share_files(), principal.user, metadata.options(), upload.files,
                                        base_url, principal.key)
    return _created(share, base_url, **_new_webhook_secret(share))


@route(bp, "/shares/uploads", methods=["POST"])
def start_upload():
    request = bp.current_request
    principal = _uploader(request)
    settings = deps.settings()
    body = inputs.parse(request, schemas.UploadRequest, max_bytes=max(settings.max_json_bytes, MAX_ANNOUNCEMENT_BYTES))
    outbound_webhooks.require_receiver_scope(principal, body.webhook_url)
    paths = [uploads.normalise_path(item.path) for item in body.files]
    # The served type follows the extension, whatever the client announced.
    files = [share_creation.FileSpec(path=path, size=item.size, content_type=uploads.content_type_for(path))
             for path, item in zip(paths, body.files)]
    base_url = inputs.base_url(request)
    share, targets = presigned_uploads.start(settings, deps.share_files(), principal.user, body.options(), files, base_url,
                                              principal.key)
    return _created(share, base_url, **_new_webhook_secret(share), uploads=targets,
                    expires_in=settings.presign_ttl_seconds,
                    complete_url=f"{base_url}/shares/{share.share_id}/complete",
                    complete_before=presigned_uploads.complete_before(settings, share))


# API Gateway allows one variable name per level: this is the same {key} as /shares/{key}.
@route(bp, "/shares/{key}/complete", methods=["POST"])
def complete_upload(key: str):
    request = bp.current_request
    # Each call may copy every file of the upload (up to 500) before it fails: limited like the
    # uploads, in a budget of its own so a start does not take a completion's place (finding 176).
    principal = _uploader(request, budget="share-completes")
    share = presigned_uploads.complete(deps.settings(), deps.share_files(), principal.user, key)
    return _created(share, inputs.base_url(request), http_status=200)


def _summary(share: Share, base_url: str) -> dict:
    return {"id": share.share_id, "slug": share.slug, "name": share.name, "url": share_links.share_url(base_url, share),
            "created_at": share.created_at, "status": share.status or shares.ACTIVE,
            "file_count": int(share.file_count or 0), "total_bytes": int(share.total_bytes or 0),
            "password_protected": bool(share.password_hash), "webhook_url": share.webhook_url,
            "locked_reason": shares.LOCKED_REASON if share.status == shares.LOCKED else None,
            "complete_before": presigned_uploads.complete_before(deps.settings(), share)
            if share.status == shares.PENDING else None}


@route(bp, "/shares", methods=["GET"])
def list_shares():
    """A bare array, newest first, as the CLI parses it (it never pages): as many shares as
    ``?limit=`` asks, or as one answer carries, ending short of its weight and of the function's
    time; the cursor of the rest, when more follow, in X-Next-Cursor (``?cursor=`` takes it)."""
    request = bp.current_request
    principal = identity.require_user(inputs.principal(request), "shares:read")
    params = inputs.query(request)
    limit = inputs.page_limit(params, MAX_LISTED, MAX_LISTED)
    # Per account, before a share is read: one call reads up to 10,000 shares and their totals (309);
    # the shares it read past 100 are charged after (338), a cursor of no listing refused before (340).
    units_per_minute = deps.settings().rate_share_listings_per_minute
    secret = deps.settings().secret_key.get_secret_value()
    cursor = params.get("cursor") or None
    share_listing.count_listing(principal.user_id, units_per_minute, cursor, secret)
    base_url = inputs.base_url(request)
    time_left_ms = getattr(bp.lambda_context, "get_remaining_time_in_millis", None)
    listed = share_listing.list_owned(
        principal.user, limit, claimed_cursors.carried_on(principal, cursor, secret), secret,
        lambda share, count: responses.ShareListItemOut(**_summary(share, base_url), spike_count=count).wire(),
        MAX_LISTING_BYTES, keep_reading=time_left_ms and (lambda: time_left_ms() >= LISTING_FINISHING_MS))
    share_listing.charge_listed(principal.user_id, len(listed.items), units_per_minute)
    return json_response(responses.Preshaped(List[responses.ShareListItemOut], listed.items, listed.items_json),
                         headers={NEXT_CURSOR: listed.next_cursor} if listed.next_cursor else None)


@route(bp, "/shares/{key}", methods=["GET"])
def get_share(key: str):
    request = bp.current_request
    principal = identity.require_user(inputs.principal(request), "shares:read")
    share = shares.get_owned(principal.user, key)
    if not inputs.flag(inputs.query(request), "exported_spikes", default=True):
        # The dashboard's way (it reads the feedback page by page): the share and its counted
        # total, no spike read; as DELETE takes the same parameter.
        return responses.ShareOut(**_summary(share, inputs.base_url(request)), spike_count=shares.spike_count(share),
                                  exported_spikes=[])
    # Every spike of the share, up to ~5 MB read: an export of it, counted before a spike is read
    # as GET /spikes/export counts one of the owner's (the account's counter; a key without
    # spikes:read on its network's, 263), so a shares:read key cannot read it unbounded (352).
    counted_as = exports.counted_as(principal, share.share_id, ratelimit.client_network(inputs.client_ip(request)))
    ratelimit.enforce(*counted_as, deps.settings().rate_exports_per_minute, 60)
    exported = spikes.exported_for(principal, shares.export_spikes(share))
    # Every spike of the share is in hand: count them rather than read the counter too.
    return responses.ShareOut(**_summary(share, inputs.base_url(request)), spike_count=len(exported),
                    exported_spikes=exported)


@route(bp, "/shares/{key}", methods=["PATCH"])
def update_share(key: str):
    request = bp.current_request
    principal = identity.require_user(inputs.principal(request), "shares:write")
    body = inputs.parse(request, schemas.ShareUpdate)
    outbound_webhooks.require_receiver_scope(principal, body.webhook_url)
    base_url = inputs.base_url(request)
    share = shares.update_share(deps.settings(), principal.user, key, body.changes(), base_url)
    secret = _new_webhook_secret(share) if body.webhook_url else {}
    return responses.ShareUpdatedOut(**_summary(share, base_url), **secret)


@route(bp, "/shares/{key}", methods=["DELETE"])
def delete_share(key: str):
    request = bp.current_request
    principal = identity.require_user(inputs.principal(request), "shares:write")
    with_export = inputs.flag(inputs.query(request), "exported_spikes", default=True)
    exported = share_deletion.delete_share(deps.share_files(), principal.user, key, with_export=with_export,
                                           presign_ttl_seconds=deps.settings().presign_ttl_seconds)
    return responses.ShareDeletedOut(exported_spikes=spikes.exported_for(principal, exported))
