"""Reading requests: client IP, base URL, credentials, JSON bodies validated by pydantic."""
from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any, Dict, Optional, Type, TypeVar

from chalice.app import Request

from chalicelib import deps
from chalicelib.errors import InvalidJson, ServerMisconfigured, SizeLimit, ValidationFailed
from chalicelib.lazy import lazy_import

if TYPE_CHECKING:
    from pydantic import BaseModel, ValidationError

    from chalicelib.services.identity import Principal

identity = lazy_import("chalicelib.services.identity")
M = TypeVar("M", bound="BaseModel")


def client_ip(request: Request) -> str:
    """API Gateway's view of the caller. Never X-Forwarded-For: the caller can forge that."""
    return ((request.context or {}).get("identity") or {}).get("sourceIp") or "unknown"


def raw_path(request: Request) -> str:
    """The path as requested (trailing slash kept), without the stage prefix."""
    event = request.to_original_event()
    return event.get("path") or (request.context or {}).get("path") or request.path


LOCAL_BASE_URL = "http://127.0.0.1:8000"


def base_url(request: Request) -> str:
    """Where links (magic links, share URLs, widget endpoints) point: the configured
    SPIKES_PUBLIC_BASE_URL, else the domain API Gateway says it served the request on (plus
    the stage prefix on execute-api hosts). Never the Host or X-Forwarded-* headers: a client
    picks those, and a mailed link built from them would point wherever the client likes."""
    settings = deps.settings()
    if settings.public_base_url:
        return settings.public_base_url.rstrip("/")
    context = request.context or {}
    domain = context.get("domainName")
    if domain:
        context_path = context.get("path") or ""
        event_path = request.to_original_event().get("path") or context_path
        stage_prefix = context_path[: len(context_path) - len(event_path)] if context_path.endswith(event_path) else ""
        return f"https://{domain}{stage_prefix}"
    if settings.local_stage:
        return LOCAL_BASE_URL  # the local runner sets SPIKES_PUBLIC_BASE_URL to its own address
    raise ServerMisconfigured("SPIKES_PUBLIC_BASE_URL is not set and the platform gave no domain")


def query(request: Request) -> Dict[str, str]:
    return dict(request.query_params or {})


def page_limit(params: Dict[str, str], default: int, maximum: int) -> int:
    """A listing's ``?limit=``: ``default`` when absent, read as ``maximum`` when above it (the
    contract's ``/spikes`` behaviour, one rule for every listing); 400 unless it is a positive
    whole number in ASCII digits (``int()`` also takes '+5', ' 5', '1_0' and other scripts'
    digits, and refuses 5,000 digits with a ValueError only by a default that can change)."""
    raw = params.get("limit")
    if raw in (None, ""):
        return default
    if not re.fullmatch(r"[0-9]{1,100}", raw):
        raise ValidationFailed.field("limit", "limit must be a whole number (ASCII digits)")
    # Leading zeros count for nothing; past nine digits it is above any maximum: read as the
    # maximum (100 digits bounds the work).
    digits = raw.lstrip("0")
    value = int(digits or "0") if len(digits) <= 9 else maximum
    if value <= 0:
        raise ValidationFailed.field("limit", "limit must be positive")
    return min(value, maximum)


def flag(params: Dict[str, str], name: str, default: Optional[bool]) -> Optional[bool]:
    """A yes/no query parameter: ``true`` or ``false`` in any case, ``default`` when absent or
    empty; 400 otherwise. Read leniently (only ``false`` counted), a DELETE's
    ``?exported_spikes=0`` or ``=no`` read the feedback the caller asked not to have, and a share
    too large to answer was then not deleted (409) though the caller had asked for exactly that."""
    raw = params.get(name)
    if raw in (None, ""):
        return default
    if raw.lower() not in ("true", "false"):
        raise ValidationFailed.field(name, f"{name} must be true or false")
    return raw.lower() == "true"


def is_rust_client(request: Request) -> bool:
    """The Spikes CLI and its MCP server (HTTP library ureq). Each reads the first page of a
    listing only and never follows its cursor. See docs/clients.md."""
    return (request.headers.get("user-agent") or "").lower().startswith("ureq/")


def bearer_token(request: Request) -> Optional[str]:
    header = request.headers.get("authorization") or ""
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def api_key_header(request: Request) -> Optional[str]:
    return (request.headers.get("x-api-key") or "").strip() or None


def sends_credentials(request: Request) -> bool:
    """Whether the request carries an ``Authorization`` or ``X-API-Key`` header at all, usable
    or not (another scheme, no ``Bearer``, an empty value): credentials the caller meant to use."""
    return "authorization" in request.headers or "x-api-key" in request.headers


def principal(request: Request, any_credential_in_param: bool = False) -> Optional[Principal]:
    """The caller. ``any_credential_in_param``: ``?token=`` may carry a user's credential too,
    not only the admin token (the /spikes routes, see docs/clients.md)."""
    settings = deps.settings()
    return identity.resolve(bearer_token(request), query(request).get("token"), settings.admin_token,
                            api_key_header(request), settings, any_credential_in_param)


def body_bytes(request: Request, max_bytes: int) -> bytes:
    raw = request.raw_body or b""
    if len(raw) > max_bytes:
        raise SizeLimit(max_bytes, f"Request body exceeds {max_bytes} bytes")
    return raw


def json_body(request: Request, max_bytes: Optional[int] = None) -> Dict[str, Any]:
    raw = body_bytes(request, max_bytes or deps.settings().max_json_bytes)
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: absurdly deep nesting
        raise InvalidJson() from None
    if not isinstance(data, dict):
        raise InvalidJson("Request body must be a JSON object")
    if _SURROGATE_ESCAPE.search(raw) and not _is_text(data):
        # "\ud800" alone is valid JSON but not text: DynamoDB (UTF-8) would refuse to store it.
        raise InvalidJson("Request body contains an unpaired UTF-16 surrogate (\\ud800-\\udfff)")
    return data


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _is_text(data: Any) -> bool:
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def validation_details(exc: ValidationError, model: Optional[type] = None) -> list:
    details = []
    for err in exc.errors():
        field = ".".join(str(part) for part in err["loc"]) or "body"
        code = "MISSING_FIELD" if err["type"] == "missing" else "INVALID_FIELD"
        message = err["msg"]
        if err["type"] == "extra_forbidden" and model is not None and len(err["loc"]) == 1:
            # pydantic says "Extra inputs are not permitted"; say what the request does take.
            message = f"{field} cannot be set here; this request takes {', '.join(model.model_fields)}"
        details.append({"field": field, "message": message, "code": code})
    return details


def validate(model: Type[M], data: Any) -> M:
    from pydantic import ValidationError
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(details=validation_details(exc, model)) from None


def parse(request: Request, model: Type[M], max_bytes: Optional[int] = None) -> M:
    return validate(model, json_body(request, max_bytes))
