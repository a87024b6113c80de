"""Request and response models: they validate input and describe the API (OpenAPI later)."""
from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, ConfigDict, EmailStr, Field


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class EmailRequest(_Lenient):
    email: EmailStr = Field(max_length=254)


class VerifyRequest(_Lenient):
    login_token: str = Field(min_length=1, max_length=200)


class DeviceConfirmRequest(_Lenient):
    user_code: str = Field(min_length=4, max_length=20)
    email: EmailStr = Field(max_length=254)


class UserOut(BaseModel):
    id: str
    email: str
    tier: str


class SessionOut(BaseModel):
    ok: bool = True
    token: str
    user: UserOut


class MeOut(BaseModel):
    id: str
    email: str
    tier: str
    created_at: Optional[str] = None
