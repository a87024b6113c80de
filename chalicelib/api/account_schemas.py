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
    email: Email


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
    everywhere: bool = False


class VerifyRequest(Lenient):
    login_token: str = Field(min_length=1, max_length=200)
    # Also hand a session to the program that asked for the link (the CLI's poll, a device):
    # sent by the verify page only after the person approved what it showed them.
    approve: bool = False


class DeviceConfirmRequest(Lenient):
    user_code: str = Field(min_length=4, max_length=20)
    email: Email
