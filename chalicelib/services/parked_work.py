"""Units of the scheduled jobs' pending work parked after failing too often
(services/pending_work.py), for an operator: what each is and why it was parked, and putting
one back (``python -m tools.parked_work``, docs/reliability.md, "Pending work that keeps failing").

A unit is named by its item's key: ``pro-features#<user>@<event_at>-<off|on>`` (a Stripe
event's share changes the webhook left to the quota reset), ``release#<share_id>@<epoch>``
(a share's held webhook events to end), ``share-deletion#<share_id>`` (a deletion to finish),
``direct-upload#<share_id>@<epoch>`` or ``presigned-upload#<share_id>@<epoch>`` (an upload left
unfinished to clean up: store/share_work.py), ``export#<export id>`` (a background export to
continue: store/exports.py), ``claim#<account id>`` (a claim of a key-only account to finish:
store/pending_claims.py). Its ``reason`` is the error its last attempt raised.
Requeue one once the cause is fixed: it is due at once, its attempts counted from zero, and
continues from its checkpoint; a unit parked by a bug fails again until the fix is deployed.
Each requeue is one update conditioned on the unit still being parked, so two operators at
once cannot both act on it.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Dict, List, Optional, Tuple

from chalicelib import clock
from chalicelib.errors import Conflict, NotFound
from chalicelib.logs import get_logger
from chalicelib.store import exports, pending_claims, pro_feature_runs, share_work, webhook_releases
from chalicelib.store.models import Delivery
from chalicelib.store.pending_queue import PendingQueue

log = get_logger("spikes.parked_work")

QUEUES = (pro_feature_runs.QUEUE, webhook_releases.QUEUE, *share_work.QUEUES, exports.QUEUE, pending_claims.CLAIMS)
LISTED_PER_QUEUE = 1000


def _iso(epoch: Optional[float]) -> Optional[str]:
    return None if epoch is None else clock.iso(datetime.fromtimestamp(int(epoch), timezone.utc))


def describe(queue: PendingQueue, item: Delivery) -> Dict[str, Any]:
    return {"unit": item.delivery_id, "queue": queue.partition, "reason": item.last_error,
            "attempts": int(item.attempts or 0), "last_attempt_at": _iso(item.last_attempt_at),
            "parked_at": _iso(item.next_attempt_at)}


def parked() -> List[Dict[str, Any]]:
    """The parked units of every queue, each queue's first parked first (a Query each, up to
    ``LISTED_PER_QUEUE``)."""
    return [describe(queue, item) for queue in QUEUES for item in queue.parked(LISTED_PER_QUEUE)]


def _queue_of(unit: str) -> Tuple[PendingQueue, str]:
    for queue in QUEUES:
        if unit.startswith(queue.prefix):
            return queue, unit[len(queue.prefix):]
    raise NotFound(f"No parked unit {unit!r}: units are named {' or '.join(q.prefix + '...' for q in QUEUES)}"
                   " (list them with `list`)")


def requeue(unit: str) -> Dict[str, Any]:
    """Put one parked unit back, due at the job's next invocation."""
    queue, name = _queue_of(unit)
    item = queue.parked_unit(name)
    if item is None:
        raise NotFound(f"No parked unit {unit!r} (list them with `list`)")
    note = f"Requeued at {clock.iso(clock.now())}; had been parked after {int(item.attempts or 0)} attempts: " \
           f"{item.last_error}"
    if not queue.requeue(name, note, clock.epoch()):
        raise Conflict(f"{unit} left the parked units since it was read: list again")
    log.warning("pending.requeued", queue=queue.partition, unit=unit, reason=item.last_error)
    return {"unit": unit, "requeued": True}


def requeue_all() -> Dict[str, Any]:
    """Every parked unit listed; those another operator moved meanwhile are named in ``left``."""
    requeued, left = [], []
    for listed in parked():
        try:
            requeued.append(requeue(listed["unit"])["unit"])
        except (Conflict, NotFound) as exc:
            left.append({"unit": listed["unit"], "error": exc.message})
    return {"requeued": requeued, "left": left}
