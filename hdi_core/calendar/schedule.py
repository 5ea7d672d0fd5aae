"""Per-product trading segments from pandas_market_calendars, as the `Sessions` arrays the kernels use.

One library schedule row is one session, labelled with the date it closes; a row with a break
(break_start < break_end, e.g. CBOT grains 07:45-08:30 CT) becomes two segments. Trade dates follow CME:
a holiday session's trading belongs to the next trade date. Schedules are built once per calendar and year
(lru_cache): the chain asks for them on every partition and is benchmarked at 20M ticks/s.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from typing import Literal, get_args

import numpy as np
import pandas as pd
import pandas_market_calendars as mcal

from hdi_core.calendar.arrays import CHICAGO, NS, Sessions
from hdi_core.calendar.overrides import SessionOverride, load_overrides, overrides_path
from hdi_core.calendar.trade_dates import next_trade_date
from hdi_core.errors import HdiError

# pandas_market_calendars names HDI products may use (symbols.yaml `calendar`).
# "CME Globex Equity" (not "CME_Equity") has CME's 12:15 CT equity early closes.
CalendarName = Literal["CME Globex Equity", "CMEGlobex_GC", "CBOT_Bond", "CMEGlobex_Grains"]
CALENDARS: tuple[str, ...] = get_args(CalendarName)
_BREAK = ("break_start", "break_end")


@lru_cache(maxsize=len(CALENDARS))
def _library_calendar(name: str) -> mcal.MarketCalendar:
    if name not in CALENDARS:
        raise HdiError(f"unknown trading calendar {name!r}; known: {', '.join(CALENDARS)}")
    return mcal.get_calendar(name)


def _ns(column: pd.Series) -> np.ndarray:
    """A tz-aware schedule column -> int64 ns UTC (NaT -> -1, only break columns have it)."""
    values = column.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy().astype("datetime64[ns]")
    return np.where(np.isnat(values), -1, values.astype(np.int64))


def _chicago_ns(day: dt.date, at: dt.time) -> int:
    return int(dt.datetime.combine(day, at, tzinfo=CHICAGO).timestamp()) * NS


def _apply_overrides(sched: pd.DataFrame, early: np.ndarray,
                     overrides: dict[dt.date, SessionOverride]) -> tuple[pd.DataFrame, np.ndarray]:
    """The schedule with the configured corrections: a session dropped or its close moved (then early)."""
    if not overrides:
        return sched, early
    sched, early = sched.copy(), early.copy()
    labels = [d.date() for d in sched.index]
    keep = np.ones(len(sched), dtype=bool)
    for i, day in enumerate(labels):
        fix = overrides.get(day)
        if fix is None:
            continue
        if fix.closed:
            keep[i] = False
        elif fix.close is not None:
            sched.iloc[i, sched.columns.get_loc("market_close")] = pd.Timestamp(_chicago_ns(day, fix.close), tz="UTC")
            early[i] = True
    return sched[keep], early[keep]


@lru_cache(maxsize=256)
def _year_segments(calendar: str, year: int, overrides_file: str) -> Sessions:
    """The segments of the library sessions labelled in `year`, overrides applied, with CME trade dates."""
    cal = _library_calendar(calendar)
    sched = cal.schedule(dt.date(year, 1, 1), dt.date(year, 12, 31))
    early = sched.index.isin(cal.early_closes(sched).index)
    sched, early = _apply_overrides(sched, early, load_overrides(overrides_file).get(calendar, {}))
    opens, closes = _ns(sched["market_open"]), _ns(sched["market_close"])
    labels = sched.index.values.astype("datetime64[D]")  # the library labels sessions by naive close date
    if all(c in sched.columns for c in _BREAK):
        b_start, b_end = _ns(sched[_BREAK[0]]), _ns(sched[_BREAK[1]])
        split = (b_start >= 0) & (b_start < b_end) & (b_start > opens) & (b_end < closes)  # a real break
    else:
        b_start = b_end = closes
        split = np.zeros(len(opens), dtype=bool)
    all_open = np.concatenate([opens, b_end[split]])
    all_close = np.concatenate([np.where(split, b_start, closes), closes[split]])
    all_early = np.concatenate([early & ~split, early[split]])  # the segment before a break is never early
    all_label = np.concatenate([labels, labels[split]])
    order = np.argsort(all_open, kind="stable")
    return Sessions(all_open[order], all_close[order], next_trade_date(all_label[order]), all_early[order])


def calendar_sessions(calendar: str, start_ns: int, end_ns: int) -> Sessions:
    """Every trading segment of `calendar` that overlaps [start_ns, end_ns)."""
    first = int(np.datetime64(int(start_ns), "ns").astype("datetime64[Y]").astype(int)) + 1970
    last = int(np.datetime64(int(end_ns), "ns").astype("datetime64[Y]").astype(int)) + 1970 + 1  # Jan 1 opens Dec 31
    path = str(overrides_path())
    years = [_year_segments(calendar, y, path) for y in range(first, last + 1)]
    whole = Sessions(np.concatenate([s.open_ns for s in years]), np.concatenate([s.close_ns for s in years]),
                     np.concatenate([s.trade_date for s in years]), np.concatenate([s.early_close for s in years]))
    return whole.overlapping(start_ns, end_ns)
