"""The trade tape as arrays: aggressor side codes and the bar each trade falls in (the ohlcv bars' own buckets).

Databento's `side` on a trade is the aggressor's: 'B' a buy aggressor (lifted the offer), 'A' a sell aggressor
(hit the bid), 'N' no side given by the source. Sides stay their ASCII byte (a zero-copy view of DBN's `S1`
field); a no-side trade is counted apart, never guessed.

Bars are cut exactly as hdi_core/continuous/bars.py cuts them: 1 s bars on whole seconds, 1m..1h bars
bucketed from the open of their session segment, "1d" the whole CME trade date (timestamp: the open of its
first segment), and no intraday bar spans two segments (the daily bar joins a trade date's segments).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

from hdi_core.calendar.arrays import Sessions, day_anchor_ns, session_index
from hdi_core.continuous.bars import column_i64, interval_ns
from hdi_core.errors import HdiError

BUY = ord("B")  # buy aggressor (trade) / bid side (book)
SELL = ord("A")  # sell aggressor (trade) / ask side (book)
NO_SIDE = ord("N")
_OK, _UNSORTED, _OUTSIDE = 0, 1, 2


def side_bytes(column: pa.Array | pa.ChunkedArray | np.ndarray, what: str = "side") -> np.ndarray:
    """Side codes as uint8 ASCII ('A', 'B', 'N') from an Arrow text column, DBN `S1` bytes or uint8 codes."""
    if isinstance(column, (pa.Array, pa.ChunkedArray)):
        kind = column.type
        if pa.types.is_dictionary(kind):
            column, kind = column.cast(kind.value_type), kind.value_type
        if column.null_count:
            raise HdiError(f"column '{what}' has {column.null_count} null values")
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            arr = np.full(len(column), 0, dtype=np.uint8)
            for code in (BUY, SELL, NO_SIDE):
                arr[pc.equal(column, chr(code)).to_numpy(zero_copy_only=False)] = code
        else:
            arr = column.to_numpy()
    else:
        arr = np.asarray(column)
    if arr.dtype.kind == "S":
        arr = arr.astype("S1").view(np.uint8)
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    bad = (arr != BUY) & (arr != SELL) & (arr != NO_SIDE)
    if bool(bad.any()):
        row = int(np.flatnonzero(bad)[0])
        shown = column[row] if isinstance(column, (pa.Array, pa.ChunkedArray)) else arr[row]
        raise HdiError(f"column '{what}' row {row}: side {shown!s} is not A, B or N")
    return arr


@dataclass(frozen=True)
class Trades:
    """Sorted trades as int64 columns plus side bytes (what every trade measure takes)."""

    ts: np.ndarray
    price: np.ndarray
    size: np.ndarray
    side: np.ndarray  # uint8 ASCII

    def __len__(self) -> int:
        return len(self.ts)

    def slice(self, lo: int, hi: int) -> Trades:
        return Trades(self.ts[lo:hi], self.price[lo:hi], self.size[lo:hi], self.side[lo:hi])


def trades_from_table(table: pa.Table, price_column: str = "price") -> Trades:
    """The columns of a trade table (ts_event, price or adjusted_price, size, side)."""
    if "side" not in table.column_names:
        raise HdiError(f"trade table has no column 'side' (columns: {', '.join(table.column_names)})")
    return Trades(column_i64(table, "ts_event"), column_i64(table, price_column), column_i64(table, "size"),
                  side_bytes(table.column("side")))


@dataclass(frozen=True)
class BarIndex:
    """Bar k holds trades starts[k]:starts[k+1]; its timestamp, session segment and trade date (date32 days)."""

    starts: np.ndarray  # int64, len = bars + 1
    bar_ts: np.ndarray  # int64
    session_id: np.ndarray  # int64, the segment of the bar's first trade
    trade_date: np.ndarray  # int32 days since the epoch

    def __len__(self) -> int:
        return len(self.bar_ts)


@njit(cache=True, nogil=True)
def _bar_kernel(ts: np.ndarray, open_ns: np.ndarray, close_ns: np.ndarray, anchor: np.ndarray,
                day: np.ndarray, step: int, starts: np.ndarray, bar_ts: np.ndarray,
                sid_out: np.ndarray, write: bool) -> tuple[int, int]:  # pragma: no cover - compiled
    """One pass: session segment of each sorted trade and the bar it opens, as bars.resample buckets them.

    step > 0: a bar breaks on a new bucket of `step` from the segment's anchor or a new segment; step 0 (daily):
    on a new trade date. Returns (status, bars); on an error status the caller names the row. Without `write`
    it only counts (the caller then sizes the outputs exactly: no untouched pages, no copies).
    """
    n = len(ts)
    n_sessions = len(open_ns)
    s = 0
    k = -1
    cur_key = np.int64(-1)
    cur_s = -1
    prev = ts[0] if n else 0
    for i in range(n):
        t = ts[i]
        if t < prev:
            return _UNSORTED, i
        prev = t
        while s < n_sessions and close_ns[s] <= t:
            s += 1
        if s == n_sessions or t < open_ns[s]:
            return _OUTSIDE, i
        if step > 0:
            key = (t - anchor[s]) // step
            new = key != cur_key or s != cur_s
        else:
            key = np.int64(day[s])
            new = key != cur_key
        if new:
            k += 1
            if write:
                starts[k] = i
                bar_ts[k] = anchor[s] + key * step if step > 0 else anchor[s]
                sid_out[k] = s
            cur_key = key
            cur_s = s
    if write:
        starts[k + 1] = n
    return _OK, k + 1


def bar_index(ts: np.ndarray, sessions: Sessions, interval: str) -> BarIndex:
    """The bars of sorted trade times: 1s, 1m, 5m, 15m, 1h (from each segment's open) or 1d (trade date)."""
    step = interval_ns(interval)
    day = sessions.trade_date.astype("datetime64[D]").astype(np.int32)
    anchor = np.ascontiguousarray(sessions.open_ns if step is not None else day_anchor_ns(sessions), np.int64)
    opens = np.ascontiguousarray(sessions.open_ns, np.int64)
    closes = np.ascontiguousarray(sessions.close_ns, np.int64)
    none = np.empty(0, np.int64)
    status, k = _bar_kernel(ts, opens, closes, anchor, day, step or 0, none, none, none, False)
    if status == _UNSORTED:
        raise HdiError(f"trades not sorted by ts_event: row {k} ({_iso(ts[k])}) goes back in time")
    if status == _OUTSIDE:
        outside = int(np.count_nonzero(session_index(ts, sessions) < 0))
        raise HdiError(f"{outside} trades lie outside every trading session, first at row {k} ({_iso(ts[k])})")
    starts, bar_ts, sid = np.empty(k + 1, np.int64), np.empty(k, np.int64), np.empty(k, np.int64)
    _bar_kernel(ts, opens, closes, anchor, day, step or 0, starts, bar_ts, sid, True)
    return BarIndex(starts, bar_ts, sid, day[sid])


def _iso(ts_ns: int) -> str:
    return str(np.datetime64(int(ts_ns), "ns")) + "Z"
