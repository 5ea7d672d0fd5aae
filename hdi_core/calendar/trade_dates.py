"""CME trade dates from pandas_market_calendars' CME_TradeDate calendar.

Trading in a holiday session (e.g. MLK Monday 2024-01-15 until the 12:00 CT halt) belongs to the NEXT trade
date (2024-01-16): the exchange clears and settles it with that day.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

import numpy as np
import pandas_market_calendars as mcal

TRADE_DATE_CALENDAR = "CME_TradeDate"
LOOKAHEAD_DAYS = 31  # a year's table reaches into January, so a late-December holiday finds its next date


@lru_cache(maxsize=64)
def _trade_dates_of_year(year: int) -> np.ndarray:
    days = mcal.get_calendar(TRADE_DATE_CALENDAR).valid_days(
        dt.date(year, 1, 1), dt.date(year + 1, 1, 1) + dt.timedelta(days=LOOKAHEAD_DAYS))
    return np.asarray(days.tz_localize(None).values.astype("datetime64[D]"))


def cme_trade_dates(first: dt.date, last: dt.date) -> np.ndarray:
    """Every CME trade date in [first, last], datetime64[D]."""
    days = np.unique(np.concatenate([_trade_dates_of_year(y) for y in range(first.year, last.year + 1)]))
    return days[(days >= np.datetime64(first, "D")) & (days <= np.datetime64(last, "D"))]


def next_trade_date(days: np.ndarray) -> np.ndarray:
    """Per day (datetime64[D]), the first CME trade date on or after it (the day itself if it is one)."""
    days = np.asarray(days, dtype="datetime64[D]")
    if len(days) == 0:
        return days
    years = days.astype("datetime64[Y]").astype(int) + 1970
    table = np.unique(np.concatenate([_trade_dates_of_year(int(y)) for y in range(years.min(), years.max() + 1)]))
    return table[np.searchsorted(table, days, side="left")]
