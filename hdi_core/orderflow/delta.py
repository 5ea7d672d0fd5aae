"""Aggressor flow per bar: buy and sell aggressor volume and trade counts, delta, cumulative delta per session.

delta = buy_volume - sell_volume. No-side trades ('N') are counted in their own columns and in `volume`, never in
delta. The cumulative delta restarts at each CME trade date (the session of the daily bar) and includes the bar.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from numba import njit

from hdi_core.calendar.arrays import Sessions
from hdi_core.orderflow.tape import BUY, SELL, BarIndex, Trades, bar_index

FLOW_SCHEMA = pa.schema([
    ("ts_event", pa.int64()), ("session_id", pa.int64()), ("trade_date", pa.date32()),
    ("buy_volume", pa.int64()), ("sell_volume", pa.int64()), ("no_side_volume", pa.int64()),
    ("buy_count", pa.int64()), ("sell_count", pa.int64()), ("no_side_count", pa.int64()),
    ("volume", pa.int64()), ("trade_count", pa.int64()), ("delta", pa.int64()), ("cum_delta", pa.int64()),
])


@njit(cache=True, nogil=True)
def _flow_kernel(size: np.ndarray, side: np.ndarray, starts: np.ndarray,
                 out: np.ndarray) -> None:  # pragma: no cover - compiled
    """out[k] = (buy vol, sell vol, none vol, buy n, sell n, none n) of the trades of bar k."""
    for k in range(len(starts) - 1):
        bv = sv = nv = bn = sn = nn = 0
        for i in range(starts[k], starts[k + 1]):
            q = size[i]
            s = side[i]
            if s == BUY:
                bv += q
                bn += 1
            elif s == SELL:
                sv += q
                sn += 1
            else:
                nv += q
                nn += 1
        out[k, 0] = bv
        out[k, 1] = sv
        out[k, 2] = nv
        out[k, 3] = bn
        out[k, 4] = sn
        out[k, 5] = nn


def flow_of_bars(trades: Trades, bars: BarIndex, cum_start: np.ndarray | None = None) -> pa.Table:
    """The flow table of already-cut bars; `cum_start` (per bar) carries a session's cumulative delta in."""
    out = np.empty((len(bars), 6), np.int64)
    _flow_kernel(trades.size, trades.side, bars.starts, out)
    buy, sell, none, bn, sn, nn = (np.ascontiguousarray(out[:, j]) for j in range(6))
    delta = buy - sell
    cum = session_cumsum(delta, bars.trade_date)
    if cum_start is not None:
        cum = cum + cum_start
    cols = [bars.bar_ts, bars.session_id, pa.array(bars.trade_date).view(pa.date32()), buy, sell, none, bn, sn,
            nn, buy + sell + none, bn + sn + nn, delta, cum]
    return pa.Table.from_arrays([c if isinstance(c, pa.Array) else pa.array(c) for c in cols], schema=FLOW_SCHEMA)


def session_cumsum(values: np.ndarray, trade_date: np.ndarray) -> np.ndarray:
    """Running sum of `values` restarting where `trade_date` changes (rows in time order)."""
    if len(values) == 0:
        return values.copy()
    total = np.cumsum(values)
    first = np.empty(len(values), bool)
    first[0] = True
    first[1:] = trade_date[1:] != trade_date[:-1]
    base = np.where(first, total - values, 0)
    return total - _carry(base, first)


def _carry(base: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Each row's value of `base` at the latest row flagged `first` at or before it."""
    idx = np.maximum.accumulate(np.where(first, np.arange(len(first)), 0))
    return base[idx]


def aggressor_flow(trades: Trades, sessions: Sessions, interval: str) -> pa.Table:
    """Buy/sell/no-side aggressor volume and counts, delta and per-session cumulative delta of each bar."""
    return flow_of_bars(trades, bar_index(trades.ts, sessions, interval))
