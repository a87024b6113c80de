"""What a listing of spikes keeps, as its query's FilterExpression: the filters a client gives
(page, reviewer, rating, resolved) and the project partitions it must not show."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

from chalicelib.store.models import Spike

IN_OPERANDS = 100  # the most DynamoDB takes in one IN


@dataclass(frozen=True)
class Filters:
    page: Optional[str] = None
    reviewer: Optional[str] = None
    rating: Optional[str] = None
    resolved: Optional[bool] = None
    # Left out: the shares whose deletion started (services/spikes.py), whose spikes the
    # share_deletions job may still be removing; None until looked up.
    hidden_partitions: Optional[Tuple[str, ...]] = None


def condition(filters: Filters):
    parts = [
        Spike.page == filters.page if filters.page else None,
        Spike.reviewer_id == filters.reviewer if filters.reviewer else None,
        Spike.rating == filters.rating if filters.rating else None,
        Spike.resolved == filters.resolved if filters.resolved is not None else None,
    ]
    hidden = filters.hidden_partitions or ()
    parts += [~Spike.partition.is_in(*hidden[start:start + IN_OPERANDS]) for start in range(0, len(hidden), IN_OPERANDS)]
    combined = None
    for part in parts:
        if part is not None:
            combined = part if combined is None else combined & part
    return combined
