"""The spikes table: feedback items, their keys, indexes and transactions (listings:
store/spike_listings.py).

- ``public_id``: the id clients see, the client's own (the widget's and the CLI's nanoids)
  or a random ``spk_…`` one; unique within its project; ``id_owner_index`` finds it
  (``owner_project``: store/spike_ids.py).
- pk ``spike_id``: ``spk_`` + 13 bytes of SHA-256(project partition, public id), so a retried
  or re-pushed post hits the same conditional put, and two projects may share an id.
- ``partition`` (the project partition, stored as ``project``): the share id when the project
  key names a share, ``user#<user id>#key#<projectKey>`` for a user's own project key (or the
  owner's of a share whose deletion started), ``unlisted#<share id>`` for a share id that names
  no share any more, else ``key#<projectKey>``; ``partition_index`` (stored as ``project_index``) lists a project
  newest first.
- ``owner_id`` (``owner_index``): the owner of the spike's share, or the user who posted it
  under their own project key; ``feed`` (``feed_index``): "all", the admin's view.
- ``sort_key`` = ``<received ISO time>#<spike_id>``: unique, so cursors never skip or repeat
  items that share a timestamp.
"""
from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any, Callable, Optional

from pynamodb.exceptions import DeleteError

from chalicelib.errors import NotFound
from chalicelib.store import accounts, open_spikes, spike_counters, spike_ids, transactions
from chalicelib.store.models import Spike, User
from chalicelib.store.transactions import ConditionFailed, Transaction, conditional_failed, update_if


class QuotaReached(Exception):
    """The share's period counter is at its limit: the spike was not stored."""


@dataclass(frozen=True)
class Scope:
    """Which spikes a caller may list: one partition of one index."""
    index: str  # "project" | "owner" | "feed"
    partition: str

    @property
    def cursor_scope(self) -> str:
        return f"{self.index}:{self.partition}"


ALL = Scope("feed", "all")


# --- keys ------------------------------------------------------------------------------------

def project_partition(project_key: str, share_id: Optional[str], user_id: Optional[str] = None) -> str:
    """Where a project's spikes live: its share's id; ``user#<user id>#key#<projectKey>`` for
    a project key of a user's own; ``key#<projectKey>`` for a public one."""
    if share_id is not None:
        return share_id
    if user_id is not None:
        return f"user#{user_id}#key#{project_key}"
    return f"key#{project_key}"


def unlisted_partition(project_key: str) -> str:
    """Where spikes posted to a share id that names no share (any more) live: no ``?project=``
    listing reaches it, the admin's feed lists it."""
    return f"unlisted#{project_key}"


def new_public_id() -> str:
    """The id of a spike posted without one."""
    return "spk_" + base64.b32encode(secrets.token_bytes(13)).decode("ascii").rstrip("=").lower()


def spike_id_for(partition: str, public_id: str) -> str:
    """The storage key: one per (project, id), computed, so a post needs no read."""
    raw = hashlib.sha256(f"{partition}\x00{public_id}".encode("utf-8")).digest()[:13]
    return "spk_" + base64.b32encode(raw).decode("ascii").rstrip("=").lower()


def sort_key_for(created_at: str, spike_id: str) -> str:
    return f"{created_at}#{spike_id}"


def new(spike_id: str, partition: str, created_at: str, **fields: Any) -> Spike:
    """A spike record, not yet stored: on ``open_owner_index`` unless stored resolved."""
    sort_key = sort_key_for(created_at, spike_id)
    return Spike(spike_id, partition=partition, sort_key=sort_key, feed=ALL.partition, created_at=created_at,
                 owner_project=spike_ids.owner_project(fields.get("owner_id"), partition),
                 open_sort_key=None if fields.get("resolved") else sort_key, **fields)


# --- writing ---------------------------------------------------------------------------------

class GuardFailed(Exception):
    """A condition check the caller added (``guard``) failed: what it read has changed."""


GUARD_PREFIX = "guard:"


def insert(spike: Spike, count: Optional[Callable[[Transaction], None]] = None,
           guard: Optional[Callable[[Transaction], None]] = None, own: Optional[User] = None,
           claimed_from: Optional[str] = None) -> bool:
    """Store the spike, and in the same transaction whatever ``count`` adds (the share's
    counters, conditioned on its quota: writes named "quota" there) and the condition checks
    ``guard`` adds (named ``guard:...``). ``own``: the user whose own project key it is posted
    under, a key-only one counted (``accounts.add_own_spike``, the spike marked ``own_counted``),
    only while not claimed; ``claimed_from``: the key-only account that user claimed, whose
    project of this key (its spikes moved to the user) must not hold the id either. False when
    a spike with this id is stored already (a retried post, or sent again after the claim);
    QuotaReached when the quota refused it; GuardFailed when a guard did; accounts.Merged when
    a claim merged ``own`` (docs/security.md 71)."""
    if own is not None and accounts.counts_own_spikes(own):
        spike.own_counted = True

    def write(tx: Transaction) -> None:
        if guard is not None:
            guard(tx)
        if own is not None:
            accounts.add_own_spike(tx, own)
            if claimed_from is not None:
                earlier = spike_id_for(project_partition(spike.project_key, None, claimed_from), spike.public_id)
                tx.check("claimed", Spike, earlier, Spike.spike_id.does_not_exist())
        tx.save("spike", spike, condition=Spike.spike_id.does_not_exist())
        if count is not None:
            count(tx)
    try:
        transactions.run(write, idempotent=True)
    except ConditionFailed as failed:
        if any(name.startswith(GUARD_PREFIX) for name in failed.failed):
            raise GuardFailed() from None
        if "spike" in failed or "claimed" in failed:
            return False
        if "quota" in failed:
            raise QuotaReached() from None
        if own is not None and accounts.NOT_MERGED in failed:
            accounts.raise_if_merged(own.user_id)
        raise
    return True


