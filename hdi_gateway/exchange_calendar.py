"""The exchange's trading calendar for the synthetic market, from pandas_market_calendars (not HDI's own).

The gateway exists to test HDI, so its market must follow the exchange, not HDI's hand-written calendar: a
calendar bug in HDI then shows up as a mismatch instead of as matching synthetic ticks.

A product trades in segments [open_ns, close_ns) taken from the library's schedule (split at its
break_start/break_end where it has them). Every segment belongs to a CME trade date: the first date of the
library's 'CME_TradeDate' calendar on or after the schedule row's date, so a holiday session (MLK Monday
2024-01-15, halting at 12:00 CT) trades for the next trade date (2024-01-16), which settles once.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cache

import numpy as np
import pandas as pd
import pandas_market_calendars as mcal

NS = 1_000_000_000
DAY_NS = 86_400 * NS
TRADE_DATE_CALENDAR = "CME_TradeDate"
CALENDAR_START = dt.date(2017, 12, 1)  # covers the synthetic data range with a margin either side
CALENDAR_END = dt.date(2030, 2, 1)


@dataclass(frozen=True)
class Segments:
    """Sorted, non-overlapping trading segments of one product, one row each (columnar)."""

    open_ns: np.ndarray  # int64
    close_ns: np.ndarray  # int64
    trade_date: np.ndarray  # datetime64[D], the CME trade date the segment's trading belongs to

    def __len__(self) -> int:
        return len(self.open_ns)


@dataclass(frozen=True)
class TradeDates:
    """One row per trade date of one product: its first open, its last close, and its segments' rows."""

    trade_date: np.ndarray  # datetime64[D]
    open_ns: np.ndarray  # int64, open of the trade date's first segment
    close_ns: np.ndarray  # int64, close of its last segment (the settlement moment)
    first_segment: np.ndarray  # int64 index into Segments; segments first_segment[i]:first_segment[i + 1]

    def __len__(self) -> int:
        return len(self.trade_date)


def _ns(column: pd.Series) -> np.ndarray:
    return column.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[ns]").astype(np.int64)


@cache
def cme_trade_dates() -> np.ndarray:
    """Every CME trade date (datetime64[D]) of the library's 'CME_TradeDate' calendar over the data range."""
    schedule = mcal.get_calendar(TRADE_DATE_CALENDAR).schedule(CALENDAR_START, CALENDAR_END)
    return schedule.index.to_numpy("datetime64[D]")


@cache
def segments(calendar_name: str) -> Segments:
    """Every trading segment of the library calendar `calendar_name` over the data range."""
    schedule = mcal.get_calendar(calendar_name).schedule(CALENDAR_START, CALENDAR_END)
    opens, closes = _ns(schedule["market_open"]), _ns(schedule["market_close"])
    if "break_start" in schedule:
        # A zero-length break (CME_Equity's 15:15-15:15) is no break; NaT means the day has none.
        b0 = schedule["break_start"].fillna(schedule["market_close"])
        b1 = schedule["break_end"].fillna(schedule["market_close"])
        b0, b1 = _ns(b0), _ns(b1)
        has_break = (b1 > b0) & (b0 > opens) & (b1 < closes)
        first_close = np.where(has_break, b0, closes)
        second = np.flatnonzero(has_break)
        opens = np.concatenate([opens, b1[second]])
        closes = np.concatenate([first_close, closes[second]])
        day_of_row = np.concatenate([schedule.index.to_numpy("datetime64[D]"),
                                     schedule.index.to_numpy("datetime64[D]")[second]])
    else:
        day_of_row = schedule.index.to_numpy("datetime64[D]")
    order = np.argsort(opens, kind="stable")
    opens, closes, day_of_row = opens[order], closes[order], day_of_row[order]
    trade_dates = cme_trade_dates()
    # the CME trade date rule: a session on a day that is no trade date trades for the next trade date
    at = np.minimum(np.searchsorted(trade_dates, day_of_row, side="left"), len(trade_dates) - 1)
    return Segments(opens, closes, trade_dates[at])


@cache
def trade_dates(calendar_name: str) -> TradeDates:
    """The segments of `calendar_name` grouped by trade date (consecutive rows share a trade date)."""
    seg = segments(calendar_name)
    starts = np.flatnonzero(np.concatenate([[True], seg.trade_date[1:] != seg.trade_date[:-1]]))
    ends = np.concatenate([starts[1:], [len(seg)]])
    return TradeDates(seg.trade_date[starts], seg.open_ns[starts], seg.close_ns[ends - 1],
                      np.concatenate([starts, [len(seg)]]).astype(np.int64))


def trade_dates_between(calendar_name: str, start_ns: int, end_ns: int) -> np.ndarray:
    """Row indices into trade_dates(calendar_name) whose [open, close) envelope overlaps [start_ns, end_ns)."""
    td = trade_dates(calendar_name)
    lo = int(np.searchsorted(td.close_ns, start_ns, side="right"))
    hi = int(np.searchsorted(td.open_ns, end_ns, side="left"))
    return np.arange(lo, max(lo, hi), dtype=np.int64)


def trade_date_row(calendar_name: str, day: dt.date) -> int:
    """Row index of `day` in trade_dates(calendar_name), or -1 when the product has no trading for that date."""
    td = trade_dates(calendar_name)
    at = int(np.searchsorted(td.trade_date, np.datetime64(day, "D")))
    return at if at < len(td) and td.trade_date[at] == np.datetime64(day, "D") else -1


def segment_bounds(calendar_name: str, row: int) -> tuple[np.ndarray, np.ndarray]:
    """(open_ns, close_ns) arrays of the segments of trade-date row `row`."""
    td, seg = trade_dates(calendar_name), segments(calendar_name)
    a, b = int(td.first_segment[row]), int(td.first_segment[row + 1])
    return seg.open_ns[a:b], seg.close_ns[a:b]
