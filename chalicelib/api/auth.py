"""Accounts: magic links, token rotation, the CLI's polls and the device flow."""
from __future__ import annotations

from typing import Optional

from chalice import Blueprint

from chalicelib import deps
from chalicelib.api import inputs
from chalicelib.api.pages import html_page
from chalicelib.api.routing import READ_METHODS, json_response, route
from chalicelib.lazy import lazy_import
from chalicelib.limit_errors import RateLimited

account_schemas = lazy_import("chalicelib.api.account_schemas")
schemas = lazy_import("chalicelib.api.schemas")
responses = lazy_import("chalicelib.api.responses")
addresses = lazy_import("chalicelib.services.addresses")
accounts = lazy_import("chalicelib.services.accounts")
apikeys = lazy_import("chalicelib.services.apikeys")
identity = lazy_import("chalicelib.services.identity")
metering = lazy_import("chalicelib.services.metering")
ratelimit = lazy_import("chalicelib.services.ratelimit")
sessions = lazy_import("chalicelib.services.sessions")

bp = Blueprint(__name__)


def _user_out(user) -> responses.UserOut:
    return responses.UserOut(**accounts.user_view(user))


def _session_out(session: accounts.Session) -> responses.SessionOut:
    return responses.SessionOut(token=session.token, user=_user_out(session.user))


def _shown_address(email: str) -> str:
    """An address as the sign-in pages name it: with an internationalised domain, its ASCII form
    too, as browsers show such a host (``аррӏе.com`` in Cyrillic reads as apple.com; the
    ``xn--`` form does not): docs/security.md, 181."""
    in_ascii = addresses.ascii_address(email)
    return email if in_ascii is None or in_ascii == email else f"{email} ({in_ascii})"


def _accounts() -> accounts.Accounts:
    return accounts.Accounts(deps.settings(), deps.mailer(), inputs.base_url(bp.current_request))


@route(bp, "/auth/login", methods=["POST"])
def login():
    body = inputs.parse(bp.current_request, account_schemas.EmailRequest)
    requested = _accounts().request_login(body.email, inputs.client_ip(bp.current_request))
    # ``code``: what the mail and the verify page show; a client that can, displays it too.
    return responses.LoginOut(message="Check your email", poll_token=requested.poll_token, code=requested.code)


@route(bp, "/auth/recover", methods=["POST"])
def recover():
    body = inputs.parse(bp.current_request, account_schemas.EmailRequest)
    _accounts().request_recovery(body.email, inputs.client_ip(bp.current_request))
    return responses.MessageOut(message="Recovery email sent")


def _limit_verify(request) -> None:
    """Opening and exchanging sign-in links, per client network (GET and POST together). A person
    opens a link, maybe twice, and approves it; a mail scanner's prefetch comes from its own
    network. Tokens cannot be guessed, but every try cost reads and no limit bounded them (241)."""
    ratelimit.enforce_per_client("verify-ip", inputs.client_ip(request), deps.settings().rate_verify_per_minute, 60)


@route(bp, "/auth/verify", methods=["POST"])
def verify():
    body = inputs.parse(bp.current_request, account_schemas.VerifyRequest)
    _limit_verify(bp.current_request)
    session = _accounts().verify(body.login_token, approve=body.approve)
    return _session_out(session)


@route(bp, "/auth/verify", methods=READ_METHODS)
def verify_page():
    """The link in the e-mail. Opening it does not consume the token (mail scanners prefetch
    links); the page asks the person to confirm, which POSTs to /auth/verify."""
    request = bp.current_request
    token = inputs.query(request).get("token", "")
    if 0 < len(token) <= 200:
        try:
            _limit_verify(request)
        except RateLimited as refused:  # a person, shown a page: the link is not spent, wait and reload
            page = html_page("verify_wait.html", status=429, seconds=str(refused.extra["retry_after"]))
            page.headers.update(refused.headers)
            return page
    described = _accounts().describe(token) if 0 < len(token) <= 200 else None
    if described is None:
        return html_page("verify_invalid.html", status=400)
    pending: Optional[accounts.SignInRequest] = described["request"]
    email = _shown_address(described["email"])
    if pending is None:  # account recovery: nobody else is waiting for this session
        return html_page("verify.html", token=token, verify_url=f"{inputs.base_url(request)}/auth/verify",
                         dashboard_url=f"{inputs.base_url(request)}/dashboard", email=email, approve="false", details_class="hidden", code="", when="",
                         origin="", network="", warning_class="hidden",
                         button=f"Sign in to the dashboard as {email}", check_class="hidden")
    same_network = pending.requester_ip == inputs.client_ip(request)
    what = "the Spikes CLI" if described["purpose"] == "device" else "a program or page"
    return html_page("verify.html", token=token, verify_url=f"{inputs.base_url(request)}/auth/verify",
                     dashboard_url=f"{inputs.base_url(request)}/dashboard", email=email, approve="true", details_class="", code=pending.code,
                     when=pending.when(), origin=pending.requester_ip,
                     network=f"{what}, on {'this network' if same_network else 'a different network than yours'}",
                     warning_class="hidden" if same_network else "warn", button=f"Approve sign-in {pending.code}",
                     check_class="")


