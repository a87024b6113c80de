"""Feedback items ("spikes"): record, list, resolve, delete, export.

A spike whose project key names a share (its id or slug) belongs to that share: it is
stored in the share's partition, counts against the share's per-period quota and is
visible to the share's owner. A spike an authenticated user posts under a project key of
their own belongs to that user. A spike keeps the id its client gave it (the widget's and
the CLI's nanoids), unique within its project: the storage key is derived from (project,
id), so a retried or re-pushed post is detected by the same conditional put. Recording is
one DynamoDB transaction: the spike, the share's period counter (conditioned on the
limit), its total and the owner's usage. Either all of it is durable or none of it is.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Dict, Iterator, List, Optional

from chalicelib import clock
from chalicelib.errors import AuthRequired, Conflict, NotFound, SpikeLimit
from chalicelib.logs import get_logger
from chalicelib.services import metering, outbound_webhooks, quotas, targets
from chalicelib.services.share_links import strip_access_segments
from chalicelib.services.identity import Principal
from chalicelib.settings import Settings
from chalicelib.store import accounts as account_store
from chalicelib.store import ledger, spike_ids
from chalicelib.store import shares as share_store
from chalicelib.store import spikes as spike_store
from chalicelib.store.models import Share, Spike
from chalicelib.store.rows import Row
from chalicelib.store.spikes import Filters, Scope
from chalicelib.store.transactions import ConditionFailed, Transaction

log = get_logger("spikes.spikes")

RATINGS = ("love", "like", "meh", "no")
MAX_SPIKE_ID_CHARS = 64
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
    # Honoured only for callers who own the feedback (see ``record``).
    resolved: bool = False
    resolved_at: Optional[str] = None


@dataclass(frozen=True)
class Recorded:
    id: str
    created: bool  # False when this was a retry of an already stored spike


@dataclass(frozen=True)
class Page:
    items: List[dict]
    next_cursor: Optional[str]
    items_json: str  # ``items`` serialized as the API sends them (``items_json``)


# --- helpers ---------------------------------------------------------------------------------

def to_client(spike, reviewer_email: bool = True) -> dict:
    """The wire format the Spikes CLI and MCP server parse (CLIENTS.md), from a Spike or a store
    Row. ``reviewer_email``: False leaves out the address a reviewer gave (``shows_reviewer_emails``)."""
    get = spike.get if isinstance(spike, Row) else functools.partial(getattr, spike)
    reviewer = dict(get("reviewer") or ANONYMOUS)
    if not reviewer_email:
        reviewer.pop("email", None)
    out = {
        "id": get("public_id") or get("spike_id"),
        "type": get("type"),
        "projectKey": get("project_key"),
        "page": get("page") or "",
        "url": get("url") or "",
        "comments": get("comments") or "",
        "timestamp": get("timestamp") or get("created_at"),
        "reviewer": reviewer,
        "rating": get("rating"),
        "resolved": bool(get("resolved")),
        "resolvedAt": get("resolved_at"),
    }
    for key, name in _OPTIONAL_FIELDS:
        value = get(name)
        if value is not None:
            out[key] = value
    return out


_OPTIONAL_FIELDS = (("selector", "selector"), ("xpath", "xpath"), ("elementText", "element_text"),
                    ("boundingBox", "bounding_box"), ("viewport", "viewport"))


def items_json(items: List[dict]) -> str:
    """Listed items as the API sends them (compact, ASCII): measured against a page's byte
    budget and sent as they are, so they are serialized once."""
    return json.dumps(items, separators=(",", ":"))


# --- recording -------------------------------------------------------------------------------

def record(new: NewSpike, settings: Settings, base_url: str, author: Optional[Principal] = None,
           now: Optional[datetime] = None) -> Recorded:
    """Store one spike. ``author`` is the authenticated caller, if any: a user's post under a
    project key that is not a share belongs to them; the owner of the feedback (the share's
    owner, that user, the admin) may also set its resolved state, anonymous reviewers not.
    What the project key names and its owner's tier come from a per-function cache that the
    spike's own transaction checks (services/targets.py); if it changed, redo on fresh reads."""
    try:
        return _record(new, settings, base_url, author, now, targets.for_post(new.project_key))
    except spike_store.GuardFailed:
        return _record(new, settings, base_url, author, now, targets.fresh(new.project_key))


