"""Feedback items ("spikes"): record, list, resolve, delete, export.

A spike whose project key names a share (its id or slug) belongs to that share: it is
stored in the share's partition, counts against the share's per-period quota and is
visible to the share's owner. Recording is one DynamoDB transaction: the spike (whose id
is derived from the client's id, so a retried post is detected by the same conditional
put), the share's period counter (conditioned on the limit), its total and the owner's
usage. Either all of it is durable or none of it is.
"""
from __future__ import annotations

import base64
import hashlib
import secrets as _secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Dict, Iterator, List, Optional

from pynamodb.exceptions import UpdateError

from chalicelib import clock
from chalicelib.errors import AuthRequired, InvalidCursor, NotFound, SpikeLimit
from chalicelib.logs import get_logger
from chalicelib.services import quotas
from chalicelib.services.share_links import strip_access_segments
from chalicelib.services.identity import Principal
from chalicelib.settings import Settings
from chalicelib.store import cursors
from chalicelib.store import ledger, transactions
from chalicelib.store import shares as share_store
from chalicelib.store.models import Share, Spike, User
from chalicelib.store.transactions import ConditionFailed, Transaction

log = get_logger("spikes.spikes")

RATINGS = ("love", "like", "meh", "no")
TYPES = ("page", "element")
ANONYMOUS = {"id": "anon", "name": "Anonymous"}


@dataclass(frozen=True)
class NewSpike:
    type: str
    project_key: str
    client_id: Optional[str] = None
    page: str = ""
    url: str = ""
    comments: str = ""
    timestamp: str = ""
    rating: Optional[str] = None
    reviewer: Dict[str, str] = field(default_factory=lambda: dict(ANONYMOUS))
    selector: Optional[str] = None
    xpath: Optional[str] = None
    element_text: Optional[str] = None
    bounding_box: Optional[Dict[str, int]] = None
    viewport: Optional[Dict[str, int]] = None


@dataclass(frozen=True)
class Recorded:
    id: str
    created: bool  # False when this was a retry of an already stored spike


@dataclass(frozen=True)
class Filters:
    page: Optional[str] = None
    reviewer: Optional[str] = None
    rating: Optional[str] = None
    resolved: Optional[bool] = None


@dataclass(frozen=True)
class Scope:
    """Which spikes a caller may list: one partition of one index."""
    index: str  # "project" | "owner" | "feed"
    partition: str

    @property
    def cursor_scope(self) -> str:
        return f"{self.index}:{self.partition}"


@dataclass(frozen=True)
class Page:
    items: List[dict]
    next_cursor: Optional[str]


# --- helpers ---------------------------------------------------------------------------------

def partition_for(project_key: str, share: Optional[Share]) -> str:
    return share.share_id if share is not None else f"key#{project_key}"


def spike_id_for(partition: str, client_id: Optional[str]) -> str:
    """Deterministic for a client id within a project (retry-safe), random otherwise."""
    if client_id is None:
        raw = _secrets.token_bytes(13)
    else:
        raw = hashlib.sha256(f"{partition}\x00{client_id}".encode("utf-8")).digest()[:13]
    return "spk_" + base64.b32encode(raw).decode("ascii").rstrip("=").lower()


def sort_key_for(created_at: str, spike_id: str) -> str:
    return f"{created_at}#{spike_id}"


def to_client(spike: Spike) -> dict:
    """The wire format the Spikes CLI and MCP server parse (CLIENTS.md)."""
    reviewer = dict(spike.reviewer or ANONYMOUS)
    out = {
        "id": spike.spike_id,
        "type": spike.type,
        "projectKey": spike.project_key,
        "page": spike.page or "",
        "url": spike.url or "",
        "comments": spike.comments or "",
        "timestamp": spike.timestamp or spike.created_at,
        "reviewer": reviewer,
        "rating": spike.rating,
        "resolved": bool(spike.resolved),
        "resolvedAt": spike.resolved_at,
    }
    for key, value in (("selector", spike.selector), ("xpath", spike.xpath), ("elementText", spike.element_text),
                       ("boundingBox", spike.bounding_box), ("viewport", spike.viewport)):
        if value is not None:
            out[key] = value
    return out


