"""The OpenAPI 3.1 reference, generated from the request models the views validate with and
the response models the views answer with (``responses``), plus one table saying what each
route is.

``tests/test_openapi.py`` fails when a route exists that this table does not describe,
``tests/test_response_models.py`` when a route's answer is not the model named here, and a
schemathesis run against the local server checks that the server keeps to the document.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any, Dict, List, Optional, Sequence, Tuple, Type, Union

from pydantic import BaseModel

from chalicelib import errors, limit_errors, web  # noqa: F401  limit_errors: its 429s are subclasses once imported
from chalicelib.api import (account_schemas, dashboard, fallback, keys, outbound_webhooks, schemas, shares,
                            spikes, versioning)
from chalicelib.api.responses import (AccountOut, ApiKeyChangedOut, ApiKeyCreatedOut, ApiKeyOut, ApiKeyRevokedOut, BillingUrlOut,
                                      DeletedOut, DeliveryPageOut, ExportOut, DevicePollOut, DeviceStartOut, ErrorOut,
                                      HealthOut, IndexOut, KeyMeOut, LinkedOut, LoginOut, LogoutOut,
                                      MessageOut, OkOut, PollOut, SessionOut, ShareCreatedOut, ShareDeletedOut,
                                      ShareListItemOut, ShareOut, ShareUpdatedOut, SpikeCreatedOut, SpikeOut,
                                      SpikePageOut, SpikeResolvedOut, StripeReceivedOut, TestSentOut, UsageOut,
                                      WebhookEventOut, WebhookOut, WebhookResumedOut, WebhookRotatedOut)
from chalicelib.api.schemas import ShareMetadata, ShareUpdate, UploadRequest
from chalicelib.services import claims, spike_by_id
from chalicelib.settings import API_TIMEOUT_SECONDS

# --- what each route is ----------------------------------------------------------------------

PUBLIC = "public"          # no credentials
USER = "user"              # a bearer token or an API key
USER_OR_NONE = "optional"  # works without credentials; more with them
ANYONE = "anyone"          # works without credentials; as a user, or as the admin with ?token=
USER_OR_ADMIN = "user-or-admin"  # a user's credential, or the admin token (?token= too)
READER = "reader"          # public with ?project=, else a user or the admin token
SESSION = "session"        # the account owner's signed-in session only: an API key gets 403

Query = Tuple[str, str, bool]  # (name, description, required)
CHECKOUT_QUERY = (("tier", "pro (default) or agent (metered, docs/agents.md)", False),)


@dataclass(frozen=True)
class Op:
    summary: str
    tag: str
    auth: str = USER
    body: Optional[Type[BaseModel]] = None
    body_media: str = "application/json"
    ok: Dict[int, Any] = field(default_factory=lambda: {200: OkOut})
    errors: Sequence[int] = ()
    query: Sequence[Query] = ()
    rate_limited: bool = False
    description: str = ""
    html_errors: Sequence[int] = ()  # pages for people answer their errors as pages too
    ok_headers: Sequence[str] = ()  # headers of components.headers a success may carry


HTML = "text/html"
SESSION_NOTE = ("Only the account owner's signed-in session (POST /auth/verify): an API key, "
                "as a bearer too, gets 403 SCOPE_DENIED.")


def _media_types(content_types) -> Tuple[str, ...]:
    """The media types of the Content-Type values a route sends (its assets' table)."""
    return tuple(sorted({content_type.split(";")[0].strip() for content_type in content_types}))

# The /spikes routes take any credential in ?token= (the CLI's push sends its token there).
SPIKE_TOKEN: Query = ("token", "The admin token (SPIKES_TOKEN) or a bearer token", False)
SPIKE_FILTERS: Tuple[Query, ...] = (
    ("project", "A project key or share id/slug: lists that project's public spikes, whoever asks (what a user "
                "posts with a credential under a key naming no share is theirs: listed without ?project=)", False),
    ("page", "Only spikes of this page (exactly, case included)", False),
    ("reviewer", "Only spikes by this reviewer id (exactly)", False),
    ("rating", "love, like, meh or no (any case)", False),
    ("resolved", "true or false (any case)", False),
    SPIKE_TOKEN,
    ("password", "The password of a protected share named by ?project= (or the X-Share-Password header); "
                 "tries are rate limited", False),
)

SPIKE_PROJECT = (("project", "The project key when the same id is in several of the caller's projects", False),
                 SPIKE_TOKEN)
# Numbers the descriptions state are the code's, so they cannot drift from what it does.
ID_PREFIX = (f"The Spikes CLI's MCP server (user agent `ureq/…`) may send the first "
             f"{spike_by_id.MIN_ID_PREFIX_CHARS} or more characters of an id (it shows 8): the one spike among the "
             f"caller's newest {spike_by_id.PREFIX_SEARCH_LIMIT:,} (and newest {spike_by_id.PREFIX_SEARCH_LIMIT:,} open "
             "ones) whose id starts with them; 409 CONFLICT when several do.")

OPERATIONS: Dict[Tuple[str, str], Op] = {
    ("GET", "/"): Op("Service name and health", "meta", PUBLIC, ok={200: IndexOut}),
    ("GET", "/health"): Op("Liveness for load balancers and monitors (touches no dependency)", "meta", PUBLIC,
                           ok={200: HealthOut}),
    ("GET", "/openapi.json"): Op("This document", "meta", PUBLIC, ok={200: (dict, "application/json")}),
    ("GET", "/docs"): Op("Interactive API reference", "meta", PUBLIC, ok={200: (str, HTML)}),
    ("GET", "/docs/{asset}"): Op("Assets of the interactive reference", "meta", PUBLIC,
                                 ok={200: (str, _media_types(kind for _, kind in web.DOCS_ASSETS.values()))},
                                 errors=(404,)),
    ("GET", "/dashboard"): Op("The share owners' dashboard (a page for people, on this API)", "meta", PUBLIC,
                              ok={200: (str, HTML)}),
    ("GET", "/dashboard/{name}"): Op("Modules and styles of the dashboard", "meta", PUBLIC,
                                     ok={200: (str, _media_types(dashboard.ASSET_TYPES.values()))}, errors=(404,)),
    # accounts
    ("POST", "/auth/login"): Op("Mail a magic link", "auth", PUBLIC, body=account_schemas.EmailRequest,
                                ok={200: LoginOut}, rate_limited=True),
    ("POST", "/auth/recover"): Op("Mail a recovery link", "auth", PUBLIC, body=account_schemas.EmailRequest,
                                  ok={200: MessageOut}, rate_limited=True),
    ("POST", "/auth/verify"): Op("Exchange a magic-link token for a bearer token", "auth", PUBLIC,
                                 body=account_schemas.VerifyRequest, ok={200: SessionOut}, errors=(401,),
                                 rate_limited=True),
    ("GET", "/auth/verify"): Op("The page a magic link opens", "auth", PUBLIC, ok={200: (str, HTML)}, html_errors=(400, 429),
                                rate_limited=True,
                                query=(("token", "The login token from the e-mail", False),)),
    ("POST", "/auth/rotate-token"): Op("Replace the calling bearer token", "auth", SESSION, ok={200: SessionOut}),
    ("POST", "/auth/logout"): Op("Sign out this bearer token, or with everywhere=true every session of the account",
                                 "auth", SESSION, body=account_schemas.LogoutRequest, ok={200: LogoutOut}),
    ("GET", "/me"): Op("The signed-in account (or API key)", "auth", ok={200: Union[AccountOut, KeyMeOut]}),
    ("PATCH", "/me"): Op("Set the account's monthly spending cap (agent tier; the owner's session only)", "auth",
                         SESSION, body=schemas.AccountPatchIn, ok={200: AccountOut}),
    ("GET", "/auth/poll"): Op("The CLI's wait for a magic link to be clicked", "auth", PUBLIC,
                              ok={200: PollOut, 202: PollOut}, errors=(401, 404), rate_limited=True,
                              query=(("email", "The address the link went to", False),
                                     ("poll_token", "From POST /auth/login", False))),
    ("POST", "/auth/device"): Op("Start the device flow", "auth", PUBLIC, ok={200: DeviceStartOut},
                                 rate_limited=True),
    ("GET", "/auth/device"): Op("The device-flow page", "auth", PUBLIC, ok={200: (str, HTML)}, rate_limited=True,
                                query=(("code", "The user code shown by the device", False),)),
    ("POST", "/auth/device/confirm"): Op("Confirm a device code by e-mail", "auth", PUBLIC,
                                         body=account_schemas.DeviceConfirmRequest, ok={200: MessageOut},
                                         errors=(404,), rate_limited=True),
    ("GET", "/auth/device/poll"): Op("The device's wait for approval", "auth", PUBLIC,
                                     ok={200: DevicePollOut, 202: DevicePollOut}, errors=(401, 404),
                                     rate_limited=True, query=(("device_code", "From POST /auth/device", False),)),
    ("POST", "/auth/api-key"): Op("Create an API key (without credentials: a key-only agent account)", "keys",
                                  USER_OR_NONE, body=schemas.KeyCreateIn, ok={201: ApiKeyCreatedOut},
                                  errors=(404, 409), rate_limited=True),
    ("GET", "/auth/api-keys"): Op("List the account's API keys, newest first, a page at a time", "keys",
                                  ok={200: (List[ApiKeyOut], None)}, ok_headers=("X-Next-Cursor",),
                                  description="A bare array (the CLI's `spikes auth list-keys` parses it); when more "
                                              "keys follow, the X-Next-Cursor header holds the cursor of the next "
                                              "page, absent on the last one.",
                                  query=(("limit", f"1-{keys.MAX_LIMIT}; default {keys.DEFAULT_LIMIT} "
                                                   f"({keys.MAX_LIMIT} for the Spikes CLI, user agent `ureq/…`, which "
                                                   "reads one page)", False),
                                         ("cursor", "X-Next-Cursor of the previous page", False))),
    ("DELETE", "/auth/api-key/{key_id}"): Op("Revoke an API key", "keys", ok={200: ApiKeyRevokedOut},
                                             errors=(404,)),
    ("PATCH", "/auth/api-key/{key_id}"): Op("Rename an API key, change its cap or expiry", "keys",
                                            body=schemas.KeyPatchIn, ok={200: ApiKeyChangedOut}, errors=(404, 409)),
    ("POST", "/auth/link-key"): Op("Claim a key-only account", "keys", SESSION, body=schemas.LinkKeyIn,
                                   ok={200: LinkedOut, 202: LinkedOut}, errors=(404, 409), rate_limited=True,
                                   description="202: the call's time ran out with some left; send the same call "
                                               "again until 200. 429 RATE_LIMIT: "
                                               f"{claims.CALLS_PER_MINUTE} calls a minute per account."),
    # spikes
    ("POST", "/spikes"): Op("Record a feedback item (the widget; with credentials, as their owner)", "spikes",
                            ANYONE, body=schemas.SpikeIn,
                            ok={201: SpikeCreatedOut}, errors=(403, 404, 409),
                            rate_limited=True, query=(SPIKE_TOKEN,)),
    ("GET", "/spikes"): Op("List feedback, newest first", "spikes", READER,
                           ok={200: Union[SpikePageOut, List[SpikeOut]]}, errors=(404,),  # a protected share
                           ok_headers=("X-Next-Cursor",),  # the bare array's
                           rate_limited=True,  # feedback not the caller's, and the password of a protected share
                           description="The CLI's push (user agent `ureq/…`, `?token=`, no Authorization "
                                       f"header) gets a bare JSON array of up to {spikes.MAX_PUSH_LISTING:,} "
                                       "(docs/clients.md); when more follow, X-Next-Cursor holds where it "
                                       "ended. 429 RATE_LIMIT: SPIKES_RATE_LISTINGS_PER_MINUTE "
                                       "listings a minute per client network of feedback not the caller's, with "
                                       "a credential or without (the owner and the admin are not counted). A page "
                                       "may hold fewer items than limit, even none, with a next_cursor, when a "
                                       "filter matches little and the request's time runs short, or, unless "
                                       "the caller owns the project's share (or is the admin), once its reads "
                                       f"evaluated {spikes.ANONYMOUS_READ_ITEMS:,} spikes: follow next_cursor "
                                       "until null.",
                           query=SPIKE_FILTERS + (("limit", f"1-{spikes.MAX_LIMIT}; default {spikes.DEFAULT_LIMIT} "
                                                   f"({spikes.MAX_LIMIT} for the Spikes CLI and MCP server, user agent "
                                                   "`ureq/…`, which read one page)", False),
                                                  ("cursor", "next_cursor of the previous page", False))),
    ("GET", "/spikes/export"): Op("Export feedback as CSV or JSON lines", "spikes", READER,
                                  ok={200: (str, ("text/csv", "application/x-ndjson")), 303: None}, errors=(404, 409),
                                  rate_limited=True,  # every export, and a protected share's password
                                  description="409 EXPORT_TOO_LARGE: more to read than one request has time for "
                                              f"({API_TIMEOUT_SECONDS} s); one project at a time may fit. Unless "
                                              "the caller owns the project's share (or is the admin), also once "
                                              f"its reads evaluated {spikes.ANONYMOUS_EXPORT_ITEMS:,} spikes: "
                                              "page GET /spikes?project= instead. 409 CONFLICT (one's own "
                                              "feedback, no ?project=): a claim (POST /auth/link-key) is moving "
                                              "feedback into the account, or moved some while the export read; "
                                              "export again once the claim answered 200. "
                                              "429 RATE_LIMIT: SPIKES_RATE_EXPORTS_PER_MINUTE exports a minute per "
                                              "account (signed in, or a key with spikes:read), per client network "
                                              "otherwise; a call refused without a read (403, 401, 400) is "
                                              "not counted.",
                                  query=SPIKE_FILTERS + (("format", "csv (default) or jsonl", False),)),
    ("POST", "/exports"): Op("Start a background export (for exports GET /spikes/export cannot finish)", "spikes",
                             READER, body=schemas.ExportIn, ok={202: ExportOut}, errors=(404, 409), rate_limited=True,
                             description="Reads and stores the export over as many runs as it needs; a small one "
                                         "is done in the answer already. Poll the Location (GET /exports/{id}) until "
                                         "status is done, then download download_url (status failed, with "
                                         "error, once an export of a project whose share the caller does not own "
                                         f"read {spikes.ANONYMOUS_EXPORT_ITEMS:,} spikes, or once an export of "
                                         "one's own feedback read while a claim moved some). 409 CONFLICT: a claim "
                                         "(POST /auth/link-key) is moving feedback into the account; start again "
                                         "once it answered 200. Counts against "
                                         "SPIKES_RATE_EXPORTS_PER_MINUTE with GET /spikes/export. 429 EXPORT_LIMIT "
                                         "(with limit and Retry-After): SPIKES_MAX_RUNNING_EXPORTS of the caller's "
                                         "are running (per account, or per client network as the rate counts); "
                                         "start again once one is done. Readable only by "
                                         "who started it: the same account (an API key: that key), or without "
                                         "an account the same ?project= and password.",
                             query=SPIKE_FILTERS + (("format", "csv (default) or jsonl", False),)),
    ("GET", "/exports/{export_id}"): Op("A background export: its progress, and its download link once done",
                                        "spikes", READER, ok={200: ExportOut}, errors=(404,),
                                        rate_limited=True,  # a protected share's password
                                        description="404 for an id unknown, expired, or started by another "
                                                    "caller, and once the access it was started with is gone "
                                                    "(the share deleted, made private, or its password "
                                                    "changed, or removed when a password opened it): each "
                                                    "read asks again. Without an account, pass "
                                                    "the ?project= (and password) it was started with; an "
                                                    "export started with a share's password needs it on every "
                                                    "read, signed in or not.",
                                        query=(SPIKE_FILTERS[0], SPIKE_TOKEN) + SPIKE_FILTERS[-1:]),
    ("GET", "/spikes/{spike_id}"): Op("One feedback item", "spikes", USER_OR_ADMIN, ok={200: SpikeOut},
                                      errors=(404, 409), query=SPIKE_PROJECT),
    ("PATCH", "/spikes/{spike_id}"): Op("Resolve or reopen a feedback item", "spikes", USER_OR_ADMIN,
                                        body=schemas.ResolveIn, ok={200: SpikeResolvedOut}, errors=(404, 409),
                                        query=SPIKE_PROJECT, description=ID_PREFIX),
    ("DELETE", "/spikes/{spike_id}"): Op("Delete a feedback item", "spikes", USER_OR_ADMIN, ok={200: DeletedOut},
                                         errors=(404, 409), query=SPIKE_PROJECT, description=ID_PREFIX),
    # shares
    ("POST", "/shares"): Op("Create a share from a multipart upload", "shares", body=ShareMetadata,
                            body_media="multipart/form-data", ok={201: ShareCreatedOut}, errors=(409,),
                            rate_limited=True,
                            description="Parts: `metadata` (JSON: the ShareMetadata schema) and one part per "
                                        "file, under any field name (the CLI's `files`, the contract's `file`), "
                                        "whose filename is the file's path in the folder (`css/site.css`)."),
    ("POST", "/shares/uploads"): Op("Start a share uploaded straight to S3 (large shares)", "shares",
                                    body=UploadRequest, ok={201: ShareCreatedOut}, errors=(409,),
                                    rate_limited=True),
    ("POST", "/shares/{key}/complete"): Op("Finish a share started with POST /shares/uploads", "shares",
                                           ok={200: ShareCreatedOut}, errors=(404, 409, 429), rate_limited=True),
    ("GET", "/shares"): Op("List the caller's shares, newest first", "shares", ok={200: (List[ShareListItemOut], None)},
                           ok_headers=("X-Next-Cursor",),
                           description="A bare array (the Spikes CLI's `shares` parses it, and never pages): "
                                       f"without limit as many shares as one answer carries (up to "
                                       f"{shares.MAX_LISTED:,}). It ends early when it would outweigh the "
                                       "answer or the request's time runs short, and may then hold fewer "
                                       "shares than limit, even none; when more follow, the X-Next-Cursor "
                                       "header holds where it ended (absent at the end): pass it as ?cursor=. "
                                       "429 RATE_LIMIT: SPIKES_RATE_SHARE_LISTINGS_PER_MINUTE units a minute "
                                       "per account: one a call, and one per 100 shares it lists past "
                                       "the first 100.",
                           rate_limited=True,
                           query=(("limit", f"1-{shares.MAX_LISTED:,}; default: as many as fit", False),
                                  ("cursor", "X-Next-Cursor of the previous answer", False))),
    ("GET", "/shares/{key}"): Op("One share with its feedback", "shares", ok={200: ShareOut}, errors=(404, 409),
                                 rate_limited=True,  # with its feedback, an export (352)
                                 description="409 EXPORT_TOO_LARGE: more feedback than one answer carries; "
                                             "GET /spikes/export?project={id} hands it over. 429 RATE_LIMIT: "
                                             "with its feedback, an export on SPIKES_RATE_EXPORTS_PER_MINUTE "
                                             "(per account signed in or with spikes:read, per client network "
                                             "for a key without it); ?exported_spikes=false is not counted.",
                                 query=(("exported_spikes", "true (default) or false (any case; anything else is "
                                         "400): false answers without the feedback (exported_spikes empty, "
                                         "spike_count the share's counted total; no spike is read)", False),)),
    ("PATCH", "/shares/{key}"): Op("Rename a share, set or remove its password or webhook URL", "shares",
                                   body=ShareUpdate, ok={200: ShareUpdatedOut}, errors=(404, 409)),
    ("DELETE", "/shares/{key}"): Op("Delete a share (its feedback is returned)", "shares",
                                    ok={200: ShareDeletedOut}, errors=(404, 409),
                                    query=(("exported_spikes", "true (default) or false (any case; anything else is "
                                            "400, nothing deleted): false deletes without answering the feedback "
                                            "(needed when it is too large for one answer: 409 EXPORT_TOO_LARGE)",
                                            False),)),
    # outbound webhooks
    ("GET", "/shares/{key}/webhook"): Op("The share's webhook: URL, events, paused or not", "webhooks",
                                         ok={200: WebhookOut}, errors=(404,)),
    ("POST", "/shares/{key}/webhook/rotate"): Op(
        "Rotate the signing secret (the old one keeps signing for the grace period)", "webhooks",
        ok={200: WebhookRotatedOut}, errors=(404,)),
    ("POST", "/shares/{key}/webhook/test"): Op("Send a webhook.test event now and report the receiver's answer",
                                               "webhooks", ok={200: TestSentOut}, errors=(403, 404),
                                               rate_limited=True),
    ("POST", "/shares/{key}/webhook/resume"): Op("Resume a paused webhook; held events are delivered", "webhooks",
                                                 ok={200: WebhookResumedOut}, errors=(403, 404)),
    ("GET", "/shares/{key}/webhook/deliveries"): Op("Recent deliveries, newest first", "webhooks",
                                                    ok={200: DeliveryPageOut}, errors=(404,),
                                                    query=(("limit", f"1-{outbound_webhooks.MAX_LIST} (more is read as "
                                                                     f"{outbound_webhooks.MAX_LIST}); default "
                                                                     f"{outbound_webhooks.DEFAULT_LIST}", False),)),
    ("GET", "/widget.js"): Op("The feedback widget", "shares", PUBLIC, ok={200: (str, "application/javascript")}),
    # billing
    ("GET", "/billing/checkout"): Op("A Stripe Checkout session for Pro or the agent tier", "billing", SESSION,
                                     ok={200: BillingUrlOut}, errors=(404,), query=CHECKOUT_QUERY),
    ("POST", "/billing/checkout"): Op("A Stripe Checkout session for Pro or the agent tier", "billing", SESSION,
                                      ok={200: BillingUrlOut}, errors=(404,), query=CHECKOUT_QUERY),
    ("GET", "/billing/portal"): Op("A Stripe Customer Portal session", "billing", SESSION, ok={200: BillingUrlOut},
                                   errors=(404,)),
    ("POST", "/billing/portal"): Op("A Stripe Customer Portal session", "billing", SESSION, ok={200: BillingUrlOut},
                                    errors=(404,)),
    ("GET", "/usage"): Op("The account's usage this period", "billing", ok={200: UsageOut}),
    ("POST", "/webhooks/stripe"): Op("Stripe's events (signed with Stripe-Signature)", "billing", PUBLIC,
                                     ok={200: StripeReceivedOut}),
    ("POST", "/webhooks/stripe/meter-errors"): Op(
        "Stripe's event destination: meter events found invalid after accepting them (thin events, signed with "
        "Stripe-Signature)", "billing", PUBLIC, ok={200: StripeReceivedOut}),
}

SHARE_PAGE = Op("A shared page or file (the widget is injected into HTML)", "serving", PUBLIC,
                ok={200: (str, HTML), 206: None, 302: None, 303: None, 304: None, 416: None},
                errors=(401, 403, 404),  # 403 SHARE_UNAVAILABLE: a locked share (password without Pro)
                rate_limited=True,  # password tries
                query=(("pw", "The password of a protected share (answered with a redirect and a cookie)", False),),
                description="A protected share takes its password as the form field `password` (POST) or `?pw=`. "
                            "A binary file answers one byte range of a GET (`Range`, `If-Range`): `206`, or `416` "
                            "when it starts past the end (docs/shares.md).")



def headers_of(get: Op, unanswered: Sequence[int] = ()) -> Op:
    """HEAD on a read route (api/routing.READ_METHODS) runs its GET: the GET's statuses and
    headers, no body (``unanswered``: statuses only a GET gets)."""
    return replace(get, summary=f"{get.summary} (HEAD: the GET's status and headers, no body)",
                   ok={status: None for status in get.ok if status not in unanswered})


SHARE_PAGE_HEAD = headers_of(SHARE_PAGE, unanswered=(206, 416))  # a HEAD ignores Range

# Where the Chalice route says one thing and the document another.
COMMON_ERRORS = (400, 413, 415, 500, 503)  # 500 INTERNAL_ERROR: the contract's "Server error"
AUTH_ERRORS = (401, 403)


def _is_share_page(path: str) -> bool:
    return path == "/s/{slug}" or path.startswith("/s/{slug}/")


def _share_page_paths(routes) -> List[str]:
    return [path for path in routes if _is_share_page(path)]


def _unversioned(path: str) -> str:
    return (path[len(versioning.PREFIX):] or "/") if versioning.is_versioned(path) else path


def described(method: str, path: str) -> Optional[Op]:
    path = _unversioned(path)
    if _is_share_page(path):
        return {"GET": SHARE_PAGE, "POST": SHARE_PAGE, "HEAD": SHARE_PAGE_HEAD}.get(method)
    if method == "HEAD" and ("GET", path) in OPERATIONS:
        return headers_of(OPERATIONS["GET", path])
    return OPERATIONS.get((method, path))


def listed(method: str, path: str) -> bool:
    """Whether the document lists the operation. The HEAD of a page, document or asset runs its
    GET and is stated once in the description instead: listed one by one, they took the
    document past what Swagger UI (5.35) renders at /docs, which stopped after a handful of
    operations once the document held about 145. Share pages and /widget.js list theirs."""
    path = _unversioned(path)
    return method != "HEAD" or path == "/widget.js" or _is_share_page(path)


# --- generation ------------------------------------------------------------------------------

class _Components:
    def __init__(self) -> None:
        self.schemas: Dict[str, Any] = {}

    def ref(self, model: Type[BaseModel]) -> Dict[str, Any]:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}",
                                         mode="validation" if model.__name__.endswith(("In", "Request", "Metadata",
                                                                                      "Update"))
                                         else "serialization")
        for name, sub in schema.pop("$defs", {}).items():
            self.schemas.setdefault(name, sub)
        self.schemas.setdefault(model.__name__, schema)
        return {"$ref": f"#/components/schemas/{model.__name__}"}

    def schema_for(self, shape: Any) -> Dict[str, Any]:
        if isinstance(shape, type) and issubclass(shape, BaseModel):
            return self.ref(shape)
        origin = getattr(shape, "__origin__", None)
        if origin is Union:
            return {"anyOf": [self.schema_for(option) for option in shape.__args__]}
        if origin in (list, List):
            return {"type": "array", "items": self.schema_for(shape.__args__[0])}
        if shape is dict:
            return {"type": "object"}
        return {"type": "string"}


