"""Shares: lookup by id or slug (used by spikes, serving and billing), creation (direct and
presigned uploads), listing, deletion, and what serving needs (files, widget, passwords)."""
from __future__ import annotations

import html
import ipaddress
import math
import re
import secrets
import socket
import string
import unicodedata
from dataclasses import dataclass
from typing import Iterator, List, Optional, Tuple
from urllib.parse import unquote, urlsplit

from pynamodb.exceptions import UpdateError

from chalicelib import clock
from chalicelib.errors import (Conflict, InvalidFilename, NotFound, ShareLimit,
                               UpgradeRequired, ValidationFailed)
from chalicelib.logs import get_logger
from chalicelib.services import quotas, ratelimit, uploads
from chalicelib.crypto import hash_password, sign, verify_password, verify_signature
from chalicelib.services.uploads import UploadedFile
from chalicelib.settings import Settings
from chalicelib.store.files import ShareFiles
from chalicelib.store.models import Share, User
from chalicelib.store import ledger, transactions
from chalicelib.store.transactions import ConditionFailed, Transaction

log = get_logger("spikes.shares")

SHARE_ID_PATTERN = re.compile(r"^sh_[a-z0-9]{12}$")


def share_pk(share_id: str) -> str:
    return f"share#{share_id}"


def slug_pk(slug: str) -> str:
    return f"slug#{slug}"


def get_by_id(share_id: str) -> Optional[Share]:
    try:
        return Share.get(share_pk(share_id))
    except Share.DoesNotExist:
        return None


def resolve(key: str) -> Optional[Share]:
    """The share a project key / path segment names: its id (``sh_...``) or its slug."""
    if not key:
        return None
    if SHARE_ID_PATTERN.match(key):
        return get_by_id(key)
    try:
        claim = Share.get(slug_pk(key.lower()))
    except Share.DoesNotExist:
        return None
    return get_by_id(claim.share_id)


def strip_pro_features(owner_id: str) -> int:
    """On downgrade: remove passwords and webhook URLs from the owner's shares, deleting
    nothing. Returns how many shares changed. Idempotent."""
    changed = 0
    for share in Share.owner_index.query(owner_id):
        if share.password_hash is None and share.webhook_url is None:
            continue
        share.update(actions=[Share.password_hash.remove(), Share.webhook_url.remove(),
                              Share.password_version.add(1)])
        changed += 1
    return changed


# --- creating shares -------------------------------------------------------------------------

SLUG_MAX_CHARS = 48
SLUG_NUMBERED_ATTEMPTS = 8  # my-site, my-site-2 … my-site-9, then random suffixes
SLUG_RANDOM_ATTEMPTS = 4
PENDING, ACTIVE, LOCKED = "pending", "active", "locked"
# Literal routes next to /shares/{slug}: a share with such a slug could not be addressed.
RESERVED_SLUGS = {"uploads"}
_ID_ALPHABET = string.ascii_lowercase + string.digits
MAX_TRANSACTION_ATTEMPTS = 12
BUSY = "Too many concurrent changes; retry shortly"


def new_share_id() -> str:
    return "sh_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(12))


def slugify(text: Optional[str]) -> str:
    """Readable slug: ASCII lowercase letters, digits and single dashes; "share" if nothing is left."""
    ascii_text = unicodedata.normalize("NFKD", text or "").encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:SLUG_MAX_CHARS].rstrip("-") or "share"


def _slug_candidates(base: str) -> Iterator[str]:
    if base not in RESERVED_SLUGS:
        yield base
    for number in range(2, SLUG_NUMBERED_ATTEMPTS + 2):
        suffix = f"-{number}"
        yield base[:SLUG_MAX_CHARS - len(suffix)].rstrip("-") + suffix
    for _ in range(SLUG_RANDOM_ATTEMPTS):
        suffix = "-" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(6))
        yield base[:SLUG_MAX_CHARS - len(suffix)].rstrip("-") + suffix


@dataclass(frozen=True)
class ShareOptions:
    """What the owner asked for; ``slug`` is a wish, the stored slug may get a suffix."""
    name: str
    slug: Optional[str] = None
    password: Optional[str] = None
    webhook_url: Optional[str] = None


@dataclass(frozen=True)
class FileSpec:
    path: str
    size: int
    content_type: str


def share_url(base_url: str, share: Share) -> str:
    return f"{base_url}/s/{share.slug}"


def _limit_error(settings: Settings, base_url: str, limit: int) -> ShareLimit:
    return ShareLimit(f"Share limit reached: your plan allows {limit} active shares. Delete one or upgrade.",
                      quotas.upgrade_url(settings, base_url), limit)