# --- recording -------------------------------------------------------------------------------

def record(new: NewSpike, settings: Settings, base_url: str, now: Optional[datetime] = None) -> Recorded:
    now = now or clock.now()
    share = share_store.resolve(new.project_key)
    partition = partition_for(new.project_key, share)
    spike_id = spike_id_for(partition, new.client_id)
    created_at = clock.iso_millis(now)
    spike = Spike(
        spike_id, project=partition, sort_key=sort_key_for(created_at, spike_id), feed="all",
        owner_id=share.owner_id if share else None, share_id=share.share_id if share else None,
        client_id=new.client_id, type=new.type, project_key=new.project_key,
        # Never keep an address that unlocks a protected share (docs/security.md).
        page=strip_access_segments(new.page), url=strip_access_segments(new.url),
        comments=new.comments, timestamp=new.timestamp or created_at, rating=new.rating,
        reviewer_id=new.reviewer.get("id") or ANONYMOUS["id"], reviewer=new.reviewer, selector=new.selector,
        xpath=new.xpath, element_text=new.element_text, bounding_box=new.bounding_box, viewport=new.viewport,
        resolved=False, created_at=created_at,
    )
    limit = _spike_limit(settings, share)

    def write(tx: Transaction) -> None:
        tx.save("spike", spike, condition=Spike.spike_id.does_not_exist())
        if share is not None:
            ledger.count_spike(tx, share.share_id, share.owner_id, clock.period_of(now), limit, clock.epoch())
    try:
        transactions.run(write, token=_secrets.token_hex(16))
    except ConditionFailed as failed:
        if "spike" in failed:
            return Recorded(spike_id, False)  # the same client id again: already stored
        raise SpikeLimit(f"This share has reached its limit of {limit} feedback items this period",
                         quotas.upgrade_url(settings, base_url), limit) from None
    log.info("spike.recorded", spike_id=spike_id, share_id=spike.share_id)
    return Recorded(spike_id, True)


def _spike_limit(settings: Settings, share: Optional[Share]) -> Optional[int]:
    if share is None:
        return None
    try:
        owner = User.get(share.owner_id)
    except User.DoesNotExist:
        return quotas.limits_for(settings, quotas.FREE).spike_limit
    return quotas.limits_for(settings, quotas.effective_tier(owner)).spike_limit


# --- who may see what --------------------------------------------------------------------------

def scope_for(project: Optional[str], principal: Optional[Principal]) -> Scope:
    """``project`` makes a listing public (the contract); otherwise the admin sees every
    spike and a user only the spikes of their own shares."""
    if project:
        return project_scope(project, share_store.resolve(project))
    if principal is None:
        raise AuthRequired("Pass ?project=, a bearer token, or the admin ?token=")
    if principal.is_admin:
        return Scope("feed", "all")
    return Scope("owner", principal.user_id)


def share_of(project_key: str) -> Optional[Share]:
    """The share a project key names (its id or slug), if any."""
    return share_store.resolve(project_key)


def project_scope(project: str, share: Optional[Share]) -> Scope:
    """The spikes of a project key, or of the share it names (whose access the caller checked)."""
    return Scope("project", partition_for(project, share))


def _index(scope: Scope):
    return {"project": Spike.project_index, "owner": Spike.owner_index, "feed": Spike.feed_index}[scope.index]


def _hash_attribute(scope: Scope) -> str:
    return {"project": "project", "owner": "owner_id", "feed": "feed"}[scope.index]


