"""The exchange's calendar straight from pandas_market_calendars, for tests of the synthetic market.

Deliberately independent of both HDI (hdi_core.calendar) and the gateway's adapter (hdi_gateway.exchange_calendar):
the tests compare the market's ticks and settlements with what the maintained library says.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd
import pandas_market_calendars as mcal

NS = 1_000_000_000
CALENDAR_OF = {"ES": "CME Globex Equity", "NQ": "CME Globex Equity", "GC": "CMEGlobex_Gold",
               "ZB": "CBOT_Bond", "ZC": "CMEGlobex_Grains"}
ROOT_OF_CODE = {1: "ES", 2: "NQ", 3: "GC", 4: "ZB", 5: "ZC"}


def _ns(values: pd.Series) -> np.ndarray:
    return np.array([int(t.value) for t in values], dtype=np.int64)


@cache
def schedule(root: str, first: str, last: str) -> pd.DataFrame:
    """The library's schedule rows for `root` with open_ns, close_ns (and break_start/end_ns when it has them)."""
    s = mcal.get_calendar(CALENDAR_OF[root]).schedule(first, last)
    out = pd.DataFrame({"day": s.index.to_numpy("datetime64[D]"), "open_ns": _ns(s["market_open"]),
                        "close_ns": _ns(s["market_close"])})
    if "break_start" in s:
        out["break_start_ns"] = _ns(s["break_start"])
        out["break_end_ns"] = _ns(s["break_end"])
    return out


@cache
def cme_trade_dates(first: str, last: str) -> np.ndarray:
    """The library's CME trade dates (datetime64[D])."""
    return mcal.get_calendar("CME_TradeDate").schedule(first, last).index.to_numpy("datetime64[D]")


def trade_date_of(root: str, ts_ns: np.ndarray, first: str | None = None, last: str | None = None) -> np.ndarray:
    """The CME trade date (datetime64[D]) of trading at each timestamp; NaT outside every library session.

    The schedule spans [first, last], by default the timestamps' dates with ten days either side.
    """
    ts = np.asarray(ts_ns, dtype=np.int64)
    if len(ts) == 0:
        return np.empty(0, dtype="datetime64[D]")
    if first is None or last is None:
        first = str(ts.min().astype("datetime64[ns]").astype("datetime64[D]") - 10)
        last = str(ts.max().astype("datetime64[ns]").astype("datetime64[D]") + 10)
    s = schedule(root, first, last)
    row = np.searchsorted(s["open_ns"].to_numpy(), ts, side="right") - 1
    inside = (row >= 0) & (ts < s["close_ns"].to_numpy()[np.maximum(row, 0)])
    dates = cme_trade_dates(first, last)
    day = s["day"].to_numpy()[np.maximum(row, 0)]
    trade_date = dates[np.minimum(np.searchsorted(dates, day), len(dates) - 1)]
    return np.where(inside, trade_date, np.datetime64("NaT", "D"))


def trade_dates_by_product(instrument_id: np.ndarray, ts_ns: np.ndarray) -> np.ndarray:
    """trade_date_of for mixed products (instrument_id // 10_000 is the product code)."""
    out = np.full(len(ts_ns), np.datetime64("NaT", "D"))
    code = np.asarray(instrument_id).astype(np.int64) // 10_000
    for c in np.unique(code):
        sel = code == c
        out[sel] = trade_date_of(ROOT_OF_CODE[int(c)], np.asarray(ts_ns)[sel])
    return out
