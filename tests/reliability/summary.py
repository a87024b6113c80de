"""The figures the reliability suite reports at the end of its run (docs/reliability.md).

Every figure is counted by the tests as they run: requests they sent, faults the client-layer
injector answered instead of AWS, crash points they tried, bad inputs sent, and what the
consistency checks found wrong (spikes lost, counters off, cross-tenant reads or writes).
The last ones must stay 0; the tests assert that too, this table only reports it.
"""
from __future__ import annotations

import threading
from typing import Dict

ROWS = ("requests sent", "faults injected", "crash points tried", "bad inputs tried", "spikes lost",
        "counters off", "cross-tenant reads", "cross-tenant writes")
FIGURES: Dict[str, int] = {row: 0 for row in ROWS}
_lock = threading.Lock()
_ran = {"any": False}


def add(row: str, amount: int = 1) -> None:
    if row not in FIGURES:
        raise KeyError(row)
    with _lock:
        FIGURES[row] += amount
        _ran["any"] = True


def ran() -> bool:
    return _ran["any"]


def table() -> str:
    width = max(len(row) for row in ROWS)
    lines = ["Reliability summary", "-" * (width + 12)]
    lines += [f"{row:<{width}}  {FIGURES[row]:>9,}" for row in ROWS]
    return "\n".join(lines)