def _filter_condition(filters: Filters):
    condition = None
    for part in (
        Spike.page == filters.page if filters.page else None,
        Spike.reviewer_id == filters.reviewer if filters.reviewer else None,
        Spike.rating == filters.rating if filters.rating else None,
        Spike.resolved == filters.resolved if filters.resolved is not None else None,
    ):
        if part is not None:
            condition = part if condition is None else condition & part
    return condition


def list_page(scope: Scope, filters: Filters, limit: int, cursor: Optional[str], secret: str) -> Page:
    start = cursors.decode(secret, scope.cursor_scope, cursor)
    if start is not None and start.get(_hash_attribute(scope)) != scope.partition:
        raise InvalidCursor()
    last_key = {name: {"S": value} for name, value in start.items()} if start else None
    results = _index(scope).query(
        scope.partition, scan_index_forward=False, filter_condition=_filter_condition(filters),
        limit=limit + 1, last_evaluated_key=last_key, page_size=min(1000, max(limit + 1, 50)))
    items = list(results)
    next_cursor = None
    if len(items) > limit:
        items = items[:limit]
        last = items[-1]
        next_cursor = cursors.encode(secret, scope.cursor_scope, {
            "spike_id": last.spike_id, "sort_key": last.sort_key, _hash_attribute(scope): scope.partition})
    return Page([to_client(spike) for spike in items], next_cursor)


def iterate(scope: Scope, filters: Filters) -> Iterator[Spike]:
    """Every matching spike, newest first, page by page (exports)."""
    yield from _index(scope).query(scope.partition, scan_index_forward=False,
                                   filter_condition=_filter_condition(filters), page_size=1000)


# --- one spike -------------------------------------------------------------------------------

def get_for(principal: Optional[Principal], spike_id: str) -> Spike:
    """The owner of the spike's share and the admin may act on it; everyone else gets the
    same 404 as for an id that does not exist."""
    if principal is None:
        raise AuthRequired()
    try:
        spike = Spike.get(spike_id)
    except Spike.DoesNotExist:
        raise NotFound("Spike not found") from None
    if principal.is_admin or (spike.owner_id is not None and spike.owner_id == principal.user_id):
        return spike
    raise NotFound("Spike not found")


def set_resolved(principal: Optional[Principal], spike_id: str, resolved: bool) -> Spike:
    spike = get_for(principal, spike_id)
    resolved_at = clock.iso_millis(clock.now()) if resolved else None
    try:
        spike.update(actions=[Spike.resolved.set(resolved),
                              Spike.resolved_at.set(resolved_at) if resolved_at else Spike.resolved_at.remove()],
                     condition=Spike.spike_id.exists())
    except UpdateError as exc:  # deleted between the read and the write
        if exc.cause_response_code == "ConditionalCheckFailedException":
            raise NotFound("Spike not found") from None
        raise
    return spike


def delete(principal: Optional[Principal], spike_id: str) -> None:
    spike = get_for(principal, spike_id)

    def write(tx: Transaction) -> None:
        tx.delete("spike", spike, condition=Spike.spike_id.exists())
        if spike.share_id:
            ledger.uncount_spike(tx, spike.share_id)
    try:
        transactions.run(write)
    except ConditionFailed as failed:
        if "spike" in failed:
            raise NotFound("Spike not found") from None
        spike.delete(condition=Spike.spike_id.exists())  # counter already at zero: just delete


# --- shares' side ----------------------------------------------------------------------------

def export_share(share_id: str) -> List[dict]:
    return [to_client(spike) for spike in iterate(Scope("project", share_id), Filters())]


def delete_share_spikes(share_id: str, created_at: Optional[str] = None) -> int:
    """Remove every spike of a share and the share's counters. Idempotent."""
    removed = 0
    with Spike.batch_write() as batch:
        for spike in Spike.project_index.query(share_id, attributes_to_get=["spike_id"]):
            batch.delete(Spike(spike.spike_id))
            removed += 1
    today = clock.now()
    periods = clock.periods_between(clock.parse_iso(created_at) if created_at else today, today)
    ledger.delete_share_counters(share_id, periods)
    return removed
