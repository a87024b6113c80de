"""Feedback items ("spikes") once stored: their wire format, who may see what, listing and
exporting, a share's spikes as a whole. Posting one is services/spike_posts.py; one spike found
by its id, resolved or deleted, services/spike_by_id.py.
"""
from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass
from typing import Callable, Iterator, List, Optional

from chalicelib import lambda_answer
from chalicelib.errors import AuthRequired, ExportTooLarge
from chalicelib.logs import get_logger
from chalicelib.services import own_exports, ownership, share_access, targets
from chalicelib.services.identity import Principal
from chalicelib.settings import Settings
from chalicelib.store import spike_listings
from chalicelib.store import shares as share_store
from chalicelib.store import spikes as spike_store
from chalicelib.store.models import Share, Spike
from chalicelib.store.rows import ReadLimit, Row
from chalicelib.store.spike_filters import Filters
from chalicelib.store.spikes import Scope

log = get_logger("spikes.spikes")

RATINGS = ("love", "like", "meh", "no")
MAX_HIDDEN_DELETIONS = 300  # what one listing's filter leaves out, at most (DynamoDB's 4 KB expressions)
ANONYMOUS = {"id": "anon", "name": "Anonymous"}


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


def shows_reviewer_emails(principal: Optional[Principal], owner_id: Optional[str],
                          acts_as_owner: Optional[Callable[[], bool]] = None) -> bool:
    """Whether feedback owned by ``owner_id`` (a share's owner; None: nobody's) is shown with
    the e-mail addresses reviewers gave: only to the admin and the owner. Anyone who has a
    share's page has its id, and so its public feedback listing; the addresses in it are for
    the owner (a key of theirs with ``spikes:read``), not for every visitor. The same rule
    holds for the owner's exports (``GET``/``DELETE /shares/{key}``). ``acts_as_owner``: the
    request's own ``ownership.may_act_as_owner`` for ``owner_id``, when it has one (``readable``)."""
    # An owner's key shows them only with spikes:read: a key granted usage or keys only, say,
    # reads the public listing as anyone does (checked first: it costs no read).
    if principal is None or not principal.allows("spikes:read"):
        return False
    return acts_as_owner() if acts_as_owner is not None else ownership.may_act_as_owner(principal, owner_id)


def shown_to(principal: Optional[Principal], spike: Spike) -> dict:
    """One spike in the wire format as ``principal`` reads it: reviewers' e-mail addresses only
    where a listing shows them (``shows_reviewer_emails``)."""
    return to_client(spike, shows_reviewer_emails(principal, spike.owner_id))


def exported_for(principal: Principal, exported: List[dict]) -> List[dict]:
    """The caller's own share's feedback (``shares.export_spikes``, a deletion's export), with
    reviewers' e-mail addresses only where every listing shows them (``shows_reviewer_emails``:
    docs/security.md, 19 and 30): a key granted the shares alone gets it without them."""
    if shows_reviewer_emails(principal, principal.user_id):
        return exported
    return [{**item, "reviewer": {name: value for name, value in (item.get("reviewer") or {}).items()
                                  if name != "email"}} for item in exported]


@dataclass(frozen=True)
class Access:
    """What ``readable`` decided, and the share it read to decide it (None: the key names none), so
    that what is kept of it (an export's password seal) is of that share, not one read again (283)."""
    scope: Scope
    reviewer_emails: bool
    # Whether the reader is whom the feedback belongs to (the caller's own, a share's owner with a
    # credential that reads feedback, the admin), who lists it without ``ReadLimit`` and uncounted;
    # anyone else, with a credential or without, reads under it (docs/security.md, 280, 282 and
    # 327). Decided once, when first asked (ownership's reads).
    as_owner: Callable[[], bool]
    share: Optional[Share] = None


def readable(settings: Settings, principal: Optional[Principal], project: Optional[str],
             password: Optional[str] = None, client_ip: str = "unknown", emails: bool = True,
             password_seal: Optional[str] = None) -> Access:
    """The spikes ``principal`` may list or export, and whether reviewers' e-mail addresses are
    shown: by project key, public whoever asks (the contract: "public when provided") unless
    the share it names is private (its owner, the admin, or ``password``:
    ``share_access.require_feedback_access``), the addresses only to the share's owner and the
    admin; without one, the caller's own (or the admin's: everything), with ``spikes:read``.
    The one decision every reader of feedback (the routes, an MCP tool, a background export's
    reader) asks. ``emails`` False: the addresses are not asked about (False, no read spent);
    ``password_seal``: the password proven before (``share_access.password_seal``). Whether the
    caller acts as the share's owner is asked of ``ownership`` once for all three (``Access.as_owner``)."""
    if project:
        share = share_of(project)
        owner_id = share.owner_id if share else None
        as_owner = functools.lru_cache(maxsize=1)(lambda: ownership.may_act_as_owner(principal, owner_id))
        if share is not None and share_access.is_private(share):
            share_access.require_feedback_access(settings, share, principal, password, client_ip, password_seal,
                                                 as_owner)
        return Access(project_scope(project, share), emails and shows_reviewer_emails(principal, owner_id, as_owner),
                      lambda: reads_feedback(principal) and as_owner(), share)
    if principal is not None:
        principal.require("spikes:read")
    return Access(scope_for(principal), True, lambda: True)


