"""Posting a spike (``POST /spikes``): what the project key names, whose feedback it is, and
the one transaction that stores it.

A spike whose project key names a share (its id or slug) belongs to that share: it is
stored in the share's partition, counts against the share's per-period quota and is
visible to the share's owner. A spike an authenticated user posts under a project key of
their own belongs to that user. A spike keeps the id its client gave it (the widget's and
the CLI's nanoids), unique within its project: the storage key is derived from (project,
id), so a retried or re-pushed post is detected by the same conditional put. Recording is
one DynamoDB transaction: the spike, the share's period counter (conditioned on the
limit), its total and the owner's usage, the webhook event and the metered charge. Either
all of it is durable or none of it is.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Dict, Optional

from chalicelib import clock
from chalicelib.errors import NotFound
from chalicelib.limit_errors import BudgetExceeded, BudgetExceededForOthers, SpikeLimit
from chalicelib.logs import get_logger
from chalicelib.services import metering, outbound_webhooks, ownership, quotas, share_access, targets
from chalicelib.services.identity import Principal
from chalicelib.services.share_links import strip_access_segments, strip_password
from chalicelib.services.spikes import ANONYMOUS, to_client
from chalicelib.settings import Settings
from chalicelib.store import accounts as account_store
from chalicelib.store import spike_counters
from chalicelib.store import spikes as spike_store
from chalicelib.store.models import ApiKey, Spike, User
from chalicelib.store.transactions import ConditionFailed, Transaction

log = get_logger("spikes.spikes")


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
    if share is not None and target.via_slug and share_access.is_private(share) \
            and not ownership.may_act_as_owner(author, share.owner_id):
        # A protected share's slug is public (its address) but its id only in its page, behind
        # the password: the widget posts by id. By slug, only its owner (docs/security.md, 157).
        raise NotFound("Project not found. A password-protected share takes feedback by its id (what the widget on "
                       "its pages sends), or by its slug from its owner's token or key")
    user_id = author.user_id if author is not None and not author.is_admin else None
    # Posted anonymously (the widget) to a share whose deletion started: kept as its owner's
    # (uncounted, uncharged), or for the admin alone once nothing names the owner, never under
    # the bare key, where anyone could list feedback about a protected page.
    kept_for = target.kept_for if user_id is None else None
    partition = _partition_for(new.project_key, target, user_id, kept_for)
    owner_id = share.owner_id if share is not None else (user_id or kept_for)
    public_id = new.client_id or spike_store.new_public_id()
    spike_id = spike_store.spike_id_for(partition, public_id)
    created_at = clock.iso_millis(now)
    # Only the feedback's owner (or the admin) posts it resolved; asked only when it is.
    resolved = bool(new.resolved) and ownership.may_act_as_owner(author, owner_id)
    spike = spike_store.new(spike_id, partition, created_at, public_id=public_id, owner_id=owner_id,
                            share_id=share.share_id if share else None,
                            **_stored_fields(new, created_at, resolved))
    limit = target.spike_limit(settings)
    # The webhook event joins the spike's transaction (the outbox): no extra round trip, and
    # it exists exactly when the spike does. Sending happens later, off this request.
    created_event = outbound_webhooks.event(share, outbound_webhooks.SPIKE_CREATED, to_client(spike)) \
        if outbound_webhooks.wants_events(share) else None
    # Whose spike it is (tier and cap: cached with the target and checked by its guard).
    owner = (target.owner.as_user() if target.owner else None) if share is not None else \
        (author.user if user_id is not None else None)
    key = author.key if author is not None else None
    charge = _charge(settings, spike, owner, key, author, now)
    period, at = clock.period_of(now), clock.epoch()  # read once: every attempt writes the same
    period_limit = target.period_limit(settings, period)

    def count(tx: Transaction) -> None:
        if share is not None:
            spike_counters.count_spike(tx, share.share_id, share.owner_id, period, at, spike_counters.shard_of(spike_id),
                               period_limit, **metering.spike_cost(charge))
        elif owner_id is not None and kept_for is None:
            spike_counters.count_own_spike(tx, owner_id, period, at, **metering.spike_cost(charge))
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
        raise _as_told_to(author, owner_id, over_budget) from None
    # `id` is the one the API answers and lists; `storage_key` the item's key (also spk_…).
    log.info("spike.recorded", id=public_id, storage_key=spike_id, share_id=spike.share_id)
    return Recorded(public_id, True)


def _partition_for(project_key: str, target: targets.Target, poster_id: Optional[str],
                   kept_for: Optional[str]) -> str:
    """The project partition the spike is stored in (``poster_id``: the authenticated user posting,
    not the admin)."""
    if target.unlisted and poster_id is None:
        return spike_store.unlisted_partition(project_key)
    share_id = target.share.share_id if target.share is not None else None
    return spike_store.project_partition(project_key, share_id, poster_id or kept_for)


def _stored_fields(new: NewSpike, created_at: str, resolved: bool) -> Dict[str, Any]:
    """What the spike item keeps of the post: its fields, the addresses stripped of what unlocks a
    share, and the defaults filled in."""
    return dict(
        client_id=new.client_id, type=new.type, project_key=new.project_key,
        page=_stored_address(new.page), url=_stored_address(new.url),
        comments=new.comments, timestamp=new.timestamp or created_at, rating=new.rating,
        reviewer_id=new.reviewer.get("id") or ANONYMOUS["id"], reviewer=new.reviewer, selector=new.selector,
        xpath=new.xpath, element_text=new.element_text, bounding_box=new.bounding_box, viewport=new.viewport,
        resolved=resolved, resolved_at=(new.resolved_at or created_at) if resolved else None,
    )


def _charge(settings: Settings, spike: Spike, owner: Optional[User], key: Optional[ApiKey],
            author: Optional[Principal], now: datetime) -> Optional[metering.Charge]:
    """The spike's metered charge (None off the agent tier), refused here when a cap could never
    take it."""
    # Stripe's identifier: this stored spike (a re-post after a delete is a new storage).
    charge = metering.for_key(metering.charge_for(settings, owner, metering.SPIKE,
                                                  f"spike-{spike.spike_id}-{spike.created_at}", now), key)
    try:
        metering.refuse_impossible(charge, key)
    except BudgetExceeded as refused:
        raise _as_told_to(author, spike.owner_id, refused) from None
    return charge


def _as_told_to(author: Optional[Principal], owner_id: Optional[str], refused: BudgetExceeded) -> BudgetExceeded:
    """A spending cap is its owner's to read: anyone else posting (a reviewer, through the widget)
    hears that the page takes no feedback for now, not the amount (docs/security.md, 155). A
    key's cap binds only a key of the account, so only the account's own credentials hear of it."""
    if refused.which == "key" or ownership.may_act_as_owner(author, owner_id):
        return refused
    return BudgetExceededForOthers(refused.which, refused.period_ends)


def _stored_address(address: str) -> str:
    """Never keep an address that unlocks a protected share (docs/security.md, 1, 84 and 126):
    no access segment and no ``?pw=``, whatever the project key names now (a share's page
    reports its address with them even once the share's deletion started)."""
    return strip_password(strip_access_segments(address))
