"""Domain errors. Services raise these; the HTTP layer maps them to the contract's envelope
in exactly one place (``chalicelib.api.routing``)."""
from __future__ import annotations

from typing import Any, Dict, List, Optional


# A 404 of a path nothing serves (our catch-alls, API Gateway's own, make dev's past their depth).
NO_SUCH_ROUTE = "No such route: GET /openapi.json lists every route (GET /docs renders it)"


class SpikesError(Exception):
    status = 400
    code = "BAD_REQUEST"
    message = "Bad request"

    def __init__(self, message: Optional[str] = None, *, details: Optional[List[Dict[str, str]]] = None,
                 extra: Optional[Dict[str, Any]] = None, headers: Optional[Dict[str, str]] = None):
        self.message = message or self.message
        self.details = details
        self.extra = extra or {}
        self.headers = headers or {}
        super().__init__(self.message)

    def body(self) -> Dict[str, Any]:
        body: Dict[str, Any] = {"error": self.message, "code": self.code}
        if self.details is not None:
            body["details"] = self.details
        body.update(self.extra)
        return body


class ValidationFailed(SpikesError):
    code = "VALIDATION_ERROR"
    message = "Validation failed"

    @classmethod
    def field(cls, field: str, message: str, code: str = "INVALID_FIELD") -> "ValidationFailed":
        return cls(details=[{"field": field, "message": message, "code": code}])


class InvalidJson(SpikesError):
    code = "INVALID_JSON"
    message = "Request body is not valid JSON"


class InvalidFilename(SpikesError):
    code = "INVALID_FILENAME"
    message = "Invalid file name"


class InvalidCursor(SpikesError):
    code = "VALIDATION_ERROR"
    message = "Invalid cursor"

    def __init__(self) -> None:
        # One answer for every cause: a cursor of another listing (project, account) is refused too.
        super().__init__(details=[{"field": "cursor", "message": "Cursor is malformed, was tampered with, or "
                                   "belongs to another listing: pass next_cursor back with the query that returned it",
                                   "code": "INVALID_CURSOR"}])


class InvalidSignature(SpikesError):
    code = "INVALID_SIGNATURE"
    message = "Missing or invalid Stripe-Signature header"


class AuthRequired(SpikesError):
    status = 401
    code = "AUTH_REQUIRED"
    message = "Authentication required"


class AuthFailed(SpikesError):
    status = 401
    code = "AUTH_FAILED"
    message = "Invalid or expired credentials"


class TokenInvalid(SpikesError):
    status = 401
    code = "TOKEN_INVALID"
    message = "Login token is invalid: copy the whole token from the link, or ask for a new link (POST /auth/login)"


class TokenExpired(SpikesError):
    status = 401
    code = "TOKEN_EXPIRED"
    message = "Login token has expired: ask for a new link (POST /auth/login)"


class TokenUsed(SpikesError):
    status = 401
    code = "TOKEN_USED"
    message = "Login token has already been used: ask for a new link (POST /auth/login)"


class ScopeDenied(SpikesError):
    status = 403
    code = "SCOPE_DENIED"
    message = "Credentials lack the required scope"

    def __init__(self, required_scope: str, message: Optional[str] = None):
        super().__init__(message or f"This API key lacks the '{required_scope}' scope",
                         extra={"required_scope": required_scope})


class UpgradeRequired(SpikesError):
    status = 403
    code = "UPGRADE_REQUIRED"
    message = "This feature requires a Pro subscription"


class NotFound(SpikesError):
    status = 404
    code = "NOT_FOUND"
    message = "Resource not found"


class ShareUnavailable(SpikesError):
    """A locked share (password protection without Pro): nobody may open it."""
    status = 403
    code = "SHARE_UNAVAILABLE"
    message = "This share is unavailable"


class MethodNotAllowed(SpikesError):
    status = 405
    code = "METHOD_NOT_ALLOWED"
    message = "Method not allowed"


class Conflict(SpikesError):
    status = 409
    code = "CONFLICT"
    message = "Conflict"


class ExportTooLarge(SpikesError):
    """A share's feedback is more than one answer can carry (a Lambda answer is at most 6 MB)."""
    status = 409  # not 413: the CLI shows every 413 as "Files too large", whatever it says
    code = "EXPORT_TOO_LARGE"

    def __init__(self, share_id: str):
        super().__init__(
            "This share has more feedback than one answer can carry. Download it with GET "
            f"/spikes/export?project={share_id}&format=jsonl, then delete the share with DELETE "
            f"/shares/{share_id}?exported_spikes=false.")


class ExportTooSlow(SpikesError):
    """An export needs more time than one request has: the function ends at ``request_seconds``."""
    status = 409  # as ExportTooLarge: more than one request can carry, which no retry changes
    code = "EXPORT_TOO_LARGE"

    def __init__(self, request_seconds: int):
        super().__init__(
            f"This export needs more time than one request has ({request_seconds} s). Start it in the background "
            "instead: POST /exports with the same parameters, then GET the Location it answers until the export "
            "is done.")


class ExportReadLimit(SpikesError):
    """An export of feedback not the caller's (a public project, a share by its password) would read
    more than ``items`` spikes, what one may (docs/security.md, 284)."""
    status = 409  # as ExportTooLarge: no retry changes it
    code = "EXPORT_TOO_LARGE"

    def __init__(self, items: int):
        super().__init__(
            f"An export of feedback that is not yours reads at most {items} spikes, and this one would read more. "
            "List it with GET /spikes?project=<key> and follow next_cursor, or ask the project's owner for an export.")


class SizeLimit(SpikesError):
    status = 413
    code = "SIZE_LIMIT"
    message = "Request is too large"

    def __init__(self, max_bytes: int, message: Optional[str] = None):
        super().__init__(message, extra={"max_bytes": max_bytes})


class UnsupportedMediaType(SpikesError):
    status = 415
    code = "UNSUPPORTED_MEDIA_TYPE"
    message = "Unsupported content type"


class BillingNotConfigured(SpikesError):
    """A permanent state of this server, so a 4xx: clients show a 4xx's message, while any 5xx
    reads as "server error, try again" (docs/clients.md)."""
    status = 404
    code = "BILLING_NOT_CONFIGURED"
    message = ("Billing is not configured on this server (its operator sets SPIKES_STRIPE_SECRET_KEY and "
               "SPIKES_STRIPE_PRICE_ID: docs/billing.md)")


class WebhooksNotConfigured(BillingNotConfigured):
    """Stripe retries a 5xx for days: events sent before the secret is set still arrive. Like
    every 503, it says when to come back (an operator has to set the secret first)."""
    status = 503
    RETRY_AFTER_SECONDS = 3600

    def __init__(self, message: Optional[str] = None):
        super().__init__(message, headers={"Retry-After": str(self.RETRY_AFTER_SECONDS)})


class DependencyUnavailable(SpikesError):
    """A dependency (DynamoDB, S3, SES, Stripe) failed; the caller should retry."""
    status = 503
    code = "SERVICE_UNAVAILABLE"
    message = "A backing service is temporarily unavailable; retry shortly"

    def __init__(self, message: Optional[str] = None, retry_after: int = 2):
        super().__init__(message, headers={"Retry-After": str(retry_after)}, extra={"retry_after": retry_after})


class ServerMisconfigured(SpikesError):
    """The deployment lacks a setting it needs (logged; the caller cannot fix it)."""
    status = 500
    code = "CONFIGURATION_ERROR"
    message = "The server is not configured completely"


class InternalError(SpikesError):
    status = 500
    code = "INTERNAL_ERROR"
    message = "Internal server error"
