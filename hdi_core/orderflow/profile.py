"""Volume profile per session (CME trade date): volume at each tick of the session's range, point of control,
value area, high and low volume nodes.

Rules (documented in configs/README.md; parameters in configs/orderflow.yaml `profile`):
- Ladder: every tick-aligned level from the session's lowest to highest traded level, zero-volume levels included.
- POC: the level with the most volume; on a tie, the one nearest the middle of the range, then the lower price.
- Value area: from the POC, the standard two-level expansion (CBOT Market Profile): compare the volume of the next
  two levels above with the next two below and take the larger pair (ties go up; one side exhausted: the other
  side), until the area holds at least `value_area_share` of the session's volume.
- Nodes, against the mean volume per ladder level (session volume / levels): a high-volume node has at least
  `hvn_factor` x the mean and is the largest within +-`node_window_ticks` (equal neighbours are all flagged); a
  low-volume node has at most `lvn_factor` x the mean, is the smallest within the window, and is strictly inside
  the range (not its first or last level).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from numba import njit

from hdi_core.calendar.arrays import Sessions
from hdi_core.orderflow.footprint import footprint_of_bars
from hdi_core.orderflow.tape import Trades, bar_index

PROFILE_SCHEMA = pa.schema([
    ("trade_date", pa.date32()), ("ts_event", pa.int64()), ("price", pa.int64()), ("volume", pa.int64()),
    ("buy_volume", pa.int64()), ("sell_volume", pa.int64()), ("no_side_volume", pa.int64()),
    ("is_poc", pa.bool_()), ("in_value_area", pa.bool_()), ("node", pa.string()),
])
SUMMARY_SCHEMA = pa.schema([
    ("trade_date", pa.date32()), ("ts_event", pa.int64()), ("volume", pa.int64()), ("poc", pa.int64()),
    ("value_area_high", pa.int64()), ("value_area_low", pa.int64()), ("value_area_volume", pa.int64()),
    ("high", pa.int64()), ("low", pa.int64()), ("levels", pa.int64()),
])
NODE_NONE, NODE_HIGH, NODE_LOW = 0, 1, 2
NODE_NAMES = np.array([None, "high", "low"], dtype=object)


@njit(cache=True, nogil=True)
def _ladder_kernel(vol: np.ndarray, share: float, window: int, hvn: float, lvn: float, poc_out: np.ndarray,
                   area: np.ndarray, node: np.ndarray) -> tuple[int, int, int]:  # pragma: no cover - compiled
    """POC, value area [lo, hi] and nodes of one dense ladder; returns (poc, va_lo, va_hi) as ladder indexes."""
    r = len(vol)
    total = 0
    best = -1
    for j in range(r):
        total += vol[j]
        if vol[j] > best:
            best = vol[j]
    poc = -1
    dist = r * 2 + 2
    for j in range(r):
        if vol[j] == best:
            d = abs(2 * j - (r - 1))  # twice the distance to the middle: exact on half levels
            if d < dist:
                dist = d
                poc = j
    poc_out[poc] = True
    lo = hi = poc
    va = vol[poc]
    while va < share * total and (lo > 0 or hi < r - 1):
        up = 0
        for j in range(hi + 1, min(hi + 3, r)):
            up += vol[j]
        dn = 0
        for j in range(max(lo - 2, 0), lo):
            dn += vol[j]
        if hi < r - 1 and (lo == 0 or up >= dn):
            new_hi = min(hi + 2, r - 1)
            hi = new_hi
            va += up
        else:
            lo = max(lo - 2, 0)
            va += dn
    for j in range(lo, hi + 1):
        area[j] = True
    mean = total / r
    for j in range(r):
        a = max(j - window, 0)
        b = min(j + window, r - 1)
        top = vol[a]
        bottom = vol[a]
        for i in range(a, b + 1):
            top = max(top, vol[i])
            bottom = min(bottom, vol[i])
        if vol[j] >= hvn * mean and vol[j] == top:
            node[j] = NODE_HIGH
        elif 0 < j < r - 1 and vol[j] <= lvn * mean and vol[j] == bottom:
            node[j] = NODE_LOW
    return poc, lo, hi


def volume_profile(trades: Trades, sessions: Sessions, tick: int, value_area_share: float = 0.70,
                   node_window_ticks: int = 3, hvn_factor: float = 1.5,
                   lvn_factor: float = 0.5) -> tuple[pa.Table, pa.Table]:
    """(levels, summary) per trade date: the dense ladder with flags, and one row of POC/value area per session."""
    days = bar_index(trades.ts, sessions, "1d")
    levels = footprint_of_bars(trades, days, tick)
    return profile_from_levels(levels, days.bar_ts, days.trade_date, tick, value_area_share, node_window_ticks,
                               hvn_factor, lvn_factor)


def profile_from_levels(levels: pa.Table, session_ts: np.ndarray, trade_date: np.ndarray, tick: int,
                        value_area_share: float = 0.70, node_window_ticks: int = 3, hvn_factor: float = 1.5,
                        lvn_factor: float = 0.5) -> tuple[pa.Table, pa.Table]:
    """The profile of daily footprint rows (ts_event = the session's timestamp, ascending price per session)."""
    ts = levels.column("ts_event").to_numpy()
    px = levels.column("price").to_numpy()
    sides = np.stack([levels.column(c).to_numpy() for c in ("buy_volume", "sell_volume", "no_side_volume")], 1)
    bounds = np.searchsorted(ts, session_ts, side="left").tolist() + [len(ts)]
    parts: list[list[np.ndarray]] = []
    summary: list[list[int]] = []
    for s in range(len(session_ts)):  # one small dense ladder per session (a few hundred levels), not per trade
        a, b = bounds[s], bounds[s + 1]
        if a == b:
            continue
        lo_px = int(px[a])
        r = (int(px[b - 1]) - lo_px) // tick + 1
        at = (px[a:b] - lo_px) // tick
        dense = np.zeros((r, 3), np.int64)
        dense[at] = sides[a:b]
        vol = dense.sum(1)
        poc, area, node = np.zeros(r, bool), np.zeros(r, bool), np.zeros(r, np.int8)
        p, va_lo, va_hi = _ladder_kernel(vol, float(value_area_share), int(node_window_ticks), float(hvn_factor),
                                         float(lvn_factor), poc, area, node)
        price = lo_px + np.arange(r, dtype=np.int64) * tick
        parts.append([np.full(r, trade_date[s], np.int32), np.full(r, session_ts[s], np.int64), price, vol,
                      dense[:, 0], dense[:, 1], dense[:, 2], poc, area, node])
        summary.append([int(trade_date[s]), int(session_ts[s]), int(vol.sum()), int(price[p]), int(price[va_hi]),
                        int(price[va_lo]), int(vol[va_lo : va_hi + 1].sum()), int(price[-1]), lo_px, r])
    if not parts:
        return PROFILE_SCHEMA.empty_table(), SUMMARY_SCHEMA.empty_table()
    cols = [np.concatenate(c) for c in zip(*parts, strict=True)]
    arrays = [pa.array(cols[0]).view(pa.date32()), *(pa.array(c) for c in cols[1:9]),
              pa.array(NODE_NAMES[cols[9]], pa.string())]
    rows = np.array(summary, dtype=np.int64)
    summary_arrays = [pa.array(rows[:, 0].astype(np.int32)).view(pa.date32()),
                      *(pa.array(rows[:, j]) for j in range(1, rows.shape[1]))]
    return (pa.Table.from_arrays(arrays, schema=PROFILE_SCHEMA),
            pa.Table.from_arrays(summary_arrays, schema=SUMMARY_SCHEMA))
