"""Footprint: per bar, the volume traded at each price level by aggressor side, with diagonal imbalances flagged.

Long and sparse: one row per (bar, level) that traded, levels ascending. A level is the trade price floored to a
multiple of `tick` (adjusted continuous prices sit on the grid already; a ratio-adjusted one is put back on it).

Diagonal imbalance (as footprint charts read it: buyers lift the offer one tick above where sellers hit the bid):
- buy imbalance at p: buy_volume(p) >= ratio * sell_volume(p - tick) and buy_volume(p) >= min_volume;
- sell imbalance at p: sell_volume(p) >= ratio * buy_volume(p + tick) and sell_volume(p) >= min_volume.
A missing or zero opposite level counts as zero volume, so a large one-sided level is flagged (an infinite ratio).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from numba import njit

from hdi_core.calendar.arrays import Sessions
from hdi_core.errors import HdiError
from hdi_core.orderflow.tape import BUY, SELL, BarIndex, Trades, bar_index

FOOTPRINT_SCHEMA = pa.schema([
    ("ts_event", pa.int64()), ("price", pa.int64()), ("buy_volume", pa.int64()), ("sell_volume", pa.int64()),
    ("no_side_volume", pa.int64()), ("buy_imbalance", pa.bool_()), ("sell_imbalance", pa.bool_()),
])
MAX_LEVELS = 1 << 22  # a bar wider than this many ticks means a wrong tick size, not a market


@njit(cache=True, nogil=True)
def _footprint_kernel(price: np.ndarray, size: np.ndarray, side: np.ndarray, starts: np.ndarray,
                      bar_ts: np.ndarray, tick: int, ratio: float, min_volume: int, out_ts: np.ndarray,
                      out_px: np.ndarray, out_vol: np.ndarray, out_flag: np.ndarray) -> tuple[int, int]:
    # pragma: no cover - compiled
    """Per bar, a dense scratch ladder between its lowest and highest level, then its traded levels written out.

    Returns (rows written, -1) or (bar index, level count) when a bar is wider than MAX_LEVELS.
    """
    width = 64
    buy = np.zeros(width, np.int64)
    sell = np.zeros(width, np.int64)
    none = np.zeros(width, np.int64)
    seen = np.zeros(width, np.bool_)
    m = 0
    for k in range(len(starts) - 1):
        a = starts[k]
        b = starts[k + 1]
        lo = price[a] - price[a] % tick
        hi = lo
        for i in range(a + 1, b):
            lvl = price[i] - price[i] % tick
            if lvl < lo:
                lo = lvl
            elif lvl > hi:
                hi = lvl
        r = (hi - lo) // tick + 1
        if r > MAX_LEVELS:
            return k, r
        if r > width:
            width = max(r, 2 * width)
            buy = np.zeros(width, np.int64)
            sell = np.zeros(width, np.int64)
            none = np.zeros(width, np.int64)
            seen = np.zeros(width, np.bool_)
        for i in range(a, b):
            j = (price[i] - price[i] % tick - lo) // tick
            seen[j] = True
            if side[i] == BUY:
                buy[j] += size[i]
            elif side[i] == SELL:
                sell[j] += size[i]
            else:
                none[j] += size[i]
        for j in range(r):
            if seen[j]:
                below = sell[j - 1] if j > 0 else 0
                above = buy[j + 1] if j + 1 < r else 0
                out_ts[m] = bar_ts[k]
                out_px[m] = lo + j * tick
                out_vol[m, 0] = buy[j]
                out_vol[m, 1] = sell[j]
                out_vol[m, 2] = none[j]
                out_flag[m, 0] = buy[j] >= min_volume and buy[j] >= ratio * below
                out_flag[m, 1] = sell[j] >= min_volume and sell[j] >= ratio * above
                m += 1
        for j in range(r):
            buy[j] = 0
            sell[j] = 0
            none[j] = 0
            seen[j] = False
    return m, -1


def footprint_of_bars(trades: Trades, bars: BarIndex, tick: int, ratio: float = 3.0,
                      min_volume: int = 10) -> pa.Table:
    """The footprint rows of already-cut bars (see the module docstring for the imbalance rule)."""
    if tick <= 0:
        raise HdiError(f"footprint tick must be a positive fixed-point price, got {tick}")
    n = len(trades)
    out_ts, out_px = np.empty(n, np.int64), np.empty(n, np.int64)
    out_vol, out_flag = np.empty((n, 3), np.int64), np.empty((n, 2), np.bool_)
    m, width = _footprint_kernel(trades.price, trades.size, trades.side, bars.starts, bars.bar_ts, int(tick),
                                 float(ratio), int(min_volume), out_ts, out_px, out_vol, out_flag)
    if width >= 0:
        raise HdiError(f"bar at {np.datetime64(int(bars.bar_ts[m]), 'ns')}Z spans {width} levels of tick {tick}: "
                       "is the product's tick size right?")
    cols = [out_ts[:m].copy(), out_px[:m].copy(), *(out_vol[:m, j].copy() for j in range(3)),
            *(out_flag[:m, j].copy() for j in range(2))]
    return pa.Table.from_arrays([pa.array(c) for c in cols], schema=FOOTPRINT_SCHEMA)


def footprint(trades: Trades, sessions: Sessions, interval: str, tick: int, ratio: float = 3.0,
              min_volume: int = 10) -> pa.Table:
    """Volume at each tick-aligned level by aggressor side per bar, with diagonal imbalance flags."""
    return footprint_of_bars(trades, bar_index(trades.ts, sessions, interval), tick, ratio, min_volume)
