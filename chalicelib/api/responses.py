"""Response models: every JSON answer is one of these (or a ``Preshaped`` body checked against
one), dumped by ``routing.json_response``; ``openapi`` describes the routes with the same
models, so the document and the answers cannot drift apart.

The wire format is the contract's and the real clients' (docs/clients.md), to the byte:
fields are declared in the order they are sent; a field made with ``omitted()`` is left out
when it is None (the CLI tells a missing key from a null), one made with ``optional()`` is
left out unless the view gave it (then it may be null); every other field is always sent.
A model that starts with another model's fields lists that model last among its bases.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Dict, FrozenSet, List, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, model_serializer


def _never_null(schema: Dict[str, Any]) -> None:
    """A field ``omitted()`` is absent or a value, never null: so the document says."""
    schema.pop("default", None)
    branches = [branch for branch in schema.get("anyOf", ()) if branch != {"type": "null"}]
    if "anyOf" in schema and len(branches) == 1:
        del schema["anyOf"]
        schema.update(branches[0])


def omitted(**kwargs: Any) -> Any:
    """A field that is left out of the answer when it is None."""
    return Field(default=None, json_schema_extra=_never_null, **kwargs)


def _may_be_absent(schema: Dict[str, Any]) -> None:
    schema.pop("default", None)


def optional(**kwargs: Any) -> Any:
    """A field that is left out of the answer unless the view set it (to a value or to None)."""
    return Field(default=None, json_schema_extra=_may_be_absent, **kwargs)


def _document(schema: Dict[str, Any], model: type) -> None:
    # Open for clients (a new field is not a breaking change); construction forbids unknown
    # fields, so nothing undocumented is sent. Omitted fields are optional.
    schema.pop("additionalProperties", None)
    required = [name for name in schema.get("required", ())
                if name not in model.__omitted__ and name not in model.__optional__]
    if required:
        schema["required"] = required
    else:
        schema.pop("required", None)


class Out(BaseModel):
    """A JSON response body."""
    # defer_build: the validators are built on first use, not on a cold start's import.
    model_config = ConfigDict(extra="forbid", defer_build=True, json_schema_extra=_document,
                              json_schema_serialization_defaults_required=True)
    __omitted__: ClassVar[FrozenSet[str]] = frozenset()
    __optional__: ClassVar[FrozenSet[str]] = frozenset()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls.__omitted__ = frozenset(name for name, info in cls.model_fields.items()
                                    if info.json_schema_extra is _never_null)
        cls.__optional__ = frozenset(name for name, info in cls.model_fields.items()
                                     if info.json_schema_extra is _may_be_absent)

    @model_serializer(mode="wrap")
    def _leave_out_absent(self, serialize):  # no return annotation: it would replace the schema
        data = serialize(self)
        for name in self.__omitted__:
            if name in data and data[name] is None:
                del data[name]
        for name in self.__optional__:
            if name not in self.model_fields_set:
                data.pop(name, None)
        return data

    def wire(self) -> Any:
        return self.model_dump()


@dataclass(frozen=True)
class Preshaped:
    """A body already in the wire shape of ``shape`` (a model, or ``List[model]``), sent as it
    is. Only for the spike listing, whose items come from ``services.spikes.to_client``:
    validating a thousand items would cost more than the query; and for GET /shares, whose
    items were made by the model and measured as JSON (services/share_listing.py). The document describes it
    with ``shape``; with ``CHECKS.preshaped`` on (the test suite), every body is validated
    against it on the way out."""
    shape: Any
    body: Any
    text: Optional[str] = None  # ``body`` serialized already (compact), sent as it is


@dataclass
class Checks:
    preshaped: bool = False


CHECKS = Checks()


# --- common ----------------------------------------------------------------------------------

class OkOut(Out):
    ok: bool = True


class MessageOut(OkOut):
    message: str


class IndexOut(Out):
    name: str
    ok: bool = True
    openapi: str = Field(description="The OpenAPI 3.1 document: every route, its inputs, answers and error codes")
    docs: str = Field(description="The same, rendered for people")
    dashboard: str = Field(description="The share owners' dashboard")


class HealthOut(Out):
    ok: bool = True
    status: str


class ErrorDetail(Out):
    field: str
    message: str
    code: str


class ErrorOut(Out):
    """The error envelope of every failure; the fields after ``details`` come with some codes."""
    error: str
    code: str = Field(description="Stable machine-readable code; see the table in the description")
    details: Optional[List[ErrorDetail]] = omitted(description="VALIDATION_ERROR: what is wrong, field by field")
    required_scope: Optional[str] = omitted(description="SCOPE_DENIED: the scope the API key lacks")
    max_bytes: Optional[int] = omitted(description="SIZE_LIMIT: the largest accepted size")
    retry_after: Optional[int] = omitted(description="429 and 503: seconds to wait (also in Retry-After)")
    upgrade_url: Optional[str] = omitted(description="SHARE_LIMIT, SPIKE_LIMIT: where to upgrade")
    limit: Optional[int] = omitted(description="SHARE_LIMIT, SPIKE_LIMIT, KEY_LIMIT, EXPORT_LIMIT: the limit reached")
    cap: Optional[str] = omitted(description="BUDGET_EXCEEDED: whose cap, account or key")
    monthly_cap_cents: Optional[int] = omitted(description="BUDGET_EXCEEDED: the cap reached (only to the account's own credentials)")
    period_ends: Optional[str] = omitted(description="BUDGET_EXCEEDED: when the period ends")
    request_id: str


# --- accounts --------------------------------------------------------------------------------

class LoginOut(MessageOut):
    poll_token: str
    code: str  # what the mail and the approval page show (docs/security.md, finding 3)


class LogoutOut(OkOut):
    everywhere: bool


class UserOut(Out):
    id: str
    email: str
    tier: str


class SessionOut(OkOut):
    token: str
    user: UserOut


class PollOut(Out):
    verified: bool
    token: Optional[str] = omitted()
    user: Optional[UserOut] = omitted()


class DeviceStartOut(Out):
    device_code: str
    user_code: str
    verification_url: str
    verification_uri_complete: str
    expires_in: int
    interval: int


class DevicePollOut(Out):
    status: str = Field(description="pending or complete")
    token: Optional[str] = omitted()
    user: Optional[UserOut] = omitted()


class AccountOut(Out):
    """GET /me with a session (the CLI's whoami reads email and tier), and PATCH /me's answer."""
    id: str
    email: Optional[str] = Field(description="null for a key-only account (an agent's self-signup) until claimed")
    tier: str
    created_at: Optional[str]
    monthly_cap_cents: Optional[int] = Field(description="Agent tier: the account's monthly spending cap")


# --- API keys --------------------------------------------------------------------------------

class ApiKeyOut(Out):
    """A key as GET /auth/api-keys lists it (the CLI's ApiKeyEntry, which needs key_prefix and
    created_at as strings: a null fails its whole listing)."""
    key_id: str
    key_prefix: str
    name: Optional[str]
    scopes: str = Field(description="read, write or full (or a space-separated list of scopes)")
    monthly_cap_cents: Optional[int]
    revoked_at: Optional[str]
    expires_at: Optional[str]
    created_at: str
    last_used_at: Optional[str]


class _CreatedKeyHead(OkOut):
    api_key: str = Field(description="The key itself, shown this once")


class ApiKeyCreatedOut(ApiKeyOut, _CreatedKeyHead):
    account_id: str


class ApiKeyChangedOut(ApiKeyOut, OkOut):
    pass


class ApiKeyRevokedOut(OkOut):
    key_id: str
    revoked_at: Optional[str]


class KeyUsageOut(Out):
    key_id: str
    period: str
    spikes: int
    shares: int
    cost_this_period_cents: int
    monthly_cap_cents: Optional[int]


class KeyMeOut(ApiKeyOut):
    """GET /me with an API key: the key (the MCP server reads ``scopes`` before writing) and its account."""
    credential: Literal["api_key"]
    id: str
    email: Optional[str] = Field(description="null for a key-only account until it is claimed (\"\" for the Spikes "
                                             "CLI, user agent `ureq/…`, whose whoami reads a string)")
    tier: str
    account_created_at: Optional[str]
    claimable: bool
    usage: Optional[KeyUsageOut] = optional(description="The key's usage this period")


# --- billing ---------------------------------------------------------------------------------

class BillingUrlOut(Out):
    url: Optional[str] = Field(description="null when there is nothing to pay for (see message)")
    message: Optional[str] = omitted()


class UsageOut(Out):
    spikes: int
    spike_limit: Optional[int]
    shares: int
    share_limit: Optional[int]
    tier: str
    period: str
    reset_at: str
    cost_this_period_cents: Optional[int] = optional(description="Agent tier: charged this period")
    monthly_cap_cents: Optional[int] = optional(description="Agent tier: the account's cap (null: none)")
    period_ends: Optional[str] = optional(description="Agent tier: when the period ends")
    price_per_spike_cents: Optional[float] = optional(description="Agent tier")
    price_per_share_cents: Optional[float] = optional(description="Agent tier")
    key: Optional[KeyUsageOut] = optional(description="Called with an API key: that key's usage")


class StripeReceivedOut(Out):
    received: bool
    outcome: str = Field(description="applied, ignored, duplicate, stale or unknown-user (the event destination's: "
                                     "applied, ignored or duplicate)")


class MovedOut(Out):
    keys: int
    shares: int
    spikes: int


class LinkedOut(OkOut):
    user_id: str
    claimed_account_id: str = Field(description="The key-only account whose keys, shares and spikes moved")
    moved: MovedOut
    complete: bool = Field(description="false (with 202): the call's time ran out with some left; "
                                       "the same call again moves the rest")


# --- spikes ----------------------------------------------------------------------------------

class ReviewerOut(Out):
    id: str
    name: str
    email: Optional[str] = omitted()


class BoxOut(Out):
    # An element's place in the document: left of or above its origin is negative.
    x: int
    y: int
    width: int = Field(ge=0)
    height: int = Field(ge=0)


class ViewportOut(Out):
    width: int = Field(ge=0)
    height: int = Field(ge=0)


class SpikeOut(Out):
    """A feedback item as the CLI and the MCP server parse it (strictly: one bad item fails a pull)."""
    id: str
    type: Literal["page", "element"]
    projectKey: str
    page: str
    url: str
    comments: str
    timestamp: str
    reviewer: ReviewerOut
    rating: Optional[Literal["love", "like", "meh", "no"]]
    resolved: bool
    resolvedAt: Optional[str]
    selector: Optional[str] = omitted()
    xpath: Optional[str] = omitted()
    elementText: Optional[str] = omitted()
    boundingBox: Optional[BoxOut] = omitted()
    viewport: Optional[ViewportOut] = omitted()


class SpikeCreatedOut(OkOut):
    id: str


class SpikePageOut(Out):
    data: List[SpikeOut]
    next_cursor: Optional[str]


class SpikeResolvedOut(SpikeOut, OkOut):
    resolved_at: Optional[str]


class DeletedOut(OkOut):
    id: str


class ExportOut(Out):
    """A background export (``POST /exports``, ``GET /exports/{id}``)."""
    id: str
    status: str = Field(description="running, done or failed")
    spike_count: int = Field(description="spikes written so far (all of them once done)")
    format: str
    filename: str
    bytes: int
    created_at: str
    expires_at: str = Field(description="when the export and its file are removed")
    download_url: Optional[str] = omitted(description="once done: a presigned link, valid 15 minutes "
                                                      "(read the export again for a fresh one)")
    error: Optional[str] = omitted(description="once failed: why")


# --- shares ----------------------------------------------------------------------------------

class UploadTargetOut(Out):
    path: str
    method: str
    headers: Dict[str, str]
    url: str


class ShareCreatedOut(OkOut):
    url: str
    share_id: str
    slug: str  # the CLI's share reads it, as it reads GET /shares' slug and created_at (CLIENTS.md)
    status: Optional[str]
    webhook_secret: Optional[str] = omitted(description=(
        "Only when the share was created with a webhook_url: the signing secret, shown this once"))
    uploads: Optional[List[UploadTargetOut]] = omitted(description="POST /shares/uploads: where to PUT each file")
    expires_in: Optional[int] = omitted(description="POST /shares/uploads: seconds the upload URLs stay valid")
    complete_url: Optional[str] = omitted(description="POST /shares/uploads: POST here when every file is up")
    complete_before: Optional[str] = omitted(description=(
        "POST /shares/uploads: an upload not completed by then (ISO 8601) is deleted, with its place in the share limit"))


class ShareSummaryOut(Out):
    id: str
    slug: str
    name: Optional[str]
    url: str
    created_at: str
    status: str
    file_count: int
    total_bytes: int
    password_protected: bool
    webhook_url: Optional[str]
    locked_reason: Optional[str]
    complete_before: Optional[str] = omitted(description=(
        "A pending share (presigned upload not completed): deleted if not completed by then (ISO 8601)"))


class ShareListItemOut(ShareSummaryOut):
    spike_count: int


class ShareOut(ShareSummaryOut):
    spike_count: int
    exported_spikes: List[SpikeOut]


class ShareUpdatedOut(ShareSummaryOut, OkOut):
    webhook_secret: Optional[str] = omitted(description="When webhook_url was set: the signing secret, shown this once")


class ShareDeletedOut(OkOut):
    exported_spikes: List[SpikeOut]


# --- outbound webhooks -----------------------------------------------------------------------

class WebhookOut(Out):
    url: str
    events: List[str]
    paused: bool
    paused_at: Optional[str]
    pause_reason: Optional[str]
    previous_secret_valid_until: Optional[str]


class _RotatedHead(OkOut):
    webhook_secret: str = Field(description="The new signing secret, shown this once")


class WebhookRotatedOut(WebhookOut, _RotatedHead):
    pass


class _ResumedHead(OkOut):
    queued: int = Field(description="Held events queued for delivery again by this request (at most 25); "
                                    "the delivery job queues any others on its next run")


class WebhookResumedOut(WebhookOut, _ResumedHead):
    pass


class DeliveryOut(Out):
    id: str
    event_id: str
    event_type: str
    status: str = Field(description="pending, delivered, failed, paused or cancelled")
    attempts: int
    created_at: str
    last_attempt_at: Optional[str]
    next_attempt_at: Optional[str]
    last_status_code: Optional[int]
    last_error: Optional[str]
    delivered_at: Optional[str]


class DeliveryPageOut(Out):
    data: List[DeliveryOut]


class EventShareOut(Out):
    id: str
    slug: Optional[str]
    name: Optional[str]


class WebhookEventOut(Out):
    """The body of a delivery to a share's webhook URL (docs/webhooks.md), built by
    services/outbound_webhooks.event; tests check the bodies receivers get against this."""
    id: str = Field(description="The event's id: the same on every retry, for deduplication")
    type: Literal["spike.created", "spike.resolved", "share.deleted", "webhook.test"]
    created_at: str
    share: EventShareOut
    spike: Optional[SpikeOut] = Field(description="The spike as GET /spikes/{id} answers it; null for share "
                                                  "and test events")


class TestSentOut(Out):
    __test__ = False  # not a pytest class
    ok: bool
    delivery: DeliveryOut
