"""What a post or a listing needs to know about a project key, without reading it every time.

A project key names a share (by id or slug) or nothing. A post also needs the share owner's
tier (for the spike limit). A cold post makes one read (store/post_reads.py): by id, the share
with its period count (one BatchGetItem), taking the owner's tier from the share's hint
(``Share.owner_tier``); by slug, the slug's claim, whose hint (``post_hint``) describes the
share and its owner, the count of posts made while unlimited assumed 0. Hints are written at
creation and corrected by the first post that finds them wrong; the transaction checks them
like a cached target, so a stale hint costs that one post a cancelled transaction and a
re-read, never a wrong limit. A warm function keeps the answers in a small in-process cache,
and never trusts them blindly:

- A post adds condition checks to its own transaction (``add_checks``): the share still
  exists with the same owner, slug, name and webhook, protected or not as cached (and the slug
  still points at it; the spike's webhook event is built from the cached share), the owner's
  tier and grace period are what the cache says, or the key still names no share. If anything changed, the
  transaction is cancelled, nothing is written, the entry is dropped and the post is redone on
  fresh reads. So the cache never lets a post exceed a limit or land in a deleted share: the
  staleness bound for a share's posts is zero. The price is two or three extra items in the
  transaction (write capacity), not a round trip.
- "This key names no share" is not checked (every post to the key would touch its slug claim,
  and concurrent transactions on one item conflict): it is trusted for ``READ_TTL_SECONDS``, so
  posts in the first seconds after a share claims a plain key's name, in another function, are
  stored under the plain key (kept; listed with the admin feed), not the share. A key whose
  share's deletion started (or whose slug its deletion retired) names its owner (``kept_for``):
  its feedback is kept as theirs, never under the bare key where anyone could list it; one
  posted to a share id that names no share any more is kept off every listing but the admin's
  (``unlisted``).
- A listing has no transaction to check against: it trusts an entry for at most
  ``READ_TTL_SECONDS``. A slug that moves to another share, or a key that becomes a share's,
  can be listed from the old partition for that long (a deleted share's partition is empty),
  and a password just set on a share guards its feedback listing that much later (the feedback
  was readable until then anyway); removing one takes as long to open it.
"""
from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from chalicelib import clock
from chalicelib.services import quotas
from chalicelib.store import accounts, post_reads, shares, spike_counters
from chalicelib.settings import Settings
from chalicelib.store.models import Share, User
from chalicelib.store.transactions import Transaction

READ_TTL_SECONDS = 5.0
WRITE_TTL_SECONDS = 300.0  # checked by every post anyway; bounded so idle entries are refreshed
MAX_ENTRIES = 2048


@dataclass(frozen=True)
class Owner:
    user_id: str
    exists: bool
    tier: Optional[str]
    grace_until: Optional[float]
    monthly_cap_cents: Optional[int] = None  # the agent tier's account cap (checked in its posts)

    def as_user(self) -> Optional[User]:
        """The owner as far as a post needs it (tier, grace, cap), or None if it is gone."""
        if not self.exists:
            return None
        return User(self.user_id, tier=self.tier or quotas.FREE, grace_until=self.grace_until,
                    monthly_cap_cents=self.monthly_cap_cents)

    def effective_tier(self) -> str:
        """Pro lapses when its grace period ends, cached or not: compared with the clock now."""
        if not self.exists:
            return quotas.FREE
        return quotas.effective_tier(User(self.user_id, tier=self.tier or quotas.FREE, grace_until=self.grace_until))