def _rate_limit_headers() -> Dict[str, Any]:
    return {
        "X-RateLimit-Limit": {"$ref": "#/components/headers/X-RateLimit-Limit"},
        "X-RateLimit-Remaining": {"$ref": "#/components/headers/X-RateLimit-Remaining"},
        "X-RateLimit-Reset": {"$ref": "#/components/headers/X-RateLimit-Reset"},
    }


def _retry_after(status: int) -> Dict[str, Any]:
    return {"Retry-After": {"$ref": "#/components/headers/Retry-After"}} if status in (429, 503) else {}


def _security(auth: str) -> List[Dict[str, List[str]]]:
    user = [{"bearerAuth": []}, {"apiKeyHeader": []}]
    if auth == PUBLIC:
        return []
    if auth == USER:
        return user
    if auth == SESSION:
        return [{"bearerAuth": []}]
    if auth == USER_OR_NONE:
        return [{}] + user
    if auth == USER_OR_ADMIN:
        return user + [{"adminToken": []}]
    return [{}] + user + [{"adminToken": []}]


def _operation(components: _Components, method: str, path: str, op: Op) -> Dict[str, Any]:
    operation_id = (method.lower() + "_" + "_".join(
        part.strip("{}").replace("-", "_").replace(".", "_") for part in path.strip("/").split("/") if part)) or "root"
    doc: Dict[str, Any] = {"summary": op.summary, "operationId": operation_id, "tags": [op.tag],
                           "security": _security(op.auth)}
    description = " ".join(part for part in (op.description, SESSION_NOTE if op.auth == SESSION else "") if part)
    if description:
        doc["description"] = description
    parameters = [{"name": name.strip("{}"), "in": "path", "required": True, "schema": {"type": "string"}}
                  for name in path.split("/") if name.startswith("{")]
    parameters += [{"name": name, "in": "query", "required": required, "description": description,
                    "schema": {"type": "string"}} for name, description, required in op.query]
    parameters.append({"$ref": "#/components/parameters/RequestId"})
    if op.auth == READER:
        parameters.append({"$ref": "#/components/parameters/SharePassword"})
    doc["parameters"] = parameters
    if op.body is not None:
        schema = components.ref(op.body)
        if op.body_media == "multipart/form-data":
            schema = {"type": "object", "properties": {
                "metadata": {"type": "string", "description": "JSON: " + op.body.__name__},
                "file": {"type": "array", "items": {"type": "string", "format": "binary"}}}}
        doc["requestBody"] = {"required": op.body_media != "application/json" or _has_required(op.body),
                              "content": {op.body_media: {"schema": schema}}}
    responses: Dict[str, Any] = {}
    headers = {"X-Request-Id": {"$ref": "#/components/headers/X-Request-Id"}}
    if op.rate_limited:
        headers.update(_rate_limit_headers())
    for status, shape in op.ok.items():
        response: Dict[str, Any] = {"description": _reason(status), "headers": {
            **headers, **{name: {"$ref": f"#/components/headers/{name}"} for name in op.ok_headers}}}
        if shape is not None:
            media = "application/json"
            if isinstance(shape, tuple):
                shape, media = shape
                media = media or "application/json"
            medias = media if isinstance(media, tuple) else (media,)
            response["content"] = {each: {"schema": components.schema_for(shape)} for each in medias}
        responses[str(status)] = response
    statuses = set(COMMON_ERRORS) | set(op.errors) | {405}
    if op.auth != PUBLIC:
        statuses |= set(AUTH_ERRORS)
    if op.rate_limited:
        statuses.add(429)
    for status in sorted(statuses):
        if status in op.html_errors:
            responses[str(status)] = {"description": _reason(status), "headers": dict(headers),
                                      "content": {HTML: {"schema": {"type": "string"}}}}
        elif op.rate_limited and status != 429:
            # A refusal after the limit was counted reports the budget too.
            responses[str(status)] = {"description": _reason(status), "headers": {**headers, **_retry_after(status)},
                                      "content": {"application/json": {"schema": components.ref(ErrorOut)}}}
        else:
            responses[str(status)] = {"$ref": f"#/components/responses/Error{status}"}
    doc["responses"] = responses
    return doc


