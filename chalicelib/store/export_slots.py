"""How many background exports one requester has running: at most ``cap``, exactly, however many
starts race across processes (services/background_exports.py, docs/security.md 264).

Each running export holds one of its requester's slots, ledger items
``exportslot#<sha256(subject)>#<n>`` for ``n`` below the cap. A start takes the first free one
with a conditional UpdateItem (no holder, or the holder's time is up) that writes the export's id
(``holder``) and its deadline (``expires_at``, also the table's TTL); two starts racing for one
slot cannot both take it, and none needs to read first. The run that finishes or fails the export
removes the holder, conditioned on it still being that export. A release lost to a crash frees
itself at the deadline: set past the export's own by the longest a run begun before that may
read on (the export is failed then), and the next start takes the slot over. Sooner, when every slot is held: a start then reads them, and takes over one whose
export is not running (its start died before storing it, or the run that ended it died before
giving the slot back) once that start is long over, conditioned on the same holder.
"""
from __future__ import annotations

from typing import Callable, Optional

from chalicelib.crypto import subject_hash
from chalicelib.store.models import LedgerItem
from chalicelib.store.transactions import update_if

KEY_PREFIX = "exportslot#"


def slot_key(subject: str, number: int) -> str:
    return f"{KEY_PREFIX}{subject_hash(subject)}#{number}"


def take(subject: str, cap: int, export_id: str, now: int, until: int, running: Callable[[str], bool],
         start_seconds: int) -> Optional[str]:
    """The key of the slot ``export_id`` now holds until ``until``, or None when all ``cap`` of
    ``subject``'s are held by exports ``running`` says run, or taken in the last ``start_seconds``
    (a start stores its export just after taking its slot). Every slot is taken for the same
    time (``until - now``), so a slot's deadline tells when it was taken. A cap lowered leaves the
    slots past it to run out, not counted."""
    taking = [LedgerItem.holder.set(export_id), LedgerItem.expires_at.set(until)]
    keys = [slot_key(subject, number) for number in range(cap)]
    free = LedgerItem.holder.does_not_exist() | (LedgerItem.expires_at < now)
    for key in keys:
        if update_if(LedgerItem(key), taking, free):
            return key
    for key in keys:  # all held: one whose export is not running is taken over
        try:
            held = LedgerItem.get(key, consistent_read=True)
        except LedgerItem.DoesNotExist:
            continue
        taken_long_ago = held.expires_at is not None and held.expires_at <= until - start_seconds
        if held.holder and taken_long_ago and not running(held.holder) and \
                update_if(LedgerItem(held.pk), taking, LedgerItem.holder == held.holder):
            return held.pk
    return None


def give_back(key: Optional[str], export_id: str) -> bool:
    """The slot freed, if ``export_id`` still holds it: False when it was freed already, or
    taken over after its deadline (by then another export holds it)."""
    if not key:
        return False
    return update_if(LedgerItem(key), [LedgerItem.holder.remove()], LedgerItem.holder == export_id)
