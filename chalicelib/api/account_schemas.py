"""Sign-in's request models. Apart from ``schemas`` because validating an
e-mail address loads email_validator (~0.02 s of a cold start): only these routes need it."""
from __future__ import annotations

from pydantic import EmailStr, Field

from chalicelib.api.schemas import Lenient


class EmailRequest(Lenient):
    email: EmailStr = Field(max_length=254)


class LogoutRequest(Lenient):
    # Also sign out every other session of the account ("sign out everywhere").
    everywhere: bool = False


class VerifyRequest(Lenient):
    login_token: str = Field(min_length=1, max_length=200)
    # Also hand a session to the program that asked for the link (the CLI's poll, a device):
    # sent by the verify page only after the person approved what it showed them.
    approve: bool = False


class DeviceConfirmRequest(Lenient):
    user_code: str = Field(min_length=4, max_length=20)
    email: EmailStr = Field(max_length=254)