def _record(new: NewSpike, settings: Settings, base_url: str, author: Optional[Principal],
            now: Optional[datetime], target: targets.Target) -> Recorded:
    now = now or clock.now()
    share = target.share
    user_id = author.user_id if author is not None and not author.is_admin else None
    partition = spike_store.project_partition(new.project_key, share.share_id if share else None, user_id)
    owner_id = share.owner_id if share is not None else user_id
    trusted = author is not None and (author.is_admin or (owner_id is not None and owner_id == user_id))
    public_id = new.client_id or spike_store.new_public_id()
    spike_id = spike_store.spike_id_for(partition, public_id)
    created_at = clock.iso_millis(now)
    resolved = bool(trusted and new.resolved)
    spike = spike_store.new(
        spike_id, partition, created_at, public_id=public_id,
        owner_id=owner_id, share_id=share.share_id if share else None,
        client_id=new.client_id, type=new.type, project_key=new.project_key,
        # Never keep an address that unlocks a protected share (docs/security.md).
        page=strip_access_segments(new.page), url=strip_access_segments(new.url),
        comments=new.comments, timestamp=new.timestamp or created_at, rating=new.rating,
        reviewer_id=new.reviewer.get("id") or ANONYMOUS["id"], reviewer=new.reviewer, selector=new.selector,
        xpath=new.xpath, element_text=new.element_text, bounding_box=new.bounding_box, viewport=new.viewport,
        resolved=resolved, resolved_at=(new.resolved_at or created_at) if resolved else None,
    )
    limit = target.spike_limit(settings)
    # The webhook event joins the spike's transaction (the outbox): no extra round trip, and
    # it exists exactly when the spike does. Sending happens later, off this request.
    created_event = outbound_webhooks.event(share, outbound_webhooks.SPIKE_CREATED, to_client(spike)) \
        if outbound_webhooks.wants_events(share) else None
    # Whose spike it is (tier and cap: cached with the target and checked by its guard).
    owner = (target.owner.as_user() if target.owner else None) if share is not None else \
        (author.user if user_id is not None else None)
    key = author.key if author is not None else None
    # Stripe's identifier: this stored spike (a re-post after a delete is a new storage).
    charge = metering.charge_for(settings, owner, metering.SPIKE, f"spike-{spike_id}-{created_at}", now)
    metering.refuse_impossible(charge, key)
    period, at = clock.period_of(now), clock.epoch()  # read once: every attempt writes the same
    period_limit = target.period_limit(settings, period)

    def count(tx: Transaction) -> None:
        if share is not None:
            ledger.count_spike(tx, share.share_id, share.owner_id, period, at, ledger.shard_of(spike_id),
                               period_limit, **metering.spike_cost(charge))
        elif owner_id is not None:
            ledger.count_own_spike(tx, owner_id, period, at, **metering.spike_cost(charge))
        outbound_webhooks.add_to(tx, created_event)
        metering.add_key_use(tx, key, metering.SPIKE, charge, period, at)
        metering.add_event(tx, charge)

    def guard(tx: Transaction) -> None:
        target.add_checks(tx, limited_period=period if period_limit is not None else None)
    try:
        own, claimed_from = (None, None) if share is not None else (owner, author.claimed_from if author else None)
        if not spike_store.insert(spike, count, guard=guard, own=own, claimed_from=claimed_from):
            return Recorded(public_id, False)  # the same id in this project again: already stored
        targets.count_read(target)
    except spike_store.QuotaReached:
        raise SpikeLimit(f"This share has reached its limit of {limit} feedback items this period",
                         quotas.upgrade_url(settings, base_url), limit) from None
    except account_store.Merged as merged:  # a claim merged the account meanwhile: as its new owner
        return record(new, settings, base_url, replace(author, user=merged.new_owner()), now)
    except ConditionFailed as failed:
        over_budget = metering.budget_error(failed, charge, key)
        if over_budget is None:
            raise
        raise over_budget from None
    # `id` is the one the API answers and lists; `storage_key` the item's key (also spk_…).
    log.info("spike.recorded", id=public_id, storage_key=spike_id, share_id=spike.share_id)
    return Recorded(public_id, True)


# --- who may see what --------------------------------------------------------------------------

def scope_for(principal: Optional[Principal]) -> Scope:
    """A listing without ``?project=``: the admin sees every spike, a user their own."""
    if principal is None:
        raise AuthRequired("Pass ?project=, a bearer token, or the admin ?token=")
    if principal.is_admin:
        return spike_store.ALL
    return Scope("owner", principal.user_id)


def share_of(project_key: str) -> Optional[Share]:
    """The share a project key names (its id or slug), if any: cached for a few seconds
    (services/targets.py), so that a listing is one Query."""
    return targets.for_read(project_key).share