def check_options(settings: Settings, user: User, options: ShareOptions, base_url: str) -> Optional[int]:
    """Refuse Pro-only options for free users, unsafe webhooks and users already at their
    share limit (a fast pre-check; the transaction in ``_insert`` is the real guard).
    Returns the user's share limit (None = unlimited)."""
    tier = quotas.effective_tier(user)
    if tier != quotas.PRO and (options.password or options.webhook_url):
        feature = "Password-protected shares" if options.password else "Webhook URLs"
        raise UpgradeRequired(f"{feature} require a Pro subscription",
                              extra={"upgrade_url": quotas.upgrade_url(settings, base_url)})
    if options.webhook_url:
        validate_webhook_url(options.webhook_url)
    limit = quotas.limits_for(settings, tier).share_limit
    if limit is not None and int(user.active_shares or 0) >= limit:
        raise _limit_error(settings, base_url, limit)
    return limit


def _new_share(share_id: str, user: User, options: ShareOptions, files: List[FileSpec], status: str) -> Share:
    return Share(
        share_pk(share_id), share_id=share_id, owner_id=user.user_id, name=options.name[:200],
        created_at=clock.iso(clock.now()), status=status,
        password_hash=hash_password(options.password) if options.password else None,
        webhook_url=options.webhook_url or None, file_count=len(files),
        total_bytes=sum(f.size for f in files),
        files={f.path: {"size": f.size, "type": f.content_type} for f in files})


def _insert(share: Share, user: User, slug_wish: str, limit: Optional[int], settings: Settings,
            base_url: str) -> Share:
    """Store the share, claim its slug and count it against the owner's limit in one
    transaction, so neither a slug nor the share count can be raced. Tries the next slug
    candidate when the slug is taken; retries when a concurrent transaction conflicts."""
    user_condition = User.user_id.exists()
    if limit is not None:
        user_condition &= (User.active_shares < limit) | User.active_shares.does_not_exist()
    candidates = _slug_candidates(slugify(slug_wish))
    share.slug = next(candidates)

    def write(tx: Transaction) -> None:
        tx.save("share", share, condition=Share.pk.does_not_exist())
        tx.save("slug", Share(slug_pk(share.slug), share_id=share.share_id), condition=Share.pk.does_not_exist())
        tx.update("owner", User(user.user_id), actions=[User.active_shares.add(1)], condition=user_condition)
    while True:
        try:
            transactions.run(write, attempts=MAX_TRANSACTION_ATTEMPTS, busy_message=BUSY)
            return share
        except ConditionFailed as failed:
            if "owner" in failed:
                raise _limit_error(settings, base_url, limit or 0) from None
            if "share" in failed:
                # 36^12 ids: a collision is practically impossible, and the files already
                # live under this id, so the client retries rather than us re-uploading.
                raise Conflict("Share id collision; retry the upload") from None
            share.slug = next(candidates, None)
            if share.slug is None:
                raise Conflict("Could not find a free slug for this share; try another name") from None


def create_share(settings: Settings, share_files: ShareFiles, user: User, options: ShareOptions, files: List[UploadedFile],
                 base_url: str) -> Share:
    """The direct upload: files to S3 first, then the share record (so a visible share always
    has its files). If the record cannot be written, the uploaded files are removed."""
    if not files:
        raise ValidationFailed.field("files", "Upload at least one file", "MISSING_FIELD")
    uploads.check_total_size(sum(f.size for f in files), settings.max_share_bytes)
    limit = check_options(settings, user, options, base_url)
    specs = [FileSpec(f.path, f.size, f.content_type) for f in files]
    share = _new_share(new_share_id(), user, options, specs, ACTIVE)
    try:
        share_files.put_all(share.share_id, [(f.path, f.data, f.content_type) for f in files])
        return _insert(share, user, options.slug or options.name, limit, settings, base_url)
    except BaseException:
        try:
            share_files.delete_all(share.share_id)
        except Exception:  # noqa: BLE001 - keep the original error; the files are unreachable anyway
            log.warning("share.cleanup_failed", share_id=share.share_id)
        raise


