"""Magic-link accounts: login, verify, recover, rotate, the CLI's e-mail poll and the
device-code flow. Single-use tokens are consumed with conditional writes, and every step
that must happen together happens in one DynamoDB transaction (``store/auth.py``)."""
from __future__ import annotations

import math
import re
import secrets as _secrets
import uuid
from dataclasses import dataclass
from typing import Optional


from chalicelib import clock
from chalicelib.errors import NotFound, TokenExpired, TokenInvalid, TokenUsed
from chalicelib.logs import get_logger, mask_email
from chalicelib.services import mail_limits, quotas, ratelimit, sessions, sign_in_mails
from chalicelib.services.addresses import normalize_email
from chalicelib.services.sign_in_mails import SignInRequest
from chalicelib.crypto import new_token
from chalicelib.settings import Settings
from chalicelib.store import accounts as account_store
from chalicelib.store import auth as auth_store
from chalicelib.store.models import AuthItem, User

log = get_logger("spikes.accounts")

USER_NAMESPACE = uuid.UUID("6f1c3c1e-6a43-4d5e-9a57-5b0f3f2a9c11")
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
# A person types a code or two; a client trying codes must not find live ones (34 bits of them).
DEVICE_LOOKUPS_PER_MINUTE = 10


def user_id_for(email: str) -> str:
    """Deterministic per address, so creating a user is a plain idempotent upsert."""
    return str(uuid.uuid5(USER_NAMESPACE, email))


def user_view(user: User) -> dict:
    """Tier as it applies now: a lapsed grace period reads as free before the job stores it."""
    return {"id": user.user_id, "email": user.email, "tier": quotas.effective_tier(user)}


@dataclass(frozen=True)
class LoginRequested:
    poll_token: str
    code: str


def new_request_code() -> str:
    raw = "".join(_secrets.choice(USER_CODE_ALPHABET) for _ in range(8))
    return f"{raw[:4]}-{raw[4:]}"


@dataclass(frozen=True)
class Session:
    token: str
    user: User