def _has_required(model: Type[BaseModel]) -> bool:
    return any(info.is_required() for info in model.model_fields.values())


REASONS = {200: "OK", 201: "Created", 202: "Accepted, not finished yet", 302: "Redirect", 303: "See other",
           304: "Not modified", 400: "Bad request (VALIDATION_ERROR, INVALID_JSON, ...)",
           401: "Missing or invalid credentials", 403: "Not allowed (SCOPE_DENIED, UPGRADE_REQUIRED, ...)",
           404: "Not found", 405: "Method not allowed", 409: "Conflict", 413: "Body too large",
           415: "Unsupported media type", 429: "Rate or usage limit (see Retry-After)",
           500: "Server error (INTERNAL_ERROR)", 503: "A dependency is unavailable; retry after Retry-After"}


def _reason(status: int) -> str:
    return REASONS.get(status, "Response")


def _error_codes() -> List[Tuple[str, int]]:
    """Every (code, status) answered: a code may come with two (BILLING_NOT_CONFIGURED: 404,
    and 503 from the Stripe webhook). Found as subclasses of ``SpikesError``: every module that
    defines some is imported here (``limit_errors`` too), since a route loads its services on
    first use only and a class not yet imported is no subclass yet."""
    seen = set()
    stack = [errors.SpikesError]
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        seen.add((cls.code, cls.status))
    return sorted(seen, key=lambda item: (item[1], item[0]))