def set_resolved(spike: Spike, resolved_at: Optional[str]) -> Spike:
    """Resolved at ``resolved_at`` (one resolved already keeps the time it was first resolved:
    set only if absent, in the same update), or unresolved when it is None. ``spike`` comes
    back as stored. NotFound if deleted meanwhile. Off ``open_owner_index`` when resolved, on it
    again when reopened, in the same update."""
    # An open spike has no resolved_at: reopening removes it.
    kept_or_new = Spike.resolved_at | resolved_at
    if not update_if(spike, [Spike.resolved.set(resolved_at is not None),
                             Spike.resolved_at.set(kept_or_new) if resolved_at else Spike.resolved_at.remove(),
                             open_spikes.closed() if resolved_at else open_spikes.opened()],
                     Spike.spike_id.exists()):
        raise NotFound("Spike not found")
    return spike


def resolve_once(spike: Spike, resolved_at: str, also: Callable[[Transaction], None]) -> bool:
    """Resolve an open spike together with ``also``'s writes (its webhook event). False when
    it was resolved meanwhile or is gone: nothing is written then."""
    def write(tx: Transaction) -> None:
        tx.update("spike", spike, actions=[Spike.resolved.set(True), Spike.resolved_at.set(resolved_at),
                                           open_spikes.closed()],
                  condition=Spike.spike_id.exists() & (Spike.resolved != True))  # noqa: E712
        also(tx)
    try:
        transactions.run(write)
    except ConditionFailed:
        return False
    return True


def delete(spike: Spike) -> None:
    """Remove the spike and count it out of its share's total, or (an own spike of a key-only
    account) its owner's (``accounts.add_own_spikes_gone``). NotFound if it is gone."""
    if spike.share_id is None and spike.owner_id is not None:
        return _delete_own(spike)

    def write_counted_in(shard: Optional[int]) -> Callable[[Transaction], None]:
        def write(tx: Transaction) -> None:
            tx.delete("spike", spike, condition=Spike.spike_id.exists())
            spike_counters.uncount_spike(tx, spike.share_id, shard)
        return write
    if spike.share_id:
        # Counted in its shard; a spike stored before the total was sharded, in the old total.
        for shard in (spike_counters.shard_of(spike.spike_id), None):
            try:
                # One token for its attempts: a commit whose answer was lost is answered as the
                # deletion it made, not refused by its own `exists` condition (docs/security.md, 110).
                transactions.run(write_counted_in(shard), idempotent=True)
                return
            except ConditionFailed as failed:
                if "spike" in failed:
                    raise NotFound("Spike not found") from None
    try:
        spike.delete(condition=Spike.spike_id.exists())  # no share, or never counted: just delete
    except DeleteError as exc:
        if conditional_failed(exc):
            raise NotFound("Spike not found") from None
        raise


def _delete_own(spike: Spike) -> None:
    """An own spike goes, counted gone for its owner when it was counted (``own_counted``), as
    stored: a claim may have moved it since it was read (then it is a person's, not counted)."""
    for _ in range(2):  # an owner changes once at most: a claimed account's spike moved to a person
        owner_id, counted = spike.owner_id, bool(spike.own_counted)
        mark = Spike.own_counted.exists() if counted else Spike.own_counted.does_not_exist()

        def write(tx: Transaction) -> None:
            tx.delete("spike", spike, condition=(Spike.owner_id == owner_id) & mark)
            if counted:
                accounts.add_own_spikes_gone(tx, owner_id)
        try:
            transactions.run(write, idempotent=True)
            return
        except ConditionFailed as failed:
            if "spike" not in failed:
                raise
        current = get(spike.spike_id, consistent=True)
        if current is None:
            raise NotFound("Spike not found")
        spike = current
    raise NotFound("Spike not found")


def delete_project(partition: str, keep_going: Callable[[], bool] = lambda: True) -> Optional[int]:
    """Remove a project partition's spikes, idempotently: how many, or None if ``keep_going`` stopped it."""
    removed = 0
    with Spike.batch_write() as batch:
        for spike in Spike.partition_index.query(partition, attributes_to_get=["spike_id"]):
            if not keep_going():
                return None
            batch.delete(Spike(spike.spike_id))
            removed += 1
    return removed


# --- reading ---------------------------------------------------------------------------------

def has_public_project(project_key: str) -> bool:
    """Whether spikes are stored under the plain (public) project key: a query reading one item at most."""
    partition = project_partition(project_key, None)
    return any(True for _ in Spike.partition_index.query(partition, limit=1, attributes_to_get=["spike_id"]))


def get(spike_id: str, consistent: bool = False) -> Optional[Spike]:
    try:
        return Spike.get(spike_id, consistent_read=consistent)
    except Spike.DoesNotExist:
        return None
