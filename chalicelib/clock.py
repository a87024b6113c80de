"""Time, read one way. Every module asks ``now()`` / ``epoch()`` for the current moment, and
the calendar arithmetic of quota periods (calendar months, UTC) lives here and nowhere else.

The source is injected, not patched: the system clock by default, a fixed or moving one in
tests (``use(lambda: moment)``, then ``use(None)`` to go back to the system clock).
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Callable, List, Optional


def _system() -> datetime:
    return datetime.now(timezone.utc)


_source: Callable[[], datetime] = _system


def use(source: Optional[Callable[[], datetime]]) -> None:
    """Read time from ``source`` (an aware datetime factory); None restores the system clock."""
    global _source
    _source = source or _system


def now() -> datetime:
    return _source()


def epoch() -> float:
    """The current moment in epoch seconds (TTLs, token expiries, rate-limit windows)."""
    return now().timestamp()


def iso(moment: datetime) -> str:
    """Second precision, ``Z``: creation times of users and shares, job timestamps."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_millis(moment: datetime) -> str:
    """Millisecond precision, ``Z``: spike times (the clients' format)."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def iso_millis_at(epoch: float) -> str:
    """``iso_millis`` of a Unix time (webhook events and deliveries)."""
    return iso_millis(datetime.fromtimestamp(epoch, timezone.utc))


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# --- quota periods ---------------------------------------------------------------------------

def period_of(moment: datetime) -> str:
    """The quota period a moment falls in: ``YYYY-MM`` (calendar month, UTC)."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m")


def current_period(moment: Optional[datetime] = None) -> str:
    return period_of(moment or now())


def period_start(period: str) -> datetime:
    year, month = (int(part) for part in period.split("-"))
    return datetime(year, month, 1, tzinfo=timezone.utc)


def next_period_start(moment: Optional[datetime] = None) -> datetime:
    start = period_start(current_period(moment))
    return start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)


def previous_period(period: str) -> str:
    return period_of(period_start(period) - timedelta(days=1))


def periods_between(first: datetime, last: datetime) -> List[str]:
    """Every period from the one ``first`` falls in to the one ``last`` falls in, inclusive."""
    periods, year, month = [], first.year, first.month
    while (year, month) <= (last.year, last.month):
        periods.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return periods
