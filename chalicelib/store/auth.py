"""The auth table: sign-in links, the CLI's polls, device codes and bearer sessions.

One table, items told apart by key prefix. A secret is never a key, only its SHA-256 hash:
- ``login#<sha256(login token)>``: a mailed sign-in link (purpose login, recover or device),
  who asked and from where; ``used_at`` once opened, ``verified_user_id`` once the person
  approved the program that asked, ``collected_at`` once that program took its session;
- ``poll#<subject hash>``: the CLI's e-mail poll, by (address, client IP) and by poll token,
  pointing (``target``) at its login item;
- ``device#<sha256(device code)>`` and ``usercode#<user code>`` (pointing at its device);
- ``bearer#<sha256(session token)>``: a session (``services/sessions.py``).
Every item expires (``expires_at``, the table's TTL). TTL deletes late, so reads check it.
Single-use items change only under conditions: a lost race is ``Spent``, never a second use.
The transactions that use one send one client request token for all their attempts: a commit
whose answer was lost, sent again, is answered as done, not ``Spent`` by its own conditions
(the link used or the session rotated, and the caller refused the session made: finding 70).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional


from chalicelib.crypto import subject_hash, token_hash
from chalicelib.store import accounts, transactions
from chalicelib.store.models import AuthItem
from chalicelib.store.transactions import ConditionFailed, Transaction, update_if


class Spent(Exception):
    """A single-use item was used, collected or expired meanwhile: nothing was written."""


@dataclass(frozen=True)
class NewSession:
    """A bearer session to store with a sign-in step (the token itself is shown once)."""
    token: str
    user_id: str
    label: str
    created_at: int
    expires_at: int
    epoch: int  # the user's session_epoch it is valid under
    signed_in_at: int  # when its person signed in: a rotation's successor keeps its predecessor's


# --- keys ------------------------------------------------------------------------------------

def _login_pk(login_token: str) -> str:
    return f"login#{token_hash(login_token)}"


def _address_poll_pk(email: str, client_ip: str) -> str:
    return f"poll#{subject_hash(email, client_ip)}"


def _token_poll_pk(poll_token: str) -> str:
    return f"poll#{subject_hash('token', poll_token)}"


def _device_pk(device_code: str) -> str:
    return f"device#{token_hash(device_code)}"


def _user_code_pk(user_code: str) -> str:
    return f"usercode#{user_code}"


def _bearer_pk(hashed_token: str) -> str:
    return f"bearer#{hashed_token}"


def _get(pk: Optional[str]) -> Optional[AuthItem]:
    if not pk:
        return None
    try:
        return AuthItem.get(pk, consistent_read=True)
    except AuthItem.DoesNotExist:
        return None


# --- sign-in links ---------------------------------------------------------------------------

def save_login(login_token: str, email: str, purpose: str, created_at: int, expires_at: int,
               device: Optional[AuthItem] = None, requester_ip: Optional[str] = None,
               request_code: Optional[str] = None) -> None:
    """A mailed link; ``device``: the device sign-in it approves."""
    AuthItem(_login_pk(login_token), kind="login", email=email, purpose=purpose,
             target=device.pk if device is not None else None, created_at=created_at,
             requester_ip=requester_ip, request_code=request_code, expires_at=expires_at).save()


def save_polls(login_token: str, email: str, client_ip: str, poll_token: str, expires_at: int) -> None:
    """Where the CLI polls for the session of this link: by (address, client IP), which the
    upstream CLI uses, and by ``poll_token``, for clients that can keep one."""
    target = _login_pk(login_token)
    def write(tx: Transaction) -> None:
        tx.save("ip-poll", AuthItem(_address_poll_pk(email, client_ip), kind="poll", target=target,
                                    expires_at=expires_at))
        tx.save("token-poll", AuthItem(_token_poll_pk(poll_token), kind="poll", target=target, expires_at=expires_at))
    transactions.run(write)


def login(login_token: str) -> Optional[AuthItem]:
    return _get(_login_pk(login_token))


def polled_login(poll_token: Optional[str], email: Optional[str], client_ip: str) -> Optional[AuthItem]:
    """The login item a poll names (by its token, else by address and client IP), or None."""
    pointer = _get(_token_poll_pk(poll_token) if poll_token else _address_poll_pk(email or "", client_ip))
    return _get(pointer.target) if pointer is not None else None


def reread(item: AuthItem) -> Optional[AuthItem]:
    """The item as stored now (after a lost race, to say what happened)."""
    return _get(item.pk)


def sign_in(link: AuthItem, user_id: str, approve: bool, now: int, session: NewSession) -> None:
    """The link opened, in one transaction: the link used (and, when ``approve``, approved for
    the program that asked), the user created or kept, a device sign-in settled, and the
    opener's own session. Spent when the link was used or expired meanwhile, or (approving) the
    device was settled already. Opened without approving a device settled already (approved or
    declined with another of its links, or expired), it signs in only the opener."""
    def write_settling(device: bool) -> Callable[[Transaction], None]:
        def write(tx: Transaction) -> None:
            # verified_user_id is what the CLI's e-mail poll collects: set only on approval.
            approval = [AuthItem.verified_user_id.set(user_id), AuthItem.approved_epoch.set(session.epoch)]
            actions = [AuthItem.used_at.set(now)] + (approval if approve else [])
            tx.update("login", link, actions=actions,
                      condition=AuthItem.used_at.does_not_exist() & (AuthItem.expires_at > now))
            accounts.ensure_person(tx, user_id, link.email, now)
            if device:
                # Not approved: the device learns at once that it gets nothing, for good. A link
                # mailed for it before that decline cannot approve it afterwards.
                settled = approval if approve else [AuthItem.used_at.set(now)]
                open_device = (AuthItem.pk.exists() & AuthItem.verified_user_id.does_not_exist()
                               & (AuthItem.expires_at > now))
                tx.update("device", AuthItem(link.target), actions=settled,
                          condition=open_device & AuthItem.used_at.does_not_exist() if approve else open_device)
            add_session(tx, session)
        return write
    settles_device = link.purpose == "device" and bool(link.target)
    try:
        transactions.run(write_settling(settles_device), idempotent=True)
    except ConditionFailed as failed:
        if approve or not settles_device or "device" not in failed or "login" in failed:
            raise Spent() from None
        try:
            transactions.run(write_settling(False), idempotent=True)
        except ConditionFailed:
            raise Spent() from None


def collect(item: AuthItem, now: int, session: NewSession) -> None:
    """An approved sign-in (login or device item) handed to the program that asked, once and
    only before it expires. Spent when it was collected or expired meanwhile."""
    def write(tx: Transaction) -> None:
        tx.update("sign-in", item, actions=[AuthItem.collected_at.set(now)],
                  condition=AuthItem.collected_at.does_not_exist() & (AuthItem.expires_at > now))
        add_session(tx, session)
    try:
        transactions.run(write, idempotent=True)
    except ConditionFailed:
        raise Spent() from None


# --- the device flow -------------------------------------------------------------------------

def start_device(device_code: str, user_code: str, client_ip: str, now: int, expires_at: int) -> bool:
    """A device sign-in and its user code; False when a live item holds that user code."""
    device_pk = _device_pk(device_code)
    def write(tx: Transaction) -> None:
        tx.save("usercode", AuthItem(_user_code_pk(user_code), kind="usercode", target=device_pk,
                                     expires_at=expires_at), condition=AuthItem.pk.does_not_exist())
        tx.save("device", AuthItem(device_pk, kind="device", user_code=user_code, created_at=now,
                                   expires_at=expires_at, requester_ip=client_ip))
    try:
        transactions.run(write)
    except ConditionFailed:
        return False
    return True


def device(device_code: str) -> Optional[AuthItem]:
    return _get(_device_pk(device_code))


def device_by_user_code(user_code: str) -> Optional[AuthItem]:
    pointer = _get(_user_code_pk(user_code))
    return _get(pointer.target) if pointer is not None else None


# --- sessions --------------------------------------------------------------------------------

def add_session(tx: Transaction, session: NewSession) -> None:
    tx.save("bearer", AuthItem(_bearer_pk(token_hash(session.token)), kind="bearer", user_id=session.user_id,
                               label=session.label, created_at=session.created_at, expires_at=session.expires_at,
                               session_epoch=session.epoch, signed_in_at=session.signed_in_at),
            condition=AuthItem.pk.does_not_exist())


def session(hashed_token: str) -> Optional[AuthItem]:
    """The session item, or None. Strongly consistent, like an API key's: a sign-out or a
    rotation applies to the very next request, not after the replicas catch up."""
    try:
        return AuthItem.get(_bearer_pk(hashed_token), consistent_read=True)
    except AuthItem.DoesNotExist:
        return None


def extend_session(item: AuthItem, expires_at: int, ends_at: int) -> bool:
    """Move the expiry out while used, never past the lifetime's end (``ends_at``); False when
    the session was revoked meanwhile. Only ever later, or down to ``ends_at`` from beyond it:
    a request whose clock runs behind, or which read the item before another request extended
    it, would pull the expiry back; its write is refused and it goes on (True, nothing written)."""
    later = AuthItem.expires_at.does_not_exist() | (AuthItem.expires_at < expires_at) | \
        (AuthItem.expires_at > ends_at)
    if update_if(item, [AuthItem.expires_at.set(expires_at)], AuthItem.pk.exists() & later):
        return True
    try:  # refused: for its expiry (still there), or revoked
        AuthItem.get(item.pk, consistent_read=True)
        return True
    except AuthItem.DoesNotExist:
        return False


def delete_session(hashed_token: str) -> None:
    """Idempotent."""
    AuthItem(_bearer_pk(hashed_token)).delete()


def replace_session(old_hashed_token: str, successor: NewSession) -> None:
    """Rotation: the presented session goes, its successor comes, together. Spent when the
    old one was already rotated or revoked."""
    def write(tx: Transaction) -> None:
        tx.delete("old-bearer", AuthItem(_bearer_pk(old_hashed_token)), condition=AuthItem.pk.exists())
        add_session(tx, successor)
    try:
        transactions.run(write, idempotent=True)
    except ConditionFailed:
        raise Spent() from None
