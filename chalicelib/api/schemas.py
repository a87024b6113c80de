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
    monthly_cap_cents: Optional[Cents] = Field(default=None, description="Cents the account may be charged a "
                                               "calendar month (UTC); null: no cap")


# --- API keys --------------------------------------------------------------------------------

class KeyCreateIn(Closed):
    """``{}``, ``{"name"}`` (what the CLI sends) or with scopes, expiry and a budget cap. Any
    other field is refused: a misspelt limit (``scope``, ``expires_in``) ignored would make a
    key with every scope, no expiry and no cap (docs/security.md 152)."""
    name: Optional[str] = Field(default=None, max_length=100, description="A label, listed by GET /auth/api-keys")
    scopes: Optional[str] = Field(default=None, max_length=500, description=(
        "Space-separated, from spikes:read spikes:write shares:read shares:write usage:read keys:manage, or "
        "read, write, full; absent: full. A key creating a key gives at most its own (docs/agents.md, Scopes)"))
    expires_at: Optional[datetime] = Field(default=None, description="When the key stops working; absent: never")
    monthly_cap_cents: Optional[Cents] = Field(default=None, description=(
        "Cents this key, and the keys it makes, may spend a calendar month (UTC) on the agent tier; absent: no cap"))


class KeyPatchIn(Closed):
    """Only the fields present change; ``null`` removes a cap or an expiry. Scopes never
    change (a new key does): ``scopes`` is refused with the rest."""
    name: Optional[str] = Field(default=None, max_length=100, description="A new label")
    expires_at: Optional[datetime] = Field(default=None, description="A new expiry; null removes it (a session only)")
    monthly_cap_cents: Optional[Cents] = Field(default=None, description=(
        "A new monthly cap in cents; null removes it (a key may only lower it)"))


class LinkKeyIn(Lenient):
    api_key: str = Field(min_length=10, max_length=200, description=(
        "A full-scope key of the key-only account to claim (sk_spikes_…): its keys, shares and spikes become yours"))


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
    id: Optional[str] = Field(default=None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$", description=(
        "The client's id (the widget's nanoid): sent again in the same project it stores nothing twice; absent: "
        "the server assigns one"))
    type: Literal["page", "element"] = Field(description="page, or element (with selector, xpath, elementText, "
                                                         "boundingBox)")
    projectKey: Optional[str] = Field(default=None, min_length=1, max_length=200, description=(
        "A share's id (what the widget on a share page sends) or slug, or a project key of your own; this or project"))
    project: Optional[str] = Field(default=None, min_length=1, max_length=200, description="The same as projectKey")
    page: Optional[str] = Field(default="", max_length=PAGE_CONTEXT["page"], description="The page's title or path")
    url: Optional[str] = Field(default="", max_length=PAGE_CONTEXT["url"], description="The page's address")
    comments: Optional[str] = Field(default="", max_length=10_000, description="What the reviewer wrote")
    timestamp: Optional[str] = Field(default="", max_length=64, description="When the reviewer posted (ISO 8601); "
                                                                             "absent: when it arrived")
    rating: Optional[Literal["love", "like", "meh", "no"]] = Field(default=None, description='null or "": no rating')
    reviewer: Optional[ReviewerIn] = Field(default=None, description="id, name, email; absent: Anonymous")
    selector: Optional[str] = Field(default=None, max_length=PAGE_CONTEXT["selector"], description="The element's "
                                                                                                   "CSS selector")
    xpath: Optional[str] = Field(default=None, max_length=PAGE_CONTEXT["xpath"], description="The element's XPath")
    elementText: Optional[str] = Field(default=None, max_length=PAGE_CONTEXT["elementText"],
                                       description="The element's text (the widget sends its first 100 characters)")
    boundingBox: Optional[BoundingBoxIn] = Field(default=None, description="The element's box, in document "
                                                                           "coordinates")
    viewport: Optional[ViewportIn] = Field(default=None, description="The reviewer's window")
    # The MCP server sends the reviewer flat; used when ``reviewer`` is absent.
    reviewerName: ReviewerName = Field(default=None, description="The reviewer's name, used when reviewer is absent")
    reviewerEmail: Optional[str] = Field(default=None, max_length=254, description="The reviewer's e-mail address, "
                                                                                   "used when reviewer is absent")
    # The CLI's push re-sends its local spikes whole; honoured for the feedback's owner only. A
    # JSON boolean (or null) only, as for PATCH: the real clients send nothing else.
    resolved: Optional[StrictBool] = Field(default=None, description="Posted resolved: honoured for the feedback's "
                                                                     "owner only (the CLI's push)")
    resolvedAt: Optional[str] = Field(default=None, max_length=64, description="When it was resolved, with resolved")

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
        # "" is no rating, as in the listing's filter: the MCP server's submit_spike passes on
        # whatever string the agent gave, and upstream's own backend stores "" as null.
        if isinstance(value, str):
            return value.strip().lower() or None
        return value

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
    resolved: StrictBool = Field(description="true resolves the feedback, false reopens it (a JSON boolean)")


