"""Sign-in's request models. Apart from ``schemas`` because validating an
e-mail address loads email_validator (~0.02 s of a cold start): only these routes need it."""
from __future__ import annotations

from typing import Annotated, Any

from pydantic import EmailStr, Field, ValidationError, ValidatorFunctionWrapHandler, WrapValidator
from pydantic_core import PydanticCustomError

from chalicelib.api.schemas import Closed, Lenient


def _contract_message(value: Any, handler: ValidatorFunctionWrapHandler) -> str:
    # The contract's own example of a field error is this one, word for word; the validator's
    # explanation ("must have an @-sign") would differ from it.
    try:
        return handler(value)
    except ValidationError:
        raise PydanticCustomError("value_error", "Invalid email format") from None


Email = Annotated[EmailStr, Field(max_length=254), WrapValidator(_contract_message)]


class EmailRequest(Lenient):
    email: Email = Field(description="Where the sign-in link is mailed (its account is made on first sign-in)")


def address_as_validated(address: str) -> str:
    """``address`` as ``EmailRequest`` holds it (an IDNA domain in Unicode, NFC), so a lookup by
    it finds what a validated request stored; as given when it is not a valid address."""
    try:
        return EmailRequest(email=address).email
    except ValidationError:
        return address


class LogoutRequest(Closed):
    # Also sign out every other session of the account ("sign out everywhere"). Closed: a
    # misspelt ``everwhere`` ignored signed out this session alone (docs/security.md, 164).
    everywhere: bool = Field(default=False, description="Also sign out every other session of the account")


class VerifyRequest(Lenient):
    login_token: str = Field(min_length=1, max_length=200, description="The token of the mailed link "
                                                                         "(/auth/verify?token=<login_token>)")
    # Sent by the verify page only after the person approved what it showed them.
    approve: bool = Field(default=False, description=(
        "Also hand a session to the program that asked for the link (the CLI's poll, a device), whose code the mail "
        "shows; false signs in only the caller"))


class DeviceConfirmRequest(Lenient):
    user_code: str = Field(min_length=4, max_length=20, description="The code the device shows (ABCD-EFGH)")
    email: Email = Field(description="Where the link that approves the device is mailed")
