"""Why a timestamp lies outside every trading segment: a closed day, a halt, or after an early close."""

from __future__ import annotations

import numpy as np
import pandas as pd

from hdi_core.calendar.arrays import CHICAGO, Sessions
from hdi_core.calendar.trade_dates import cme_trade_dates

CLOSED_DAY, IN_HALT, AFTER_EARLY_CLOSE = 0, 1, 2
OUTSIDE_REASONS = ("closed day", "inside a halt", "after an early close")


def _chicago_dates(ts_ns: np.ndarray) -> np.ndarray:
    local = pd.to_datetime(np.asarray(ts_ns, dtype=np.int64), utc=True).tz_convert(CHICAGO)
    return local.tz_localize(None).values.astype("datetime64[D]")


def outside_reasons(ts_ns: np.ndarray, sessions: Sessions) -> np.ndarray:
    """Per timestamp (each outside every segment), CLOSED_DAY, IN_HALT or AFTER_EARLY_CLOSE.

    A closed day is a Chicago date that is no CME trade date and ends no (holiday) segment: a weekend,
    Christmas. After an early close: the segment before it closed early (holiday halt, early close) on the
    same date. Anything else is a halt (the daily 16:00-17:00 CT one, the grains' morning break).
    """
    ts_ns = np.asarray(ts_ns, dtype=np.int64)
    out = np.full(len(ts_ns), IN_HALT, dtype=np.int64)
    if len(ts_ns) == 0:
        return out
    day = _chicago_dates(ts_ns)
    trade_days = cme_trade_dates(day.min().astype(object), day.max().astype(object))
    close_days = _chicago_dates(sessions.close_ns) if len(sessions) else np.array([], "datetime64[D]")
    prev = np.searchsorted(sessions.close_ns, ts_ns, side="right") - 1
    has_prev = prev >= 0
    if sessions.early_close is not None and len(sessions):
        k = np.maximum(prev, 0)
        early = has_prev & sessions.early_close[k] & (close_days[k] == day) if len(close_days) else has_prev
        out[early] = AFTER_EARLY_CLOSE
    closed = ~np.isin(day, trade_days) & ~np.isin(day, close_days)
    out[closed] = CLOSED_DAY
    return out