@dataclass(frozen=True)
class Target:
    """A project key as resolved: ``share`` is None when it names no share. A post's target
    also carries the share's owner and, for ``period``, how many spikes the share received
    while the owner's tier had no limit (``unlimited_count``: counted in shards, not in the
    limited counter, see store/spike_counters.py)."""
    key: str
    share: Optional[Share]
    owner: Optional[Owner]
    via_slug: bool
    period: Optional[str] = None
    unlimited_count: int = 0
    counted_at_tier: Optional[str] = None  # the owner's effective tier when it was counted
    # False when ``unlimited_count`` was assumed (0), not read: a cold post by slug read only the
    # claim's hint. The post's transaction then checks it (``add_checks``) if a limit applies.
    count_read: bool = True
    # No share, but the key named one of this user's until its deletion started (its id, or its
    # slug, retired for them): what is posted to it is kept as theirs, out of the public listing.
    kept_for: Optional[str] = None
    # A share id that names no share (any more): what is posted to it is kept for the admin alone.
    unlisted: bool = False

    def spike_limit(self, settings: Settings) -> Optional[int]:
        if self.share is None:  # (a post's target always carries the owner of its share)
            return None
        return quotas.limits_for(settings, self.owner.effective_tier()).spike_limit

    def period_limit(self, settings: Settings, period: str) -> Optional[int]:
        """What the share's limited period counter may reach in ``period``: the limit, less what
        the share received in it while unlimited. That count is final once read while the tier
        has a limit: no post can add to it any more (their transactions check the owner's tier),
        except where a grace period lapses by the clock and functions' clocks disagree by a
        moment. Read while unlimited, it is read again (``recount``) before it is used."""
        limit = self.spike_limit(settings)
        if limit is None:
            return None
        target = self
        if self.period != period or quotas.limits_for(settings, self.counted_at_tier or quotas.FREE).spike_limit is None:
            target = recount(self, period)
        return limit - target.unlimited_count

    def add_checks(self, tx: Transaction, limited_period: Optional[str] = None) -> None:
        """Condition checks, added to a post's transaction, that hold only while this resolution
        is still true (named ``guard:...``: store/spikes.insert raises GuardFailed when one fails).
        ``limited_period``: the period whose limit the post is counted against, if any (the
        unlimited count of that period lowers it; read for another period, it was read now)."""
        if self.share is None:
            # No check: every post to a key would then touch its slug claim, and concurrent
            # transactions on one item conflict. "Names no share" is trusted for READ_TTL_SECONDS.
            return
        # Also fails once the share's deletion started: the post is redone, kept for its owner.
        post_reads.check_still_named(tx, self.key if self.via_slug else None, self.share)
        owner = self.owner
        # An agent-tier owner's cap bounds its posts' charges: checked like the tier.
        accounts.check_unchanged(tx, owner.user_id, owner.exists, owner.tier, owner.grace_until,
                                 owner.monthly_cap_cents if owner.tier == quotas.AGENT else accounts.UNCHECKED)
        if limited_period is not None and limited_period == self.period and not self.count_read:
            post_reads.check_no_unlimited_count(tx, self.share.share_id, self.period)


# (purpose, key) -> (when read, what was read). Posts need the owner's tier, listings do not.
_cache: Dict[Tuple[str, str], Tuple[float, Target]] = {}
_lock = threading.Lock()


def _read(key: str, with_owner: bool, trust_hint: bool = True) -> Target:
    via_slug = not shares.SHARE_ID_PATTERN.match(key)
    if not with_owner:
        share = shares.resolve(key)
        return Target(key, share, None, share is not None and via_slug)
    if shares.names_no_share(key):
        return Target(key, None, None, False)
    period = clock.current_period()
    claim = post_reads.slug_claim(key) if via_slug else None
    if via_slug and (claim is None or claim.share_id is None):
        return Target(key, None, None, False, kept_for=claim.reserved_for if claim is not None else None)
    hinted = post_reads.hinted_share(claim, key) if claim is not None and trust_hint else None
    if hinted is not None and hinted.owner_tier is not None:
        # A cold post by slug: the claim's hint of its share and owner, checked by the post's
        # transaction like a cached target; the unlimited count is assumed 0 and checked too.
        owner = _hinted_owner(hinted)
        return Target(key, hinted, owner, True, period, 0, owner.effective_tier(), count_read=False)
    share, unlimited_count = post_reads.read_for_post(claim.share_id if via_slug else key, period)
    if share is None:
        # A share id nobody holds: a deleted share's (its page still open somewhere), whose
        # owner nothing records any more.
        return Target(key, None, None, False, unlisted=not via_slug)
    if share.status == shares.DELETING:
        return Target(key, None, None, False, kept_for=share.owner_id)
    if trust_hint and share.owner_tier is not None:
        # The share's hint of its owner's tier, grace and cap, checked by the post's transaction
        # like a cached owner: a cold post reads the share (and the count) and nothing else.
        owner = _hinted_owner(share)
    else:
        user = accounts.get(share.owner_id)
        if user is None:
            owner = Owner(share.owner_id, False, None, None)
        else:
            owner = Owner(user.user_id, True, user.tier, user.grace_until,
                          _cents(user.monthly_cap_cents))
        if owner.exists and (owner.tier, owner.grace_until, owner.monthly_cap_cents) != \
                (share.owner_tier, share.owner_grace_until, _cents(share.owner_cap_cents)):
            post_reads.set_owner_hint(share.share_id, owner.tier, owner.grace_until,
                                      owner.monthly_cap_cents)  # for the next cold post
            share.owner_tier, share.owner_grace_until = owner.tier, owner.grace_until
            share.owner_cap_cents = owner.monthly_cap_cents
    if via_slug and owner.exists and shares.post_hint(share) != (claim.post_hint or {}):
        post_reads.set_post_hint(key, share)  # for the next cold post by slug
    return Target(key, share, owner, via_slug, period, unlimited_count, owner.effective_tier())


