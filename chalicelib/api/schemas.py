"""Request models: they validate input and describe it in the API reference (response models are in
``responses``). Sign-in's models, which validate e-mail addresses, are in ``account_schemas`` so
that the feedback routes never load the e-mail validator."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, List, Literal, Optional

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, field_validator
from pydantic_core import PydanticCustomError

from chalicelib.lazy import lazy_import

share_creation = lazy_import("chalicelib.services.share_creation")
shares = lazy_import("chalicelib.services.shares")


class Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Closed(BaseModel):
    """A change request: a field it cannot change is refused (400), not answered 200 unchanged."""
    model_config = ConfigDict(extra="forbid")


def _not_a_boolean(value):
    """Lax parsing reads ``true`` as 1 and ``false`` as 0: for a budget cap, a cap of a cent or
    none at all that nobody asked for ("false" meant as "no cap" refused every charge)."""
    if isinstance(value, bool):
        raise PydanticCustomError("int_type", "Input should be a whole number of cents (null for no cap), "
                                              "not true or false")
    return value


# A budget cap in cents: a JSON number, never a boolean. The bounds come before the validator:
# after it, pydantic writes them into GET /openapi.json as `ge`/`le`, which JSON Schema ignores.
Cents = Annotated[int, Field(ge=0, le=100_000_000), BeforeValidator(_not_a_boolean)]


class AccountPatchIn(Closed):
    """PATCH /me: the account's monthly spending cap on the agent tier (null removes it)."""
    monthly_cap_cents: Optional[Cents] = None


# --- API keys --------------------------------------------------------------------------------

class KeyCreateIn(Closed):
    """``{}``, ``{"name"}`` (what the CLI sends) or with scopes, expiry and a budget cap. Any
    other field is refused: a misspelt limit (``scope``, ``expires_in``) ignored would make a
    key with every scope, no expiry and no cap (docs/security.md 152)."""
    name: Optional[str] = Field(default=None, max_length=100)
    scopes: Optional[str] = Field(default=None, max_length=500)
    expires_at: Optional[datetime] = None
    monthly_cap_cents: Optional[Cents] = None


class KeyPatchIn(Closed):
    """Only the fields present change; ``null`` removes a cap or an expiry. Scopes never
    change (a new key does): ``scopes`` is refused with the rest."""
    name: Optional[str] = Field(default=None, max_length=100)
    expires_at: Optional[datetime] = None
    monthly_cap_cents: Optional[Cents] = None


class LinkKeyIn(Lenient):
    api_key: str = Field(min_length=10, max_length=200)


# --- spikes ----------------------------------------------------------------------------------

REVIEWER_NAME_CHARS = 200


def _name_cut_to_length(value):
    """A reviewer's name is typed once and sent with every post (the upstream widget keeps it and
    its input has no length limit): an over-long one is cut, not refused, or every post of that
    reviewer would be lost."""
    return value[:REVIEWER_NAME_CHARS] if isinstance(value, str) else value


# The bound applies to a string only: a null name stays null.
ReviewerName = Annotated[Optional[Annotated[str, Field(max_length=REVIEWER_NAME_CHARS)]],
                         BeforeValidator(_name_cut_to_length)]


class ReviewerIn(Lenient):
    id: Optional[str] = Field(default=None, max_length=128)
    name: ReviewerName = None
    email: Optional[str] = Field(default=None, max_length=254)


class ViewportIn(Lenient):
    width: float = Field(ge=0, le=100_000)
    height: float = Field(ge=0, le=100_000)


class BoundingBoxIn(Lenient):
    x: float = Field(ge=-1_000_000, le=10_000_000)
    y: float = Field(ge=-1_000_000, le=10_000_000)
    width: float = Field(ge=0, le=10_000_000)
    height: float = Field(ge=0, le=10_000_000)


# What the widget reads off the page, and the longest kept of each (the model's max_length).
PAGE_CONTEXT = {"page": 2000, "url": 4000, "selector": 2000, "xpath": 2000, "elementText": 1000}


# Ids a spike cannot have: ``/spikes/export`` is a route of its own, so a spike with that id could
# never be read, resolved or deleted by it (405): feedback anyone could plant and nobody remove.
RESERVED_SPIKE_IDS = frozenset({"export"})


