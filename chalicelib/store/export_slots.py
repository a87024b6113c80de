"""How many background exports one requester has running: at most ``cap``, exactly, however many
starts race across processes (services/background_exports.py, docs/security.md 264).

Each running export holds one of its requester's slots, ledger items
``exportslot#<sha256(subject)>#<n>`` for ``n`` below the cap. A start takes the first free one
with a conditional UpdateItem (no holder, or the holder's time is up) that writes the export's id
(``holder``) and its deadline (``expires_at``, also the table's TTL); two starts racing for one
slot cannot both take it, and none needs to read first. The run that finishes or fails the export
removes the holder, conditioned on it still being that export. A release lost to a crash frees
itself at the deadline: no export runs past it (it is failed then), and the next start takes the
slot over.
"""
from __future__ import annotations

from typing import Optional

from chalicelib.crypto import subject_hash
from chalicelib.store.models import LedgerItem
from chalicelib.store.transactions import update_if

KEY_PREFIX = "exportslot#"


def slot_key(subject: str, number: int) -> str:
    return f"{KEY_PREFIX}{subject_hash(subject)}#{number}"


def take(subject: str, cap: int, export_id: str, now: int, until: int) -> Optional[str]:
    """The key of the slot ``export_id`` now holds until ``until``, or None when all ``cap`` of
    ``subject``'s are held. A cap lowered leaves the slots past it to run out, not counted."""
    for number in range(cap):
        key = slot_key(subject, number)
        free = LedgerItem.holder.does_not_exist() | (LedgerItem.expires_at < now)
        if update_if(LedgerItem(key), [LedgerItem.holder.set(export_id), LedgerItem.expires_at.set(until)], free):
            return key
    return None


def give_back(key: Optional[str], export_id: str) -> bool:
    """The slot freed, if ``export_id`` still holds it: False when it was freed already, or
    taken over after its deadline (by then another export holds it)."""
    if not key:
        return False
    return update_if(LedgerItem(key), [LedgerItem.holder.remove()], LedgerItem.holder == export_id)