class Accounts:
    def __init__(self, settings: Settings, mailer, base_url: str):
        self.settings = settings
        self.mailer = mailer
        self.base_url = base_url

    # --- sending links ---------------------------------------------------------------------

    def _limit_mail(self, email: str, client_ip: str, everyone: bool = True) -> None:
        self.mailer.refuse_undeliverable(email)  # a 400 now, not a 503 from the mail service each retry
        mail_limits.enforce_callers(self.settings, email, client_ip)
        if everyone:
            mail_limits.enforce_total(self.settings)

    def _issue_login_token(self, email: str, purpose: str, device: Optional[AuthItem] = None,
                           request: Optional[SignInRequest] = None) -> str:
        token = new_token()
        now = int(clock.epoch())
        auth_store.save_login(token, email, purpose, created_at=request.requested_at if request else now,
                              expires_at=now + self.settings.login_token_ttl_seconds, device=device,
                              requester_ip=request.requester_ip if request else None,
                              request_code=request.code if request else None)
        return token

    def _send_link(self, email: str, token: str, subject: str, intro: str,
                   request: Optional[SignInRequest] = None, approvable_for: Optional[int] = None) -> None:
        self.mailer.send(sign_in_mails.link_mail(self.base_url, self.settings.login_token_ttl_seconds, email, token,
                                                 subject, intro, request, approvable_for))

    def request_login(self, email: str, client_ip: str) -> LoginRequested:
        email = normalize_email(email)
        self._limit_mail(email, client_ip)
        request = SignInRequest(code=new_request_code(), requested_at=int(clock.epoch()), requester_ip=client_ip)
        token = self._issue_login_token(email, "login", request=request)
        poll_token = new_token(24)
        # The CLI polls with only the e-mail: bind that poll to the client IP that asked for the
        # link. Clients that can, poll with the returned poll_token instead.
        auth_store.save_polls(token, email, client_ip, poll_token,
                              expires_at=int(clock.epoch()) + self.settings.login_token_ttl_seconds)
        self._send_link(email, token, f"Approve a Spikes sign-in (code {request.code})",
                        f"Someone asked to sign in to Spikes as {email}.", request)
        log.info("login.requested", email=mask_email(email))
        return LoginRequested(poll_token=poll_token, code=request.code)

    def describe(self, login_token: str) -> Optional[dict]:
        """What opening a sign-in link would approve (the verify page), or None when the link
        is unknown, spent or expired. Reads only: opening the link changes nothing."""
        item = auth_store.login(login_token)
        if item is None:
            return None
        if item.kind != "login" or item.used_at is not None or (item.expires_at or 0) <= clock.epoch():
            return None
        request = None
        # A device approved or declined with another of its links, or expired, has nothing left
        # to approve: the link signs in only its opener.
        settled_device = (item.purpose == "device" and bool(item.target)
                          and not self._awaits_approval(auth_store.reread(AuthItem(item.target))))
        if item.request_code and not settled_device:
            request = SignInRequest(code=item.request_code, requested_at=int(item.created_at or 0),
                                    requester_ip=item.requester_ip or "unknown")
        return {"email": item.email, "purpose": item.purpose, "request": request}

    def request_recovery(self, email: str, client_ip: str) -> None:
        """Same answer, and the same work, whether or not the account exists, so neither the
        answer nor its timing tells who has an account: an unknown address gets a link that
        creates one (what a sign-in link does) and a mail that says so."""
        email = normalize_email(email)
        self._limit_mail(email, client_ip)
        known = account_store.get(user_id_for(email)) is not None
        token = self._issue_login_token(email, "recover" if known else "login")
        if known:
            self._send_link(email, token, "Recover your Spikes account",
                            "Someone (hopefully you) asked to recover a Spikes account.")
        else:
            log.info("recover.unknown_address")
            self._send_link(email, token, "Sign in to Spikes",
                            f"Someone (hopefully you) asked to recover a Spikes account for {email}, "
                            "but no account uses this address yet. The link below creates one.")

    # --- consuming links -------------------------------------------------------------------

    def verify(self, login_token: str, approve: bool = False) -> Session:
        """Exchange a mailed login token for a session of the caller's own. The program that
        asked for the link (the CLI's poll, a device) gets a session only when ``approve`` is
        set: the person approved it on the page that shows its code, time and address."""
        item = auth_store.login(login_token)
        if item is None:
            raise TokenInvalid()
        self._raise_if_spent(item)
        user_id = user_id_for(item.email)
        session = sessions.new(self.settings, user_id, "magic-link")
        try:
            auth_store.sign_in(item, user_id, approve, int(clock.epoch()), session)
        except auth_store.Spent:
            # Lost a race with another verify, or expired in between, or (a device) declined
            # with another of its links: say which.
            self._raise_if_spent(auth_store.reread(item))
            device = auth_store.reread(AuthItem(item.target)) if item.purpose == "device" and item.target else None
            if device is not None and device.verified_user_id is not None:
                raise TokenUsed("This device sign-in was approved already, with another link") from None
            if device is not None and device.used_at is not None:
                raise TokenUsed("This device sign-in was declined with another link: start a new one") from None
            raise TokenExpired("The sign-in request this link belongs to has expired") from None
        user = account_store.get(user_id, consistent=True)
        log.info("login.verified", user_id=user_id, purpose=item.purpose, approved_requester=approve)
        return Session(token=session.token, user=user)

    @staticmethod
    def _raise_if_spent(item: Optional[AuthItem]) -> None:
        if item is None or item.kind != "login":
            raise TokenInvalid()
        if item.used_at is not None:
            raise TokenUsed()
        if item.expires_at is None or item.expires_at <= clock.epoch():
            raise TokenExpired()

    def rotate(self, user: User, old_token_hash: str) -> Session:
        token = sessions.rotate(self.settings, user, old_token_hash, "rotated")
        log.info("token.rotated", user_id=user.user_id)
        return Session(token=token, user=user)

    # --- the CLI's polls -------------------------------------------------------------------

    def poll_login(self, email: Optional[str], poll_token: Optional[str], client_ip: str) -> Optional[Session]:
        """None while pending; a fresh session once the link was opened. Only the client that
        requested the link (same IP, or holder of its poll_token) can collect, and only once."""
        ratelimit.enforce_per_client("poll-ip", client_ip, self.settings.rate_poll_per_minute, 60)
        if not poll_token and not email:
            raise NotFound("No pending sign-in")
        login = auth_store.polled_login(poll_token, normalize_email(email) if email else None, client_ip)
        if login is None:
            raise NotFound("No pending sign-in for this client")
        return self._collect(login, "cli-email")

    def _collect(self, item: AuthItem, label: str) -> Optional[Session]:
        if item.collected_at is not None:
            raise TokenUsed("This sign-in was already collected")
        if item.verified_user_id is None and item.used_at is not None:
            # The link was used without approving this program: it gets nothing, now.
            raise TokenUsed("The sign-in link was used without approving this sign-in")
        # Approved or not, an expired sign-in hands out nothing: TTL deletes it days later, and
        # until then anyone polling from the requester's network could collect it.
        if item.expires_at is None or item.expires_at <= clock.epoch():
            raise TokenExpired("The sign-in request has expired")
        if item.verified_user_id is None:
            return None
        # Minted under the epoch it was approved in: a "sign out everywhere" since (even one
        # landing between this check and the write) voids it like every other session.
        epoch = item.approved_epoch
        if epoch is not None and int(epoch) != account_store.session_epoch(item.verified_user_id):
            raise TokenExpired("This sign-in was approved before its account signed out everywhere")
        session = sessions.new(self.settings, item.verified_user_id, label,
                               epoch=int(epoch) if epoch is not None else None)
        try:
            auth_store.collect(item, int(clock.epoch()), session)
        except auth_store.Spent:
            stored = auth_store.reread(item)
            if stored is not None and stored.collected_at is None:
                raise TokenExpired("The sign-in request has expired") from None
            raise TokenUsed("This sign-in was already collected") from None
        return Session(token=session.token, user=account_store.get(item.verified_user_id))

    def start_device(self, client_ip: str) -> dict:
        ratelimit.enforce_per_client("device-ip", client_ip, 10, 60)
        device_code = new_token()
        now = int(clock.epoch())
        expires = now + self.settings.device_code_ttl_seconds
        for _ in range(5):
            user_code = new_request_code()
            if auth_store.start_device(device_code, user_code, client_ip, now, expires):
                break
            # a live user code collided: draw another
        else:
            raise RuntimeError("could not allocate a device user code")
        return {"device_code": device_code, "user_code": user_code,
                "verification_url": f"{self.base_url}/auth/device",
                "verification_uri_complete": f"{self.base_url}/auth/device?code={user_code}",
                "expires_in": self.settings.device_code_ttl_seconds,
                "interval": self.settings.device_poll_interval_seconds}

    def confirm_device(self, user_code: str, email: str, client_ip: str) -> None:
        """The browser side of the device flow: mail a magic link that approves the device."""
        email = normalize_email(email)
        self._limit_mail(email, client_ip, everyone=False)  # before the lookup: it bounds guessing
        device = auth_store.device_by_user_code(user_code.strip().upper())
        if not self._awaits_approval(device):
            raise NotFound("Unknown, expired or settled device code: start a new sign-in")
        mail_limits.enforce_total(self.settings)  # only a mail about to be sent spends everyone's
        request = self.device_request(device)
        token = self._issue_login_token(email, "device", device=device, request=request)
        self._send_link(email, token, f"Approve a Spikes CLI sign-in (code {device.user_code})",
                        f"Someone asked to sign in the Spikes CLI as {email}.", request,
                        approvable_for=int(device.expires_at or 0) - int(clock.epoch()))

    @staticmethod
    def device_request(device: AuthItem) -> SignInRequest:
        return SignInRequest(code=device.user_code or "", requested_at=int(device.created_at or 0),
                             requester_ip=device.requester_ip or "unknown")

    def describe_device(self, user_code: str, client_ip: str) -> Optional[SignInRequest]:
        """The pending device sign-in a user code names (the device page), or None. Lookups are
        limited per client: a code found live could be approved with another account."""
        code = (user_code or "").strip().upper()
        if not re.fullmatch(r"[A-Z]{4}-[A-Z]{4}", code):
            return None
        ratelimit.enforce_per_client("device-lookup-ip", client_ip, DEVICE_LOOKUPS_PER_MINUTE, 60)
        device = auth_store.device_by_user_code(code)
        return self.device_request(device) if self._awaits_approval(device) else None

    @staticmethod
    def _awaits_approval(device: Optional[AuthItem]) -> bool:
        """Neither expired nor settled: not approved, and not declined (a link for it used
        without approving, which is final: no new link is mailed for it)."""
        return (device is not None and (device.expires_at or 0) > clock.epoch()
                and device.verified_user_id is None and device.used_at is None)

    def poll_device(self, device_code: str, client_ip: str) -> Optional[Session]:
        # Limited like the e-mail poll, but never below twice what the `interval` this server
        # tells the CLI asks for: two CLIs behind one address, each polling as told, pass.
        per_minute = max(self.settings.rate_poll_per_minute, 2 * math.ceil(60 / self.settings.device_poll_interval_seconds))
        ratelimit.enforce_per_client("device-poll-ip", client_ip, per_minute, 60)
        device = auth_store.device(device_code)
        if device is None:
            raise TokenInvalid("Unknown device code")
        return self._collect(device, "cli-device")

