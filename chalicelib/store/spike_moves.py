"""Claiming a key-only account: its spikes change owner (docs/agents.md, "Claiming a key-only
account"), the own ones counted gone for the claimed account (store/accounts.own_spikes_left)."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import List, Tuple

from chalicelib.store import accounts, spike_ids, transactions
from chalicelib.store.models import Spike
from chalicelib.store.transactions import update_if

MOVE_THREADS = 8


def owned_by(owner_id: str) -> List[Spike]:
    """The spikes the owner index lists for ``owner_id`` (it lags their writes), keys only."""
    return list(Spike.owner_index.query(owner_id, attributes_to_get=["spike_id", "owner_id", "project", "share_id"]))


def move_to_owner(old_owner: str, new_owner: str) -> int:
    """Every spike of ``old_owner`` the owner index lists (its shares' and its own project
    keys') becomes ``new_owner``'s, in parallel, each only if still ``old_owner``'s; the own
    ones moved are counted gone for ``old_owner`` (``accounts.own_spikes_left``). How many moved."""
    def move(spike: Spike) -> Tuple[int, int]:
        moved = int(update_if(spike, [Spike.owner_id.set(new_owner),
                                      Spike.owner_project.set(spike_ids.owner_project(new_owner, spike.partition))],
                              Spike.owner_id == old_owner))
        return moved, moved if spike.share_id is None else 0
    owned = owned_by(old_owner)
    if not owned:
        return 0
    with ThreadPoolExecutor(max_workers=MOVE_THREADS) as pool:
        counts = list(pool.map(move, owned))
    own = sum(own for _, own in counts)
    if own:
        transactions.run(lambda tx: accounts.add_own_spikes_gone(tx, old_owner, own), idempotent=True)
    return sum(moved for moved, _ in counts)