def start_upload(settings: Settings, share_files: ShareFiles, user: User, options: ShareOptions, files: List[FileSpec],
                 base_url: str) -> Tuple[Share, List[dict]]:
    """The presigned flow for shares too large for one request: the share is stored as
    ``pending`` (and counted against the limit) and every file gets a presigned PUT URL."""
    if not files:
        raise ValidationFailed.field("files", "List at least one file", "MISSING_FIELD")
    if len(files) > settings.max_share_files:
        raise ValidationFailed.field("files", f"A share holds at most {settings.max_share_files} files",
                                     "TOO_MANY_FILES")
    if len({f.path for f in files}) != len(files):
        raise InvalidFilename("The same file is listed twice")
    uploads.check_total_size(sum(f.size for f in files), settings.max_share_bytes)
    limit = check_options(settings, user, options, base_url)
    share = _insert(_new_share(new_share_id(), user, options, files, PENDING), user, options.slug or options.name, limit,
                    settings, base_url)
    targets = [{
        "path": f.path, "method": "PUT", "headers": {"Content-Type": f.content_type},
        "url": share_files.upload_url(share.share_id, f.path, f.content_type, settings.presign_ttl_seconds),
    } for f in files]
    return share, targets


def complete_upload(settings: Settings, share_files: ShareFiles, user: User, key: str) -> Share:
    """Check that every announced file arrived with its announced size, then activate."""
    share = get_owned(user, key)
    if share.status != PENDING:
        return share
    stored = share_files.sizes(share.share_id)
    problems, total = [], 0
    for path, info in sorted((share.files or {}).items()):
        size = stored.get(path)
        if size is None:
            problems.append({"field": path, "message": "File was not uploaded", "code": "MISSING_UPLOAD"})
            continue
        total += size
        if size != int(info["size"]):
            problems.append({"field": path, "message": f"Uploaded {size} bytes, announced {info['size']}",
                             "code": "SIZE_MISMATCH"})
    uploads.check_total_size(total, settings.max_share_bytes)
    if problems:
        raise ValidationFailed("Some files are missing or differ from the announced sizes", details=problems)
    try:
        share.update(actions=[Share.status.set(ACTIVE)], condition=Share.status == PENDING)
    except UpdateError as exc:
        if exc.cause_response_code != "ConditionalCheckFailedException":
            raise
        share.refresh()
    return share


# --- webhooks --------------------------------------------------------------------------------

def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def validate_webhook_url(url: str) -> None:
    """https only, and every address the host resolves to must be public: the server must not
    be steerable at its own network (metadata endpoint, loopback, private ranges)."""
    def invalid(message: str) -> ValidationFailed:
        return ValidationFailed.field("webhook_url", message, "INVALID_WEBHOOK_URL")
    try:
        parsed = urlsplit(url)
        host, port = parsed.hostname, parsed.port
    except ValueError:
        raise invalid("Not a valid URL") from None
    if parsed.scheme != "https" or not host:
        raise invalid("Webhook URLs must use https")
    if parsed.username or parsed.password:
        raise invalid("Webhook URLs must not carry credentials")
    try:
        addresses = {ipaddress.ip_address(host).compressed}
    except ValueError:
        try:
            addresses = {info[4][0] for info in socket.getaddrinfo(host, port or 443, proto=socket.IPPROTO_TCP)}
        except (OSError, UnicodeError):
            raise invalid("Webhook host does not resolve") from None
    if not addresses or not all(_is_public(address.split("%", 1)[0]) for address in addresses):
        raise invalid("Webhook URLs must point at a public address")


# --- reading and deleting --------------------------------------------------------------------

def get_owned(user: User, key: str) -> Share:
    """The caller's share by id or slug. Someone else's share is "not found", never
    "forbidden": a 403 would confirm that the share exists."""
    share = resolve(key)
    if share is None or share.owner_id != user.user_id:
        raise NotFound("Share not found")
    return share


@dataclass(frozen=True)
class ShareChanges:
    """What the owner changes on an existing share; ``None`` leaves a field alone, "" removes it."""
    name: Optional[str] = None
    password: Optional[str] = None
    webhook_url: Optional[str] = None


