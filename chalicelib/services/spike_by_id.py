"""One stored spike by its id, as its owner (a person, their agent) or the admin acts on it:
found among what the caller may act on (a full id or, for the MCP server's, the start of one),
resolved, deleted. Listing and exporting are services/spikes.py.
"""
from __future__ import annotations

import dataclasses
from typing import List, Optional

from chalicelib import clock
from chalicelib.errors import AuthRequired, Conflict, NotFound
from chalicelib.services import outbound_webhooks, ownership
from chalicelib.services.identity import Principal
from chalicelib.services.spikes import hiding_deletions, scope_for, to_client
from chalicelib.store import share_work, spike_ids, spike_listings
from chalicelib.store import shares as share_store
from chalicelib.store import spikes as spike_store
from chalicelib.store.models import Spike
from chalicelib.store.spike_filters import Filters

MAX_SPIKE_ID_CHARS = 64
MIN_ID_PREFIX_CHARS = 4
PREFIX_SEARCH_LIMIT = 1000  # the page the MCP server's get_spikes reads (docs/clients.md)


def get_for(principal: Optional[Principal], spike_id: str, project: Optional[str] = None,
            prefix_ok: bool = False) -> Spike:
    """The spike with this (public) id among those the caller may act on: the owner of the
    spike's share or project key, and the admin. Everyone else gets the same 404 as for an
    id that does not exist. Ids are unique per project, so when one caller sees the same id
    in several projects, ``project`` (a project key, share id or slug) picks one.
    ``prefix_ok``: an id no spike has may be the start of one (``_by_prefix``)."""
    if principal is None:
        raise AuthRequired()
    if len(spike_id) > MAX_SPIKE_ID_CHARS:
        raise NotFound("Spike not found")  # not an id we issue; too long for a DynamoDB key, too
    if not principal.is_admin and principal.user_id is None:
        raise NotFound("Spike not found")
    share = share_store.resolve(project) if project else None
    found: List[Spike] = []
    for owner_id in ownership.accounts_of(principal):  # amid a claim, also the accounts it joins
        found = spike_ids.find(spike_id, owner_id, project or None, share.share_id if share else None)
        if found:
            break
    if found and not principal.is_admin:  # a deleted share's, which the job is still removing
        deleting = share_work.being_deleted(spike.partition for spike in found)
        found = [spike for spike in found if spike.partition not in deleting]
    # A prefix names only what the caller could have listed (a key may write without reading).
    if not found and prefix_ok and project is None and len(spike_id) >= MIN_ID_PREFIX_CHARS \
            and principal.allows("spikes:read"):
        found = _by_prefix(principal, spike_id)
        if len(found) > 1:
            raise Conflict(f"Several of your spikes have an id starting with {spike_id}: send more of it")
    if not found:
        raise NotFound("Spike not found")
    if len(found) > 1:
        raise Conflict(f"Several projects have a spike with id {spike_id}: add ?project=<projectKey> to pick one")
    return found[0]


def _by_prefix(principal: Principal, prefix: str) -> List[Spike]:
    """The MCP server's get_spikes prints ids cut to 8 characters, and its resolve_spike and
    delete_spike send back what the agent read ("an ID or prefix", at least 4 characters, as
    the CLI takes them locally). They are found among what get_spikes reads (one page of the
    caller's newest, all of them or the unresolved ones): at most two matches, read again whole."""
    scope = scope_for(principal)
    filters = hiding_deletions(scope, Filters())
    listed = spike_listings.newest(scope, filters, PREFIX_SEARCH_LIMIT)
    if len(listed) == PREFIX_SEARCH_LIMIT:  # there are older ones: the open ones listed may be among them
        listed += spike_listings.newest(scope, dataclasses.replace(filters, resolved=False), PREFIX_SEARCH_LIMIT)
    matching = {row.spike_id for row in listed if (row.get("public_id") or row.spike_id).startswith(prefix)}
    found = [spike_store.get(spike_id) for spike_id in sorted(matching)[:spike_ids.MAX_ID_MATCHES]]
    return [spike for spike in found if spike is not None]


def set_resolved(principal: Optional[Principal], spike_id: str, resolved: bool,
                 project: Optional[str] = None, prefix_ok: bool = False) -> Spike:
    spike = get_for(principal, spike_id, project, prefix_ok)
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


def delete(principal: Optional[Principal], spike_id: str, project: Optional[str] = None,
           prefix_ok: bool = False) -> Spike:
    spike = get_for(principal, spike_id, project, prefix_ok)
    spike_store.delete(spike)
    return spike
