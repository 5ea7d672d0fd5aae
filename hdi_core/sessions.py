"""Compatibility module: trading segments now live in hdi_core.calendar (per-product, from a maintained library).

`globex_sessions` is the OLD hand-written calendar (every weekday 17:00-16:00 CT, no holidays). It stays only
for hdi_gateway's synthetic market until that moves onto pandas_market_calendars; the pipeline uses
hdi_core.calendar.calendar_sessions with the product's calendar.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from hdi_core.calendar.arrays import (
    CHICAGO,
    DAY_NS,
    NS,
    Sessions,
    day_anchor_ns,
    session_index,
    session_spans,
    split_on_gaps,
    split_sessions,
)

__all__ = ["CHICAGO", "DAY_NS", "NS", "Sessions", "day_anchor_ns", "globex_sessions", "session_index",
           "session_spans", "split_on_gaps", "split_sessions"]

OPEN_LOCAL = dt.time(17, 0)
CLOSE_LOCAL = dt.time(16, 0)


def _local_ns(day: dt.date, at: dt.time) -> int:
    return int(dt.datetime.combine(day, at, tzinfo=CHICAGO).timestamp()) * NS


def globex_sessions(start_ns: int, end_ns: int) -> Sessions:
    """Legacy, holiday-blind: every Mon..Fri session 17:00 CT (previous day) - 16:00 CT overlapping the range."""
    first = dt.datetime.fromtimestamp(start_ns / NS, tz=dt.UTC).date() - dt.timedelta(days=1)
    last = dt.datetime.fromtimestamp(end_ns / NS, tz=dt.UTC).date() + dt.timedelta(days=2)
    opens, closes, dates = [], [], []
    day = first
    while day <= last:
        if day.weekday() < 5:
            o, c = _local_ns(day - dt.timedelta(days=1), OPEN_LOCAL), _local_ns(day, CLOSE_LOCAL)
            if c > start_ns and o < end_ns:
                opens.append(o)
                closes.append(c)
                dates.append(np.datetime64(day, "D"))
        day += dt.timedelta(days=1)
    return Sessions(np.array(opens, dtype=np.int64), np.array(closes, dtype=np.int64),
                    np.array(dates, dtype="datetime64[D]"))
