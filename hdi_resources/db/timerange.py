"""The time semantics every read shares: a range is half-open [start, end); a plain date on bars that carry a
trade date selects trade dates (sessions), a timestamp selects instants; naive times are in UTC or exchange
time (America/Chicago), as the caller says."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from .readerrors import BadRequest

EXCHANGE_TZ = ZoneInfo("America/Chicago")
TIME_ZONES = {"utc": dt.UTC, "exchange": EXCHANGE_TZ}
SESSION_OPEN_HOUR = 17  # CME Globex: a trade date's session opens at 17:00 Chicago the evening before


@dataclass(frozen=True)
class TimeRange:
    start: dt.datetime | None  # aware
    end: dt.datetime | None
    start_date: dt.date | None  # set when the bound was a plain date
    end_date: dt.date | None
    tz_name: str  # "utc" or "exchange"

    @property
    def dates_only(self) -> bool:
        """Every given bound is a plain date (and at least one is given): select by trade date."""
        given = [(self.start, self.start_date), (self.end, self.end_date)]
        return any(s for s, _ in given) and all(d is not None for s, d in given if s is not None)

    def describe(self, by_trade_date: bool) -> str:
        if by_trade_date:
            lo = self.start_date.isoformat() if self.start_date else "the first"
            hi = self.end_date.isoformat() if self.end_date else "the last"
            return f"trade dates [{lo}, {hi})"
        lo = self.start.isoformat() if self.start else "the first"
        hi = self.end.isoformat() if self.end else "the last"
        return f"[{lo}, {hi})"


def time_zone(name: str | None) -> dt.tzinfo:
    key = (name or "utc").lower()
    if key not in TIME_ZONES:
        raise BadRequest(f"time zone {str(name)[:20]!r} is not one of: utc, exchange (America/Chicago)")
    return TIME_ZONES[key]


def _bound(value: Any, name: str, tz: dt.tzinfo) -> tuple[dt.datetime | None, dt.date | None]:
    if value is None or value == "":
        return None, None
    if isinstance(value, dt.datetime):
        stamp, day = value, None
    elif isinstance(value, dt.date):
        stamp, day = dt.datetime(value.year, value.month, value.day), value
    else:
        text = str(value).strip()
        try:
            if len(text) == 10:
                day = dt.date.fromisoformat(text)
                stamp = dt.datetime(day.year, day.month, day.day)
            else:
                day, stamp = None, dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise BadRequest(f"{name} {text[:40]!r} is not an ISO date or timestamp (e.g. 2024-07-01 or "
                             "2024-07-01T14:30)") from None
    return (stamp if stamp.tzinfo else stamp.replace(tzinfo=tz)), day


def parse_range(start: Any = None, end: Any = None, tz: str | None = "utc") -> TimeRange:
    """Both bounds parsed; an end not after the start is refused."""
    zone = time_zone(tz)
    lo, lo_day = _bound(start, "start", zone)
    hi, hi_day = _bound(end, "end", zone)
    if lo is not None and hi is not None and hi <= lo:
        raise BadRequest(f"end {hi.isoformat()} is not after start {lo.isoformat()}")
    return TimeRange(lo, hi, lo_day, hi_day, (tz or "utc").lower())


def trade_date_of(stamp: dt.datetime) -> dt.date:
    """The CME trade date of an instant: from 17:00 Chicago on it is the next weekday's session (the rule the
    roll read applies in SQL, stated here in Python for callers and tests)."""
    local = stamp.astimezone(EXCHANGE_TZ)
    day = local.date() + dt.timedelta(days=1 if local.hour >= SESSION_OPEN_HOUR else 0)
    while day.weekday() >= 5:
        day += dt.timedelta(days=1)
    return day