DESCRIPTION = """The Spikes API: shares, magic-link accounts, API keys, feedback ("spikes"), billing and
outbound webhooks.

Every route is served under `/v1/...` (the stable path) and unversioned (for existing clients).
Every page, document and asset that answers `GET` (`/`, `/health`, `/openapi.json`, `/docs`,
`/dashboard`, `/auth/verify`, `/auth/device`, share pages, `/widget.js`) answers `HEAD` with the
`GET`'s status and headers and no body; other routes answer `HEAD` with `405`.
Every response carries `X-Request-Id` (send your own to correlate). Rate-limited routes carry
`X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset` (epoch seconds); a 429
also carries `Retry-After`.
A query parameter a route does not list is ignored, on every route, and one sent twice counts
once, with its last value: check the spelling (`GET /spikes?projct=x` with a credential lists
all the caller's feedback, unfiltered).

Errors share one envelope: `{"error", "code", "details"?, "request_id"}`. Codes:

| code | status |
|---|---|
"""


def build(base_url: str, routes: Dict[str, Dict[str, Any]]) -> Dict[str, Any]:
    """The document for the routes ``routes`` (``app.routes``), served at ``base_url``."""
    components = _Components()
    paths: Dict[str, Dict[str, Any]] = {}
    for path, views in routes.items():
        for method, entry in sorted(views.items()):
            op = None if fallback.is_fallback(entry) or not listed(method, path) else described(method, path)
            if op is None:
                continue
            paths.setdefault(path, {})[method.lower()] = _operation(
                components, method, path, op)
    error_responses = {
        f"Error{status}": {"description": _reason(status), "headers": {
            "X-Request-Id": {"$ref": "#/components/headers/X-Request-Id"},
            **_retry_after(status),
            **(_rate_limit_headers() if status == 429 else {})},
            "content": {"application/json": {"schema": components.ref(ErrorOut)}}}
        for status in (400, 401, 403, 404, 405, 409, 413, 415, 429, 500, 503)}
    codes = "\n".join(f"| `{code}` | {status} |" for code, status in _error_codes())
    return {
        "openapi": "3.1.0",
        "info": {"title": "Spikes API", "version": "1", "description": DESCRIPTION + codes + "\n"},
        "servers": [{"url": base_url}],
        "tags": [{"name": name} for name in ("spikes", "shares", "webhooks", "auth", "keys", "billing", "serving",
                                              "meta")],
        "paths": paths,
        "webhooks": _outbound_webhooks(components),
        "components": {
            "schemas": components.schemas,
            "responses": error_responses,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer",
                               "description": "A session token (POST /auth/verify) or an API key"},
                "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                                 "description": "An API key (sk_spikes_...)"},
                "adminToken": {"type": "apiKey", "in": "query", "name": "token",
                               "description": "The server's admin token (SPIKES_TOKEN)"},
            },
            "parameters": {"RequestId": {"name": "X-Request-Id", "in": "header", "required": False,
                                         "description": "Your id for this request (8-128 of A-Z a-z 0-9 . _ : -)",
                                         "schema": {"type": "string"}},
                           "SharePassword": {"name": "X-Share-Password", "in": "header", "required": False,
                                             "description": "The password of a protected share named by ?project=",
                                             "schema": {"type": "string"}}},
            "headers": {
                "X-Request-Id": {"description": "The request's id (yours when sane)", "schema": {"type": "string"}},
                "Retry-After": {"description": "Seconds to wait", "schema": {"type": "string"}},
                "X-RateLimit-Limit": {"description": "Requests allowed in the window", "schema": {"type": "string"}},
                "X-RateLimit-Remaining": {"description": "Requests left in the window",
                                          "schema": {"type": "string"}},
                "X-RateLimit-Reset": {"description": "Epoch seconds when the window ends; with none left, "
                                                     "when a request is let through again",
                                      "schema": {"type": "string"}},
                "X-Next-Cursor": {"description": "The next page's cursor (pass it as ?cursor=); absent on the "
                                                 "last page", "schema": {"type": "string"}},
            },
        },
    }


