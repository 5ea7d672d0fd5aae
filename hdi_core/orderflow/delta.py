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
def _flow_kernel(size: np.ndarray, side: np.ndarray, starts: np.ndarray, trade_date: np.ndarray,
                 cum_start: np.ndarray, out: tuple) -> None:  # pragma: no cover - compiled
    """Per bar: buy/sell/no-side volume and counts of its trades, and the cumulative delta of its trade date
    (restarting at each new date, from cum_start of the bar that starts it)."""
    buy_v, sell_v, none_v, buy_n, sell_n, none_n, cum = out
    running = 0
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
        if k == 0 or trade_date[k] != trade_date[k - 1]:
            running = cum_start[k]
        running += bv - sv
        buy_v[k] = bv
        sell_v[k] = sv
        none_v[k] = nv
        buy_n[k] = bn
        sell_n[k] = sn
        none_n[k] = nn
        cum[k] = running


def flow_of_bars(trades: Trades, bars: BarIndex, cum_start: np.ndarray | None = None) -> pa.Table:
    """The flow table of already-cut bars; `cum_start` (per bar) carries a session's cumulative delta in."""
    k = len(bars)
    cols = tuple(np.empty(k, np.int64) for _ in range(7))
    start = np.zeros(k, np.int64) if cum_start is None else np.ascontiguousarray(cum_start, np.int64)
    _flow_kernel(trades.size, trades.side, bars.starts, bars.trade_date, start, cols)
    buy, sell, none, bn, sn, nn, cum = cols
    arrays = [bars.bar_ts, bars.session_id, pa.array(bars.trade_date).view(pa.date32()), buy, sell, none, bn, sn,
              nn, buy + sell + none, bn + sn + nn, buy - sell, cum]
    return pa.Table.from_arrays([c if isinstance(c, pa.Array) else pa.array(c) for c in arrays], schema=FLOW_SCHEMA)


def aggressor_flow(trades: Trades, sessions: Sessions, interval: str) -> pa.Table:
    """Buy/sell/no-side aggressor volume and counts, delta and per-session cumulative delta of each bar."""
    return flow_of_bars(trades, bar_index(trades.ts, sessions, interval))