def update_share(settings: Settings, user: User, key: str, changes: ShareChanges, base_url: str) -> Share:
    """Rename a share, set/replace/remove its password and its webhook URL. Setting a Pro
    feature needs Pro; removing one never does (a downgraded owner can always clean up)."""
    share = get_owned(user, key)
    if quotas.effective_tier(user) != quotas.PRO and (changes.password or changes.webhook_url):
        feature = "Password-protected shares" if changes.password else "Webhook URLs"
        raise UpgradeRequired(f"{feature} require a Pro subscription",
                              extra={"upgrade_url": quotas.upgrade_url(settings, base_url)})
    if changes.webhook_url:
        validate_webhook_url(changes.webhook_url)
    actions = []
    if changes.name is not None:
        if not changes.name.strip():
            raise ValidationFailed.field("name", "name cannot be empty")
        actions.append(Share.name.set(changes.name.strip()[:200]))
    if changes.password is not None:
        actions.append(Share.password_hash.set(hash_password(changes.password)) if changes.password
                       else Share.password_hash.remove())
        actions.append(Share.password_version.add(1))  # unlock cookies of the old password stop working
    if changes.webhook_url is not None:
        actions.append(Share.webhook_url.set(changes.webhook_url) if changes.webhook_url
                       else Share.webhook_url.remove())
    if not actions:
        return share
    try:
        # The condition keeps a concurrent delete from being resurrected as a partial item.
        share.update(actions=actions, condition=Share.owner_id == user.user_id)
    except UpdateError as exc:
        if exc.cause_response_code == "ConditionalCheckFailedException":
            raise NotFound("Share not found") from None
        raise
    return share


def list_owned(user: User) -> List[Tuple[Share, int]]:
    owned = list(Share.owner_index.query(user.user_id, scan_index_forward=False))
    counts = ledger.share_spike_counts([share.share_id for share in owned]) if owned else {}
    return [(share, counts.get(share.share_id, 0)) for share in owned]


def export_spikes(share: Share) -> List[dict]:
    from chalicelib.services import spikes
    return spikes.export_share(share.share_id)


def delete_share(share_files: ShareFiles, user: User, key: str) -> List[dict]:
    """Export the share's spikes, then remove the share (record, slug claim and its place in
    the owner's count, in one transaction), its files, its spikes and its counters."""
    from chalicelib.services import spikes
    share = get_owned(user, key)
    exported = spikes.export_share(share.share_id)
    decrement = True

    def write(tx: Transaction) -> None:
        tx.delete("share", share, condition=Share.owner_id == user.user_id)
        tx.delete("slug", Share(slug_pk(share.slug), share_id=share.share_id), condition=Share.share_id == share.share_id)
        if decrement:
            tx.update("owner", User(user.user_id), actions=[User.active_shares.add(-1)], condition=User.active_shares > 0)
    while True:
        try:
            transactions.run(write, attempts=MAX_TRANSACTION_ATTEMPTS, busy_message=BUSY)
            break
        except ConditionFailed as failed:
            if "share" in failed or "slug" in failed or not decrement:
                raise NotFound("Share not found") from None  # deleted concurrently
            decrement = False  # the owner's count drifted to 0: never count below zero
    share_files.delete_all(share.share_id)
    spikes.delete_share_spikes(share.share_id, share.created_at)
    return exported


# --- serving ---------------------------------------------------------------------------------

UNLOCK_COOKIE = "spikes_unlock"
# First path segment that carries a protected share's access token: /s/<slug>/~u.<token>/…
ACCESS_PREFIX = "~u."
_URL_PATH = re.compile(r"^(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^/?#]*)?(?P<path>[^?#]*)(?P<tail>.*)$", re.DOTALL)


def strip_access_segments(url: str) -> str:
    """``url`` without any access-path segment (``~u.<token>``, also percent-encoded): an
    address that unlocks a share must never be stored or shown."""
    if not url or "u." not in unquote(url).lower():
        return url
    match = _URL_PATH.match(url)
    head, path, tail = match.group("head") or "", match.group("path"), match.group("tail")
    kept = [segment for segment in path.split("/") if not unquote(segment).lower().startswith(ACCESS_PREFIX)]
    return head + "/".join(kept) + tail
UNLOCK_TTL_SECONDS = 12 * 3600


@dataclass(frozen=True)
class ServedFile:
    path: str
    content_type: str
    size: int
    body: bytes = b""
    etag: str = ""


def served_share(slug: str) -> Share:
    """An active share by slug (or id). Pending shares do not exist for viewers."""
    share = resolve(slug)
    if share is None or share.status != ACTIVE:
        raise NotFound("Not found")
    return share


def entry_path(share: Share, folder: str = "") -> Optional[str]:
    """What a folder URL serves: its index.html, or for the top folder the only HTML file."""
    files = share.files or {}
    index = f"{folder}/index.html" if folder else "index.html"
    if index in files:
        return index
    if not folder:
        pages = [path for path in files if "/" not in path and path.lower().endswith((".html", ".htm"))]
        if len(pages) == 1:
            return pages[0]
    return None


def file_info(share: Share, path: str) -> ServedFile:
    info = (share.files or {}).get(path)
    if info is None:
        raise NotFound("Not found")
    return ServedFile(path=path, content_type=info["type"], size=int(info["size"]))