WEBHOOK_HEADERS = (
    ("X-Spikes-Event", "The event's type"),
    ("X-Spikes-Delivery", "This delivery's id (GET /shares/{key}/webhook/deliveries)"),
    ("X-Spikes-Event-Id", "The event's id, as in the body: deduplicate on it"),
    ("X-Spikes-Signature", "t=<unix>,v1=<hex HMAC-SHA256(secret, \"{t}.{body}\")>; during a rotation's grace "
                           "period one v1 per valid secret (docs/webhooks.md)"),
)


def _outbound_webhooks(components: _Components) -> Dict[str, Any]:
    """What a share's webhook URL receives (Pro): one POST per event, retried until a 2xx."""
    described = {
        "spike.created": "A spike was posted to the share",
        "spike.resolved": "A spike of the share was resolved",
        "share.deleted": "The share was deleted",
        "webhook.test": "Sent by POST /shares/{key}/webhook/test",
    }
    return {event_type: {"post": {
        "summary": summary, "operationId": "webhook_" + event_type.replace(".", "_"), "tags": ["webhooks"],
        "parameters": [{"name": name, "in": "header", "required": True, "description": description,
                        "schema": {"type": "string"}} for name, description in WEBHOOK_HEADERS],
        "requestBody": {"required": True, "content": {"application/json": {"schema": components.ref(WebhookEventOut)}}},
        "responses": {"2XX": {"description": "Received. Anything else (or no answer within the timeout) is retried "
                                             "with backoff for 24 hours"}},
    }} for event_type, summary in described.items()}


_cache: Dict[Tuple[str, int], str] = {}


def document_json(base_url: str, routes: Dict[str, Dict[str, Any]]) -> str:
    """The document as JSON, built once per base URL (the route table does not change)."""
    key = (base_url, len(routes))
    if key not in _cache:
        if len(_cache) > 16:
            _cache.clear()
        _cache[key] = json.dumps(build(base_url, routes), separators=(",", ":"))
    return _cache[key]