class ExportIn(Lenient):
    """POST /exports: the query parameters of GET /spikes/export, in the query or here (these win)."""
    project: Optional[str] = Field(default=None, description="A project key or share id/slug; without it, the "
                                                             "caller's own spikes (the admin: all)")
    format: Optional[str] = Field(default=None, description="csv (default) or jsonl")
    page: Optional[str] = Field(default=None, description="Only feedback on this page")
    reviewer: Optional[str] = Field(default=None, description="Only feedback of this reviewer id")
    rating: Optional[str] = Field(default=None, description="love, like, meh or no")
    resolved: Optional[bool] = Field(default=None, description="true: resolved feedback only; false: open only")


# --- shares ----------------------------------------------------------------------------------

# A share's name, title or slug wish: a folder's name fits (services/shares.NAME_MAX_CHARS, why 255).
SHARE_NAME_CHARS = 255


class ShareMetadata(Closed):
    """The ``metadata`` part. The CLI sends ``name`` and ``password``; the contract's examples
    ``slug``/``title``. Any other field is refused: a misspelt ``pasword`` ignored made a public
    share its owner believed protected (docs/security.md, 164)."""

    name: Optional[str] = Field(default=None, max_length=SHARE_NAME_CHARS, description=(
        "The share's name (the CLI sends its folder's name unless given one); the slug is made from it when slug "
        "is absent"))
    title: Optional[str] = Field(default=None, max_length=SHARE_NAME_CHARS, description="The name, when name is absent")
    slug: Optional[str] = Field(default=None, max_length=SHARE_NAME_CHARS, description=(
        "The wished-for slug of /s/<slug>: lower-case ASCII letters, digits and single dashes are made of it, at "
        "most 48 (a taken one gets a suffix)"))
    password: Optional[str] = Field(default=None, max_length=200, description="Protects the share's pages (Pro)")
    webhook_url: Optional[str] = Field(default=None, max_length=2048, description=(
        "An https receiver of the share's events (Pro; docs/webhooks.md); its secret is answered once"))

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
    files: List[FileAnnouncement] = Field(default_factory=list, description="Each file: path in the folder, size "
                                                                        "in bytes, content_type")


class ShareUpdate(Closed):
    """PATCH /shares/{key}: a field left out stays as it is; null or "" removes it."""

    name: Optional[str] = Field(default=None, max_length=SHARE_NAME_CHARS, description="A new name (the slug stays)")
    password: Optional[str] = Field(default=None, max_length=200, description=(
        "A new password (Pro; every unlocked viewer is asked again); null or \"\" makes the share public"))
    webhook_url: Optional[str] = Field(default=None, max_length=2048, description=(
        "A new receiver (Pro; a new secret, answered once); null or \"\" removes the webhook"))

    def changes(self) -> shares.ShareChanges:
        given = {field: (getattr(self, field) or "") for field in self.model_fields_set}
        return shares.ShareChanges(**given)
