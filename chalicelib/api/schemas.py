"""Request models: they validate input and describe it in the API reference (response models are in
``responses``)."""
from __future__ import annotations

from datetime import datetime
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class EmailRequest(_Lenient):
    email: EmailStr = Field(max_length=254)


class LogoutRequest(_Lenient):
    # Also sign out every other session of the account ("sign out everywhere").
    everywhere: bool = False


class VerifyRequest(_Lenient):
    login_token: str = Field(min_length=1, max_length=200)
    # Also hand a session to the program that asked for the link (the CLI's poll, a device):
    # sent by the verify page only after the person approved what it showed them.
    approve: bool = False


class DeviceConfirmRequest(_Lenient):
    user_code: str = Field(min_length=4, max_length=20)
    email: EmailStr = Field(max_length=254)


# --- API keys --------------------------------------------------------------------------------

class KeyCreateIn(_Lenient):
    """``{}``, ``{"name"}`` (what the CLI sends) or with scopes, expiry and a budget cap."""
    name: Optional[str] = Field(default=None, max_length=100)
    scopes: Optional[str] = Field(default=None, max_length=500)
    expires_at: Optional[datetime] = None
    monthly_cap_cents: Optional[int] = Field(default=None, ge=0, le=100_000_000)


class KeyPatchIn(_Lenient):
    """Only the fields present change; ``null`` removes a cap or an expiry."""
    name: Optional[str] = Field(default=None, max_length=100)
    expires_at: Optional[datetime] = None
    monthly_cap_cents: Optional[int] = Field(default=None, ge=0, le=100_000_000)


class LinkKeyIn(_Lenient):
    api_key: str = Field(min_length=10, max_length=200)


# --- spikes ----------------------------------------------------------------------------------

class ReviewerIn(_Lenient):
    id: Optional[str] = Field(default=None, max_length=128)
    name: Optional[str] = Field(default=None, max_length=200)
    email: Optional[str] = Field(default=None, max_length=254)


class ViewportIn(_Lenient):
    width: float = Field(ge=0, le=100_000)
    height: float = Field(ge=0, le=100_000)


class BoundingBoxIn(_Lenient):
    x: float = Field(ge=-1_000_000, le=10_000_000)
    y: float = Field(ge=-1_000_000, le=10_000_000)
    width: float = Field(ge=0, le=10_000_000)
    height: float = Field(ge=0, le=10_000_000)


class SpikeIn(_Lenient):
    """What the widget, the CLI's push and the MCP server post. Unknown fields are ignored;
    strings that are null count as empty. ``projectKey`` or ``project`` is required (checked
    by the view, so the error names the field)."""
    id: Optional[str] = Field(default=None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")
    type: Literal["page", "element"]
    projectKey: Optional[str] = Field(default=None, min_length=1, max_length=200)
    project: Optional[str] = Field(default=None, min_length=1, max_length=200)
    page: Optional[str] = Field(default="", max_length=2000)
    url: Optional[str] = Field(default="", max_length=4000)
    comments: Optional[str] = Field(default="", max_length=10_000)
    timestamp: Optional[str] = Field(default="", max_length=64)
    rating: Optional[Literal["love", "like", "meh", "no"]] = None
    reviewer: Optional[ReviewerIn] = None
    selector: Optional[str] = Field(default=None, max_length=2000)
    xpath: Optional[str] = Field(default=None, max_length=2000)
    elementText: Optional[str] = Field(default=None, max_length=1000)
    boundingBox: Optional[BoundingBoxIn] = None
    viewport: Optional[ViewportIn] = None
    # The MCP server sends the reviewer flat; used when ``reviewer`` is absent.
    reviewerName: Optional[str] = Field(default=None, max_length=200)
    reviewerEmail: Optional[str] = Field(default=None, max_length=254)
    # The CLI's push re-sends its local spikes whole; honoured for the feedback's owner only.
    resolved: Optional[bool] = None
    resolvedAt: Optional[str] = Field(default=None, max_length=64)

    @field_validator("rating", mode="before")
    @classmethod
    def _rating_any_case(cls, value):
        return value.lower() if isinstance(value, str) else value


class ResolveIn(_Lenient):
    resolved: bool
