"""Work the scheduled jobs owe, one small item per unit, in a partition of the deliveries
table's ``due_index``: ``delivery_id`` = ``<prefix><name>`` carrying only ``due`` = the
partition and ``next_attempt_at`` = the unit's time (no ``share_id``, so no delivery log lists
it). A job queries the partition oldest first, a page at a time (no Scan), and consumes each
unit with a conditional delete, so however many are pending no item grows and no read is
unbounded. Units an earlier version kept as members of one ledger set (which DynamoDB's 400 KB
item limit bounded) are moved into items, a bounded number per run, until the set is empty.

Used by store/webhook_releases.py and store/pro_feature_runs.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Optional

from chalicelib.store import ledger
from chalicelib.store.models import Delivery
from chalicelib.store.transactions import Transaction, delete_if


@dataclass(frozen=True)
class PendingQueue:
    partition: str  # the due_index partition
    prefix: str  # of the items' keys
    legacy_item: str  # the ledger set an earlier version listed the units in

    def record(self, name: str, at: int, tx: Optional[Transaction] = None) -> None:
        """List a unit (in ``tx`` when given), written as an update so only its partition and
        time are set. Idempotent: the same name again is the same item."""
        item = Delivery(self.prefix + name)
        actions = [Delivery.due.set(self.partition), Delivery.next_attempt_at.set(int(at))]
        if tx is None:
            item.update(actions=actions)
        else:
            tx.update(f"pending-{self.partition}", item, actions=actions)

    def pending(self, limit: int) -> List[str]:
        """The names of up to ``limit`` units, oldest first. The index is eventually consistent:
        one recorded a moment ago may show on the next run, one consumed may show once more."""
        items = Delivery.due_index.query(self.partition, limit=limit, page_size=limit)
        return [item.delivery_id[len(self.prefix):] for item in items]

    def consume(self, name: str) -> bool:
        """Forget a finished unit; False when another run consumed it first."""
        return delete_if(Delivery(self.prefix + name), Delivery.due == self.partition)

    def move_legacy(self, time_of: Callable[[str], int], limit: int) -> int:
        """Move up to ``limit`` members of the legacy set into items (their times from
        ``time_of``), each kept in the set until its item is written. How many moved."""
        members = ledger.members(self.legacy_item)[:limit]
        for member in members:
            self.record(member, time_of(member))
            ledger.forget(self.legacy_item, member)
        return len(members)