def shows_reviewer_emails(principal: Optional[Principal], owner_id: Optional[str]) -> bool:
    """Whether feedback owned by ``owner_id`` (a share's owner; None: nobody's) is shown with
    the e-mail addresses reviewers gave: only to the admin and the owner. Anyone who has a
    share's page has its id, and so its public feedback listing; the addresses in it are for
    the owner (a key of theirs with ``spikes:read``), not for every visitor. The same rule
    holds for the owner's exports (``GET``/``DELETE /shares/{key}``)."""
    if principal is None:
        return False
    if principal.is_admin:
        return True
    owner = owner_id is not None and principal.user_id is not None and principal.user_id == owner_id
    # An owner's key shows them only with spikes:read: a key granted usage or keys only, say,
    # reads the public listing as anyone does.
    return owner and principal.allows("spikes:read")


def project_scope(project: str, share: Optional[Share]) -> Scope:
    """The spikes of a project key, or of the share it names (whose access the caller checked)."""
    return Scope("project", spike_store.project_partition(project, share.share_id if share else None))


def list_page(scope: Scope, filters: Filters, limit: int, cursor: Optional[str], secret: str,
              max_bytes: Optional[int] = None, reviewer_emails: bool = True) -> Page:
    """Up to ``limit`` spikes, newest first. ``max_bytes`` ends the page early when the
    serialized items would pass it (a Lambda answer is at most 6 MB); the cursor then
    continues right after the last item returned."""
    items, next_cursor = spike_store.page(scope, filters, limit, cursor, secret)
    wire = [to_client(spike, reviewer_emails) for spike in items]
    serialized = items_json(wire)
    if max_bytes is not None and len(serialized) > max_bytes:
        # Rare (items of hundreds of KB): read the page again, measuring item by item, so the
        # store ends it (and its cursor) at the last item that fits.
        used = [1]  # the array's brackets, less the comma the first item does not need

        def fits(spike) -> bool:
            used[0] += len(items_json([to_client(spike, reviewer_emails)])) - 1
            return used[0] <= max_bytes
        items, next_cursor = spike_store.page(scope, filters, limit, cursor, secret, budget=fits)
        wire = [to_client(spike, reviewer_emails) for spike in items]
        serialized = items_json(wire)
    return Page(wire, next_cursor, serialized)


def iterate(scope: Scope, filters: Filters) -> Iterator[Spike]:
    """Every matching spike, newest first (exports)."""
    return spike_store.iterate(scope, filters)


# --- one spike -------------------------------------------------------------------------------

def get_for(principal: Optional[Principal], spike_id: str, project: Optional[str] = None) -> Spike:
    """The spike with this (public) id among those the caller may act on: the owner of the
    spike's share or project key, and the admin. Everyone else gets the same 404 as for an
    id that does not exist. Ids are unique per project, so when one caller sees the same id
    in several projects, ``project`` (a project key, share id or slug) picks one."""
    if principal is None:
        raise AuthRequired()
    if len(spike_id) > MAX_SPIKE_ID_CHARS:
        raise NotFound("Spike not found")  # not an id we issue; too long for a DynamoDB key, too
    if not principal.is_admin and principal.user_id is None:
        raise NotFound("Spike not found")
    share = share_store.resolve(project) if project else None
    found = spike_ids.find(spike_id, None if principal.is_admin else principal.user_id,
                           project or None, share.share_id if share else None)
    if not found:
        raise NotFound("Spike not found")
    if len(found) > 1:
        raise Conflict(f"Several projects have a spike with id {spike_id}: add ?project=<projectKey> to pick one")
    return found[0]


def set_resolved(principal: Optional[Principal], spike_id: str, resolved: bool,
                 project: Optional[str] = None) -> Spike:
    spike = get_for(principal, spike_id, project)
    resolved_at = clock.iso_millis(clock.now()) if resolved else None
    if resolved and not spike.resolved and spike.share_id:
        share = share_store.get_by_id(spike.share_id)
        if outbound_webhooks.wants_events(share):
            # Resolved together with the spike.resolved event, only if it was still open.
            spike.resolved, spike.resolved_at = True, resolved_at
            resolved_event = outbound_webhooks.event(share, outbound_webhooks.SPIKE_RESOLVED, to_client(spike))
            if spike_store.resolve_once(spike, resolved_at, lambda tx: outbound_webhooks.add_to(tx, resolved_event)):
                return spike
    return spike_store.set_resolved(spike, resolved_at)


def delete(principal: Optional[Principal], spike_id: str, project: Optional[str] = None) -> None:
    spike_store.delete(get_for(principal, spike_id, project))


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