def read_file(share_files: ShareFiles, share: Share, path: str) -> ServedFile:
    info = file_info(share, path)
    stored = share_files.read(share.share_id, path)
    if stored is None:
        raise NotFound("Not found")
    return ServedFile(path=path, content_type=info.content_type, size=info.size, body=stored.body, etag=stored.etag)


def widget_tag(base_url: str, share: Share) -> str:
    return (f'<script src="{html.escape(base_url)}/widget.js" data-endpoint="{html.escape(base_url)}/spikes" '
            f'data-project="{html.escape(share.share_id)}"></script>')


_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)
_EXISTING_WIDGET = re.compile(r"<script\b[^>]*\bsrc\s*=\s*[\"']?[^\"'>\s]*/widget\.js", re.IGNORECASE)


def inject_widget(page: str, tag: str) -> str:
    """Add the widget before the last ``</body>`` (or at the end), unless the page has it."""
    if _EXISTING_WIDGET.search(page):
        return page
    ends = list(_BODY_END.finditer(page))
    if not ends:
        return page + tag
    at = ends[-1].start()
    return page[:at] + tag + page[at:]


_HEAD_START = re.compile(r"<head\b[^>]*>", re.IGNORECASE)
_HTML_START = re.compile(r"<html\b[^>]*>", re.IGNORECASE)
_DOCTYPE = re.compile(r"^\s*<!doctype[^>]*>", re.IGNORECASE)
_EXISTING_BASE = re.compile(r"<base\b[^>]*\bhref", re.IGNORECASE)


def inject_base(page: str, href: str) -> str:
    """Make relative URLs resolve under ``href``: first thing in <head> (or where a <head>
    would start). A page with its own <base href> keeps it."""
    if _EXISTING_BASE.search(page):
        return page
    tag = f'<base href="{html.escape(href)}">'
    for pattern in (_HEAD_START, _HTML_START, _DOCTYPE):
        found = pattern.search(page)
        if found:
            return page[:found.end()] + tag + page[found.end():]
    return tag + page


# Password-protected shares: an argon2 check (rate limited per slug and client address),
# then a signed cookie scoped to the share's path so its assets load without the password.

def password_matches(settings: Settings, share: Share, password: str, client_ip: str) -> bool:
    # Every attempt counts, right or wrong: refusing only after wrong ones would let a
    # guesser tell a right answer by its status code.
    ratelimit.enforce("share-password", f"{share.slug}|{client_ip}", settings.rate_password_per_minute, 60)
    return bool(share.password_hash) and verify_password(share.password_hash, password)


def is_private(share: Share) -> bool:
    """Password-protected (or locked after Pro ended): its pages and its feedback are private."""
    return bool(share.password_hash) or share.status == LOCKED


def require_feedback_access(settings: Settings, share: Share, principal, password: Optional[str],
                            client_ip: str) -> None:
    """The feedback of a private share: its owner (bearer token or API key with spikes:read),
    the admin, or whoever knows the password. Everyone else gets the 404 of a share that does
    not exist, so the answer does not confirm that there is feedback to find."""
    if principal is not None and (principal.is_admin or principal.user_id == share.owner_id):
        principal.require("spikes:read")
        return
    if password is not None and share.status != LOCKED and password_matches(settings, share, password, client_ip):
        return
    raise NotFound("Project not found")


def _unlock_message(share: Share, expires: int) -> str:
    return f"unlock|{share.share_id}|{int(share.password_version or 0)}|{expires}"


def unlock_token(settings: Settings, share: Share, now: Optional[float] = None) -> str:
    # Expiry rounded up to the hour: pages served within the hour share one token, so the
    # asset URLs that carry it stay cacheable.
    expires = math.ceil(((clock.epoch() if now is None else now) + UNLOCK_TTL_SECONDS) / 3600) * 3600
    signature = sign(settings.secret_key.get_secret_value(), _unlock_message(share, expires))
    return f"{expires}.{signature}"


def unlock_token_valid(settings: Settings, share: Share, token: Optional[str], now: Optional[float] = None) -> bool:
    """Valid for this share, its current password version and until it expires."""
    expires_text, _, signature = (token or "").partition(".")
    if not expires_text.isdigit() or not signature:
        return False
    if int(expires_text) < (clock.epoch() if now is None else now):
        return False
    return verify_signature(settings.secret_key.get_secret_value(), _unlock_message(share, int(expires_text)),
                            signature)