def _cents(value) -> Optional[int]:
    return None if value is None else int(value)


def _hinted_owner(share: Share) -> Owner:
    """The owner as a share (or a slug claim's hint) says: tier, grace and the agent tier's cap.
    A cap missing from the hint is taken as none; the post's guard finds out if it is not."""
    return Owner(share.owner_id, True, share.owner_tier, share.owner_grace_until, _cents(share.owner_cap_cents))


def count_read(target: Target) -> None:
    """A post's transaction checked ``target``'s assumed unlimited count: remember it as read."""
    if not target.count_read:
        with _lock:
            entry = _cache.get(("post", target.key))
            if entry is not None and entry[1] is target:
                _cache[("post", target.key)] = (entry[0], dataclasses.replace(target, count_read=True))


def recount(target: Target, period: str) -> Target:
    """The target with the share's unlimited count of ``period`` read now (remembered when the
    period is the current one)."""
    counted = dataclasses.replace(target, period=period, counted_at_tier=target.owner.effective_tier(),
                                  unlimited_count=spike_counters.unlimited_count(target.share.share_id, period),
                                  count_read=True)
    if period == clock.current_period():
        _remember("post", target.key, counted)
    return counted


def _remember(purpose: str, key: str, target: Target) -> None:
    with _lock:
        if len(_cache) >= MAX_ENTRIES:
            _cache.clear()  # crude but bounded; a warm function rarely sees that many keys
        _cache[(purpose, key)] = (time.monotonic(), target)


def for_post(key: str) -> Target:
    """Cached for up to ``WRITE_TTL_SECONDS``; the post's transaction checks it (``add_checks``)."""
    return _cached("post", key, WRITE_TTL_SECONDS)


def for_read(key: str) -> Target:
    """The share a listing reads (no owner), trusted for at most ``READ_TTL_SECONDS``."""
    return _cached("read", key, READ_TTL_SECONDS)


def _cached(purpose: str, key: str, ttl: float) -> Target:
    entry = _cache.get((purpose, key))
    if entry is not None and time.monotonic() - entry[0] < (ttl if entry[1].share is not None else READ_TTL_SECONDS) \
            and (entry[1].period is None or entry[1].period == clock.current_period()):
        return entry[1]
    target = _read(key, with_owner=purpose == "post")
    _remember(purpose, key, target)
    return target


def fresh(key: str) -> Target:
    """Read again, the owner too (after a post's checks failed), and remember."""
    target = _read(key, with_owner=True, trust_hint=False)
    _remember("post", key, target)
    return target


def forget(keys: Optional[List[str]] = None) -> None:
    """Drop entries (all of them without ``keys``): after this process changed a share, and in tests."""
    with _lock:
        if keys is None:
            _cache.clear()
        for key in keys or []:
            for purpose in ("post", "read"):
                _cache.pop((purpose, key), None)

