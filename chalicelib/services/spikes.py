"""Feedback items ("spikes"): record, list, resolve, delete, export.

A spike whose project key names a share (its id or slug) belongs to that share: it is
stored in the share's partition, counts against the share's per-period quota and is
visible to the share's owner. Recording is one DynamoDB transaction: the spike (whose id
is derived from the client's id, so a retried post is detected by the same conditional
put), the share's period counter (conditioned on the limit), its total and the owner's
usage. Either all of it is durable or none of it is.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Dict, Iterator, List, Optional

from chalicelib import clock
from chalicelib.errors import AuthRequired, NotFound, SpikeLimit
from chalicelib.logs import get_logger
from chalicelib.services import quotas, targets
from chalicelib.services.share_links import strip_access_segments
from chalicelib.services.identity import Principal
from chalicelib.settings import Settings
from chalicelib.store import ledger
from chalicelib.store import spikes as spike_store
from chalicelib.store.models import Share, Spike
from chalicelib.store.spikes import Filters, Scope
from chalicelib.store.transactions import Transaction

log = get_logger("spikes.spikes")

RATINGS = ("love", "like", "meh", "no")
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
class Page:
    items: List[dict]
    next_cursor: Optional[str]


# --- helpers ---------------------------------------------------------------------------------

def to_client(spike) -> dict:
    """The wire format the Spikes CLI and MCP server parse (CLIENTS.md), from a Spike or a store Row."""
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
    """Store one spike: one transaction, which also checks that what the cache told us about
    the project key still holds (services/targets.py); if not, redo it on fresh reads."""
    try:
        return _record(new, settings, base_url, now, targets.for_post(new.project_key))
    except spike_store.GuardFailed:
        return _record(new, settings, base_url, now, targets.fresh(new.project_key))


def _record(new: NewSpike, settings: Settings, base_url: str, now: Optional[datetime],
            target: targets.Target) -> Recorded:
    now = now or clock.now()
    share = target.share
    partition = spike_store.project_partition(new.project_key, share.share_id if share else None)
    spike_id = spike_store.spike_id_for(partition, new.client_id)
    created_at = clock.iso_millis(now)
    spike = spike_store.new(
        spike_id, partition, created_at,
        owner_id=share.owner_id if share else None, share_id=share.share_id if share else None,
        client_id=new.client_id, type=new.type, project_key=new.project_key,
        # Never keep an address that unlocks a protected share (docs/security.md).
        page=strip_access_segments(new.page), url=strip_access_segments(new.url),
        comments=new.comments, timestamp=new.timestamp or created_at, rating=new.rating,
        reviewer_id=new.reviewer.get("id") or ANONYMOUS["id"], reviewer=new.reviewer, selector=new.selector,
        xpath=new.xpath, element_text=new.element_text, bounding_box=new.bounding_box, viewport=new.viewport,
        resolved=False,
    )
    limit = target.spike_limit(settings)

    def count(tx: Transaction) -> None:
        ledger.count_spike(tx, share.share_id, share.owner_id, clock.period_of(now), limit, clock.epoch())
    try:
        if not spike_store.insert(spike, count if share is not None else None, guard=target.add_checks):
            return Recorded(spike_id, False)  # the same client id again: already stored
    except spike_store.QuotaReached:
        raise SpikeLimit(f"This share has reached its limit of {limit} feedback items this period",
                         quotas.upgrade_url(settings, base_url), limit) from None
    log.info("spike.recorded", spike_id=spike_id, share_id=spike.share_id)
    return Recorded(spike_id, True)


# --- who may see what --------------------------------------------------------------------------

def scope_for(project: Optional[str], principal: Optional[Principal]) -> Scope:
    """``project`` makes a listing public (the contract); otherwise the admin sees every
    spike and a user only the spikes of their own shares."""
    if project:
        return project_scope(project, share_of(project))
    if principal is None:
        raise AuthRequired("Pass ?project=, a bearer token, or the admin ?token=")
    if principal.is_admin:
        return spike_store.ALL
    return Scope("owner", principal.user_id)


def share_of(project_key: str) -> Optional[Share]:
    """The share a project key names (its id or slug), if any: cached for a few seconds
    (services/targets.py), so that a listing is one Query."""
    return targets.for_read(project_key).share


def project_scope(project: str, share: Optional[Share]) -> Scope:
    """The spikes of a project key, or of the share it names (whose access the caller checked)."""
    return Scope("project", spike_store.project_partition(project, share.share_id if share else None))


def list_page(scope: Scope, filters: Filters, limit: int, cursor: Optional[str], secret: str) -> Page:
    items, next_cursor = spike_store.page(scope, filters, limit, cursor, secret)
    return Page([to_client(spike) for spike in items], next_cursor)


def iterate(scope: Scope, filters: Filters) -> Iterator[Spike]:
    """Every matching spike, newest first (exports)."""
    return spike_store.iterate(scope, filters)


# --- one spike -------------------------------------------------------------------------------

def get_for(principal: Optional[Principal], spike_id: str) -> Spike:
    """The owner of the spike's share and the admin may act on it; everyone else gets the
    same 404 as for an id that does not exist."""
    if principal is None:
        raise AuthRequired()
    spike = spike_store.get(spike_id)
    if spike is None:
        raise NotFound("Spike not found")
    if principal.is_admin or (spike.owner_id is not None and spike.owner_id == principal.user_id):
        return spike
    raise NotFound("Spike not found")


def set_resolved(principal: Optional[Principal], spike_id: str, resolved: bool) -> Spike:
    spike = get_for(principal, spike_id)
    return spike_store.set_resolved(spike, clock.iso_millis(clock.now()) if resolved else None)


def delete(principal: Optional[Principal], spike_id: str) -> None:
    spike_store.delete(get_for(principal, spike_id))


# --- shares' side ----------------------------------------------------------------------------

def export_share(share_id: str) -> List[dict]:
    return [to_client(spike) for spike in iterate(Scope("project", share_id), Filters())]


def delete_share_spikes(share_id: str, created_at: Optional[str] = None) -> int:
    """Remove every spike of a share and the share's counters. Idempotent."""
    removed = spike_store.delete_project(share_id)
    today = clock.now()
    periods = clock.periods_between(clock.parse_iso(created_at) if created_at else today, today)
    ledger.delete_share_counters(share_id, periods)
    return removed