class SpikeIn(Lenient):
    """What the widget, the CLI's push and the MCP server post. Unknown fields are ignored;
    strings that are null count as empty. ``projectKey`` or ``project`` is required (checked
    by the view, so the error names the field)."""
    id: Optional[str] = Field(default=None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")
    type: Literal["page", "element"]
    projectKey: Optional[str] = Field(default=None, min_length=1, max_length=200)
    project: Optional[str] = Field(default=None, min_length=1, max_length=200)
    page: Optional[str] = Field(default="", max_length=PAGE_CONTEXT["page"])
    url: Optional[str] = Field(default="", max_length=PAGE_CONTEXT["url"])
    comments: Optional[str] = Field(default="", max_length=10_000)
    timestamp: Optional[str] = Field(default="", max_length=64)
    rating: Optional[Literal["love", "like", "meh", "no"]] = None
    reviewer: Optional[ReviewerIn] = None
    selector: Optional[str] = Field(default=None, max_length=PAGE_CONTEXT["selector"])
    xpath: Optional[str] = Field(default=None, max_length=PAGE_CONTEXT["xpath"])
    elementText: Optional[str] = Field(default=None, max_length=PAGE_CONTEXT["elementText"])
    boundingBox: Optional[BoundingBoxIn] = None
    viewport: Optional[ViewportIn] = None
    # The MCP server sends the reviewer flat; used when ``reviewer`` is absent.
    reviewerName: ReviewerName = None
    reviewerEmail: Optional[str] = Field(default=None, max_length=254)
    # The CLI's push re-sends its local spikes whole; honoured for the feedback's owner only. A
    # JSON boolean (or null) only, as for PATCH: the real clients send nothing else.
    resolved: Optional[StrictBool] = None
    resolvedAt: Optional[str] = Field(default=None, max_length=64)

    @field_validator("id")
    @classmethod
    def _not_a_route(cls, value):
        if value in RESERVED_SPIKE_IDS:
            # PydanticCustomError fills in plain {name} placeholders only ({id!r} came out as written).
            raise PydanticCustomError("reserved_id", "The id '{id}' is reserved (/spikes/{id} is another route): "
                                      "choose another id, or leave id out and the server assigns one", {"id": value})
        return value

    @field_validator("rating", mode="before")
    @classmethod
    def _rating_any_case(cls, value):
        return value.lower() if isinstance(value, str) else value

    @field_validator(*PAGE_CONTEXT, mode="before")
    @classmethod
    def _page_context_cut_to_length(cls, value, info):
        """The widget reads these off the page, and never retries a refused post: an over-long
        one (a URL carrying an app's state, a deep element's selector) is cut to its limit, so
        the reviewer's rating and comment are kept, not refused with it."""
        limit = PAGE_CONTEXT[info.field_name]
        return value[:limit] if isinstance(value, str) and len(value) > limit else value


class ResolveIn(Lenient):
    # A JSON boolean only: lax parsing took "yes", "off", 0 or 1 as an answer, so a client's
    # mistaken value resolved (or reopened) feedback instead of being told it was wrong.
    resolved: StrictBool


class ExportIn(Lenient):
    """POST /exports: the query parameters of GET /spikes/export, in the query or here (these win)."""
    project: Optional[str] = Field(default=None, description="A project key or share id/slug; without it, the "
                                                             "caller's own spikes (the admin: all)")
    format: Optional[str] = Field(default=None, description="csv (default) or jsonl")
    page: Optional[str] = None
    reviewer: Optional[str] = None
    rating: Optional[str] = Field(default=None, description="love, like, meh or no")
    resolved: Optional[bool] = None


# --- shares ----------------------------------------------------------------------------------

class ShareMetadata(Closed):
    """The ``metadata`` part. The CLI sends ``name`` and ``password``; the contract's examples
    ``slug``/``title``. Any other field is refused: a misspelt ``pasword`` ignored made a public
    share its owner believed protected (docs/security.md, 164)."""

    name: Optional[str] = Field(default=None, max_length=200)
    title: Optional[str] = Field(default=None, max_length=200)
    slug: Optional[str] = Field(default=None, max_length=200)
    password: Optional[str] = Field(default=None, max_length=200)
    webhook_url: Optional[str] = Field(default=None, max_length=2048)

    @field_validator("name", "title", "slug", "password", "webhook_url", mode="before")
    @classmethod
    def _blank_is_absent(cls, value):
        return None if isinstance(value, str) and not value.strip() else value

    def options(self) -> share_creation.ShareOptions:
        name = (self.name or self.title or self.slug or "share").strip()
        return share_creation.ShareOptions(name=name, slug=self.slug, password=self.password, webhook_url=self.webhook_url)


class FileAnnouncement(BaseModel):
    model_config = ConfigDict(extra="ignore")

    path: str = Field(max_length=1024)
    size: int = Field(ge=0)
    content_type: Optional[str] = Field(default=None, max_length=200)


class UploadRequest(ShareMetadata):
    files: List[FileAnnouncement] = Field(default_factory=list)


class ShareUpdate(Closed):
    """PATCH /shares/{key}: a field left out stays as it is; null or "" removes it."""

    name: Optional[str] = Field(default=None, max_length=200)
    password: Optional[str] = Field(default=None, max_length=200)
    webhook_url: Optional[str] = Field(default=None, max_length=2048)

    def changes(self) -> shares.ShareChanges:
        given = {field: (getattr(self, field) or "") for field in self.model_fields_set}
        return shares.ShareChanges(**given)