@route(bp, "/auth/rotate-token", methods=["POST"])
def rotate_token():
    principal = identity.require_user(inputs.principal(bp.current_request), "auth:write")
    session = _accounts().rotate(principal.user, principal.token_hash)
    return _session_out(session)


@route(bp, "/auth/logout", methods=["POST"])
def logout():
    """Revoke the presented session; ``{"everywhere": true}`` revokes all of the account's
    sessions (API keys are revoked one by one, DELETE /auth/api-key/{id})."""
    request = bp.current_request
    body = inputs.parse(request, account_schemas.LogoutRequest)
    principal = identity.require_user(inputs.principal(request), "auth:write")
    if body.everywhere:
        sessions.revoke_all(principal.user)
    sessions.revoke(principal.token_hash)
    return responses.LogoutOut(everywhere=body.everywhere)


@route(bp, "/me", methods=["GET"])
def me():
    request = bp.current_request
    principal = inputs.principal(request)
    if principal is not None and principal.is_key:
        # Any key may describe itself: the MCP server reads `scopes` here before writing.
        described = apikeys.describe(principal.key, principal.user)
        if described["email"] is None and inputs.is_rust_client(request):
            described["email"] = ""  # `spikes whoami` parses a string: a null failed it (docs/clients.md)
        return responses.KeyMeOut(**described)
    return _account(identity.require_user(principal, "account:read").user)


@route(bp, "/me", methods=["PATCH"])
def update_me():
    """The account's monthly spending cap on the agent tier (``null`` removes it): a decision
    about money, so only the signed-in owner makes it, never an API key."""
    request = bp.current_request
    principal = identity.require_user(inputs.principal(request), "account:write")
    body = inputs.parse(request, schemas.AccountPatchIn)
    if "monthly_cap_cents" in body.model_fields_set:
        metering.set_account_cap(principal.user, body.monthly_cap_cents)
    return _account(principal.user)


def _account(user) -> responses.AccountOut:
    """The account as ``GET /me`` shows it and ``PATCH /me`` answers: what the one sets, the other reads."""
    cap = user.monthly_cap_cents
    return responses.AccountOut(**accounts.user_view(user), created_at=user.created_at,
                                monthly_cap_cents=None if cap is None else int(cap))


@route(bp, "/auth/poll", methods=["GET"])
def poll():
    request = bp.current_request
    params = inputs.query(request)
    # The CLI polls with the address as typed; POST /auth/login stored it as validated.
    email = account_schemas.address_as_validated(params["email"]) if params.get("email") else None
    session = _accounts().poll_login(email, params.get("poll_token"), inputs.client_ip(request))
    if session is None:
        return json_response(responses.PollOut(verified=False), 202)
    return responses.PollOut(verified=True, token=session.token, user=_user_out(session.user))


@route(bp, "/auth/device", methods=["POST"])
def device_start():
    return responses.DeviceStartOut(**_accounts().start_device(inputs.client_ip(bp.current_request)))


@route(bp, "/auth/device", methods=READ_METHODS)
def device_page():
    request = bp.current_request
    code = inputs.query(request).get("code", "")[:20]
    pending = _accounts().describe_device(code, inputs.client_ip(request))
    if pending is None:
        details = "Type the code your terminal shows."
    else:
        network = "this network" if pending.requester_ip == inputs.client_ip(request) else \
            "a different network than yours"
        details = f"Code {pending.code} was requested {pending.when()} from {pending.requester_ip} ({network})."
    return html_page("device.html", code=code, details=details,
                     confirm_url=f"{inputs.base_url(request)}/auth/device/confirm")


@route(bp, "/auth/device/confirm", methods=["POST"])
def device_confirm():
    body = inputs.parse(bp.current_request, account_schemas.DeviceConfirmRequest)
    _accounts().confirm_device(body.user_code, body.email, inputs.client_ip(bp.current_request))
    return responses.MessageOut(message="Check your email")


@route(bp, "/auth/device/poll", methods=["GET"])
def device_poll():
    request = bp.current_request
    session = _accounts().poll_device(inputs.query(request).get("device_code", ""), inputs.client_ip(request))
    if session is None:
        return json_response(responses.DevicePollOut(status="pending"), 202)
    return responses.DevicePollOut(status="complete", token=session.token, user=_user_out(session.user))