def reads_feedback(principal: Optional[Principal]) -> bool:
    """Whether ``principal`` may read its account's feedback (a session, the admin, a key with
    ``spikes:read``). An owner's key without it (``usage:read`` for a billing script, ``shares:write``
    for a CI) reads only what anyone may, and as anyone does: counted per network and under the
    read budgets (docs/security.md, 327), as its exports were counted already (263)."""
    return principal is not None and principal.allows("spikes:read")


def project_scope(project: str, share: Optional[Share]) -> Scope:
    """The spikes of a project key, or of the share it names (whose access the caller checked)."""
    return Scope("project", spike_store.project_partition(project, share.share_id if share else None))


def list_page(scope: Scope, filters: Filters, limit: int, cursor: Optional[str], secret: str,
              max_bytes: Optional[int] = None, reviewer_emails: bool = True,
              keep_reading: Optional[Callable[[], bool]] = None, read_limit: Optional[ReadLimit] = None) -> Page:
    """Up to ``limit`` spikes, newest first. ``max_bytes`` ends the page early when the
    serialized items would pass it (a Lambda answer is at most 6 MB); the cursor then
    continues right after the last item returned. ``keep_reading`` (False: the request's time
    is running out) ends it early too, where the reads ended (store/spike_listings.page), and so
    does ``read_limit`` (``rows.ReadLimit``: what each of the page's one or two reads may evaluate)."""
    filters = hiding_deletions(scope, filters)
    items, next_cursor = spike_listings.page(scope, filters, limit, cursor, secret, keep_reading=keep_reading,
                                             read_limit=read_limit)
    wire = [to_client(spike, reviewer_emails) for spike in items]
    serialized = items_json(wire)
    # Measured as the answer carries it (lambda_answer.py): feedback full of quotes weighs double.
    if max_bytes is not None and lambda_answer.too_heavy(serialized, max_bytes):
        # Rare (items of hundreds of KB): the page ends at the last item that fits (the first
        # always listed), cut from what was read; its cursor continues right after it.
        kept = _fitting(wire, max_bytes)
        if kept < len(wire):
            items, wire = items[:kept], wire[:kept]
            next_cursor = spike_listings.cursor_after(scope, items[-1], secret)
            serialized = items_json(wire)
    return Page(wire, next_cursor, serialized)


def _fitting(wire: List[dict], max_bytes: int) -> int:
    """How many of ``wire``'s first items fit in ``max_bytes`` as ``items_json`` sends them (at least one)."""
    used = 1  # the array's brackets, less the comma the first item does not need
    for count, item in enumerate(wire):
        used += lambda_answer.weight(items_json([item])) - 1
        if used > max_bytes:
            return max(count, 1)
    return len(wire)


def iterate(scope: Scope, filters: Filters, before_read: Optional[Callable[[], None]] = None,
            read_limit: Optional[ReadLimit] = None) -> Iterator[Row]:
    """Every matching spike, newest first (exports); ``before_read`` asked before each Query;
    ``read_limit``: what the reads may evaluate in all (``rows.ReadsSpent`` past it). One's own
    feedback is read whole or refused (409) across a claim (services/own_exports.py)."""
    rows = spike_listings.iterate(scope, hiding_deletions(scope, filters), before_read, read_limit=read_limit)
    return own_exports.read_whole(scope, rows)


def hiding_deletions(scope: Scope, filters: Filters) -> Filters:
    """An owner's listing leaves out their shares whose deletion started: gone for everyone once
    the DELETE answered, while the share_deletions job may still be removing their spikes (the
    admin's feed shows them). Costs one small Query of this owner's, unless ``filters`` has them."""
    if scope.index != "owner" or filters.hidden_partitions is not None:
        return filters
    return dataclasses.replace(filters, hidden_partitions=tuple(share_store.deleting_of(scope.partition,
                                                                                         MAX_HIDDEN_DELETIONS)))


# --- shares' side ----------------------------------------------------------------------------

def export_share(share_id: str, max_weight: Optional[int] = None) -> List[dict]:
    """Every spike of a share as the client sees it. ``max_weight``: what the list may weigh as
    one answer carries it (its ``json.dumps``, measured as ``lambda_answer`` does). Reading stops
    with ExportTooLarge as soon as what was read weighs more: a share too large to answer cost
    the reads of all its feedback before it was refused (30,000 spikes: 13.5 s, on every open of
    the share in the dashboard), now those of about one answer's worth."""
    exported: List[dict] = []
    weight = 2  # the list's brackets; items are joined by ", "
    for spike in iterate(Scope("project", share_id), Filters()):
        exported.append(to_client(spike))
        if max_weight is not None:
            weight += lambda_answer.weight(json.dumps(exported[-1])) + (2 if len(exported) > 1 else 0)
            if weight > max_weight:
                raise ExportTooLarge(share_id)
    return exported

