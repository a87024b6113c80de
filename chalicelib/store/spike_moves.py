"""Claiming a key-only account: its spikes change owner (docs/agents.md, "Claiming a key-only
account"), the counted own ones counted gone for the claimed account in the same transaction
(store/accounts.own_spikes_left)."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from typing import Any, Callable, Iterable, List, Tuple

from chalicelib.store import accounts, spike_ids, transactions
from chalicelib.store.models import Spike
from chalicelib.store.transactions import ConditionFailed, Transaction, Writes, update_if

MOVE_THREADS = 8
COUNTED_PER_MOVE = 24  # and the count: 25 writes, moto's limit for a transaction (DynamoDB's is 100)
# Spikes read and moved at a time: a claim asks between pages whether its time allows another.
PAGE = 200


def owned_by(owner_id: str) -> Iterable[Spike]:
    """The spikes the owner index lists for ``owner_id`` (it lags their writes), a few fields of
    each, read a page at a time as they are iterated."""
    return Spike.owner_index.query(owner_id, page_size=PAGE,
                                   attributes_to_get=["spike_id", "owner_id", "project", "share_id", "own_counted"])


def move_to_owner(old_owner: str, new_owner: str) -> int:
    """Every spike of ``old_owner`` the owner index lists; how many moved (``move_in_time``)."""
    return move_in_time(old_owner, new_owner, lambda: True)[0]


def move_in_time(old_owner: str, new_owner: str, in_time: Callable[[], bool]) -> Tuple[int, bool]:
    """The spikes of ``old_owner`` the owner index lists (its shares' and its own project keys')
    become ``new_owner``'s, ``PAGE`` at a time while ``in_time()`` says another page fits: an
    account's spikes have no bound (an agent posts under its own project keys without a limit),
    and neither reading them all first nor moving them all fits in one request (docs/security.md
    319). How many moved, and whether the listing was read to its end. Moved spikes leave the
    index, so a call again reads only what is left."""
    listed = iter(owned_by(old_owner))
    moved = 0
    while True:
        page = list(islice(listed, PAGE))
        moved += _move_page(page, old_owner, new_owner)
        if len(page) < PAGE:
            return moved, True
        if not in_time():
            return moved, False


def _move_page(owned: List[Spike], old_owner: str, new_owner: str) -> int:
    """These spikes, each only if still ``old_owner``'s. Those not counted (a share's, an own one
    stored before the count) one write each, in parallel; the counted own ones (``own_counted``)
    a few to a transaction with their count gone for ``old_owner``, so a claim that dies, or
    whose answer is lost, never leaves one moved and still counted
    (``accounts.own_spikes_left``). How many moved."""
    counted = [spike for spike in owned if spike.own_counted]
    uncounted = [spike for spike in owned if not spike.own_counted]
    moved = 0
    if uncounted:
        with ThreadPoolExecutor(max_workers=MOVE_THREADS) as pool:
            moved += sum(pool.map(lambda spike: _move_uncounted(spike, old_owner, new_owner), uncounted))
    for start in range(0, len(counted), COUNTED_PER_MOVE):
        moved += _move_counted(counted[start:start + COUNTED_PER_MOVE], old_owner, new_owner)
    return moved


def _to_owner(new_owner: str, spike: Spike) -> List[Any]:
    return [Spike.owner_id.set(new_owner), Spike.owner_project.set(spike_ids.owner_project(new_owner, spike.partition))]


def _move_uncounted(spike: Spike, old_owner: str, new_owner: str) -> int:
    return int(update_if(spike, _to_owner(new_owner, spike),
                         (Spike.owner_id == old_owner) & Spike.own_counted.does_not_exist()))


def _move_counted(spikes: List[Spike], old_owner: str, new_owner: str) -> int:
    """These counted own spikes, and as many counted gone for ``old_owner``, in one transaction
    (idempotent); those moved or deleted meanwhile left out. How many moved."""
    while spikes:
        try:
            transactions.run(_counted_moves(spikes, old_owner, new_owner), idempotent=True)
            return len(spikes)
        except ConditionFailed as failed:
            left = [spike for spike in spikes if spike.spike_id not in failed]
            if len(left) == len(spikes):
                raise
            spikes = left
    return 0


def _counted_moves(spikes: List[Spike], old_owner: str, new_owner: str) -> Writes:
    def write(tx: Transaction) -> None:
        for spike in spikes:
            tx.update(spike.spike_id, spike, actions=[*_to_owner(new_owner, spike), Spike.own_counted.remove()],
                      condition=(Spike.owner_id == old_owner) & Spike.own_counted.exists())
        accounts.add_own_spikes_gone(tx, old_owner, len(spikes))
    return write
