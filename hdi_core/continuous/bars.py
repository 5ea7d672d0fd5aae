"""Session-aware OHLCV bars from ticks: pure, vectorized, no Dagster.

Tables in and out are pyarrow; the work happens on NumPy views. Prices stay int64 fixed point (1e-9);
`vwap` is the one float64 column, in price units (a volume-weighted mean is not exact by nature, and the
float path avoids the int64 overflow of summing price * size). A bar's `ts_event` is its interval start,
as in Databento's own OHLCV. Bars never mix two sessions: 1 s bars because sessions open and close on
whole seconds (and session starts are forced as bar boundaries anyway), coarser bars because they are
bucketed from the session open.

Dense mode fills every second (or interval) between a session's first and last traded bar with a flat
bar (open = high = low = close = previous close, volume 0, trade_count 0, vwap = close). It does not fill
before the session's first trade, because there is no close in that session to carry.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from numba import njit

from hdi_core.calendar.arrays import Sessions, day_anchor_ns, session_spans
from hdi_core.errors import HdiError
from hdi_core.units import NS, PRICE_SCALE

INTERVAL_NS: dict[str, int] = {"1s": NS, "1m": 60 * NS, "5m": 300 * NS, "15m": 900 * NS, "1h": 3600 * NS}
DAILY = "1d"

BAR_SCHEMA = pa.schema([
    ("ts_event", pa.int64()), ("open", pa.int64()), ("high", pa.int64()), ("low", pa.int64()),
    ("close", pa.int64()), ("volume", pa.int64()), ("trade_count", pa.int64()), ("vwap", pa.float64()),
    ("session_id", pa.int64()), ("trade_date", pa.date32()),
])


def column_i64(table: pa.Table, name: str) -> np.ndarray:
    """A column as an int64 NumPy array (zero-copy for a single null-free chunk); timestamps become ns."""
    if name not in table.column_names:
        raise HdiError(f"tick table has no column '{name}' (columns: {', '.join(table.column_names)})")
    col = table.column(name)
    if col.null_count:
        raise HdiError(f"column '{name}' has {col.null_count} null values")
    if pa.types.is_timestamp(col.type):
        col = col.cast(pa.timestamp("ns", col.type.tz)).cast(pa.int64())
    arr = col.to_numpy()
    return arr if arr.dtype == np.int64 else arr.astype(np.int64)


def interval_ns(interval: str | int) -> int | None:
    """Nanoseconds of an interval name ("1s".."1h"), an int passes through, "1d" (a whole session) -> None."""
    if isinstance(interval, (int, np.integer)):
        return int(interval)
    if interval == DAILY:
        return None
    if interval not in INTERVAL_NS:
        raise HdiError(f"unknown bar interval '{interval}' (expected one of 1s, 1m, 5m, 15m, 1h, 1d)")
    return INTERVAL_NS[interval]


def ticks_outside_sessions(ticks: pa.Table, sessions: Sessions) -> pa.Table:
    """The ticks no session holds (to quarantine or report before building bars)."""
    ts = column_i64(ticks, "ts_event")
    idx = np.searchsorted(sessions.open_ns, ts, side="right") - 1
    inside = idx >= 0
    inside[inside] = ts[inside] < sessions.close_ns[idx[inside]]
    return ticks.filter(pa.array(~inside))


def _iso(ts_ns: int) -> str:
    return str(np.datetime64(int(ts_ns), "ns")) + "Z"


def _require_sorted(ts: np.ndarray, what: str) -> None:
    if len(ts) > 1 and bool(np.any(ts[1:] < ts[:-1])):
        first = int(np.flatnonzero(ts[1:] < ts[:-1])[0]) + 1
        raise HdiError(f"{what} not sorted by ts_event: row {first} ({_iso(ts[first])}) goes back in time")


def _session_ids(ts: np.ndarray, sessions: Sessions, what: str) -> np.ndarray:
    """Session index per row of sorted `ts`; raise naming the first row outside every session."""
    lo, hi = session_spans(ts, sessions)
    counts = hi - lo
    if int(counts.sum()) != len(ts):
        outside = np.ones(len(ts), dtype=bool)
        for a, b in zip(lo[counts > 0], hi[counts > 0], strict=True):  # one slice per session, not per row
            outside[a:b] = False
        rows = np.flatnonzero(outside)
        raise HdiError(f"{len(rows)} {what} lie outside every trading session, first at {_iso(ts[rows[0]])} "
                       f"(row {rows[0]}); filter them with ticks_outside_sessions() first")
    return np.repeat(np.arange(len(sessions), dtype=np.int64), counts)


def _table(ts: np.ndarray, o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray, vol: np.ndarray,
           count: np.ndarray, vwap: np.ndarray, sid: np.ndarray, sessions: Sessions) -> pa.Table:
    days = sessions.trade_date.astype("datetime64[D]").astype(np.int32)[sid]  # date32 = days since epoch
    return pa.Table.from_arrays(
        [pa.array(ts), pa.array(o), pa.array(h), pa.array(lo), pa.array(c), pa.array(vol), pa.array(count),
         pa.array(vwap), pa.array(sid), pa.array(days).view(pa.date32())],
        schema=BAR_SCHEMA)


def _densify(ts: np.ndarray, o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray, vol: np.ndarray,
             count: np.ndarray, vwap: np.ndarray, sid: np.ndarray, step: int) -> tuple[np.ndarray, ...]:
    """Fill every `step` between each session's first and last bar with flat bars at the previous close."""
    if len(ts) == 0:
        return ts, o, h, lo, c, vol, count, vwap, sid
    new_session = np.empty(len(ts), dtype=bool)
    new_session[0] = True
    new_session[1:] = sid[1:] != sid[:-1]
    first = np.flatnonzero(new_session)
    last = np.append(first[1:], len(ts)) - 1
    slots = (ts[last] - ts[first]) // step + 1  # bars per session once dense
    offset = np.concatenate([[0], np.cumsum(slots)[:-1]])
    run = np.repeat(np.arange(len(first)), np.diff(np.append(first, len(ts))))
    pos = offset[run] + (ts - ts[first][run]) // step  # where each real bar lands
    total = int(slots.sum())
    carry = np.zeros(total, dtype=np.int64)  # index of the latest real bar at or before each slot
    carry[pos] = np.arange(len(ts))
    marker = np.zeros(total, dtype=bool)
    marker[pos] = True
    carry = np.maximum.accumulate(np.where(marker, carry, 0))
    dense_sid = np.repeat(sid[first], slots)
    dense_ts = np.repeat(ts[first], slots) + (np.arange(total) - np.repeat(offset, slots)) * step
    close = c[carry]
    out_o, out_h, out_l = close.copy(), close.copy(), close.copy()
    out_o[pos], out_h[pos], out_l[pos] = o, h, lo
    out_vol = np.zeros(total, dtype=np.int64)
    out_cnt = np.zeros(total, dtype=np.int64)
    out_vol[pos], out_cnt[pos] = vol, count
    out_vwap = close.astype(np.float64) / PRICE_SCALE
    out_vwap[pos] = vwap
    return dense_ts, out_o, out_h, out_l, close, out_vol, out_cnt, out_vwap, dense_sid


_OK, _UNSORTED, _OUTSIDE = 0, 1, 2


@njit(cache=True, nogil=True)
def _bars_1s_kernel(ts: np.ndarray, price: np.ndarray, size: np.ndarray, open_ns: np.ndarray,
                    close_ns: np.ndarray, session_day: np.ndarray, out_ts: np.ndarray, out_o: np.ndarray,
                    out_h: np.ndarray, out_l: np.ndarray, out_c: np.ndarray, out_vol: np.ndarray,
                    out_cnt: np.ndarray, out_vwap: np.ndarray, out_sid: np.ndarray,
                    out_day: np.ndarray) -> tuple[int, int]:  # pragma: no cover - compiled
    """One pass over sorted ticks: session, second, OHLC, volume, count and VWAP of each 1 s bar.

    Returns (status, bars written); a bar breaks on a new second or a new session. On _UNSORTED or
    _OUTSIDE the caller re-checks with NumPy to name the offending row.
    """
    n = len(ts)
    n_sessions = len(open_ns)
    s = 0
    k = -1
    cur_sec = np.int64(-1)
    cur_s = -1
    notional = 0.0
    prev_t = ts[0]
    for i in range(n):
        t = ts[i]
        if t < prev_t:
            return _UNSORTED, 0
        prev_t = t
        while s < n_sessions and close_ns[s] <= t:
            s += 1
        if s == n_sessions or t < open_ns[s]:
            return _OUTSIDE, 0
        sec = t // NS
        p = price[i]
        q = size[i]
        if sec != cur_sec or s != cur_s:
            if k >= 0:
                out_vwap[k] = _vwap(notional, out_vol[k], out_c[k])
            k += 1
            cur_sec = sec
            cur_s = s
            out_ts[k] = sec * NS
            out_o[k] = p
            out_h[k] = p
            out_l[k] = p
            out_vol[k] = 0
            out_cnt[k] = 0
            out_sid[k] = s
            out_day[k] = session_day[s]
            notional = 0.0
        elif p > out_h[k]:
            out_h[k] = p
        elif p < out_l[k]:
            out_l[k] = p
        out_c[k] = p
        out_vol[k] += q
        out_cnt[k] += 1
        notional += float(p) * float(q)  # the same left-to-right float sum as add.reduceat
    if k >= 0:
        out_vwap[k] = _vwap(notional, out_vol[k], out_c[k])
    return _OK, k + 1


@njit(cache=True, nogil=True, inline="always")
def _vwap(notional: float, volume: int, close: int) -> float:  # pragma: no cover - compiled
    """Volume-weighted mean in price units; zero-size trades leave no weight, so the close stands in."""
    if volume == 0:
        return close / 1e9
    return notional / (float(volume) * 1e9)


def ohlcv_1s(ticks: pa.Table, sessions: Sessions, dense: bool = False,
             price_column: str = "price") -> pa.Table:
    """1-second OHLCV bars of sorted ticks, labelled with session index and trade date.

    Raises HdiError if a tick lies outside every session (never drops it silently) or ticks are unsorted.
    One compiled pass writes into output arrays sized for the worst case (one bar per tick): only the rows
    written are ever touched, so the untouched tail costs no memory.
    """
    ts = column_i64(ticks, "ts_event")
    price = column_i64(ticks, price_column)
    size = column_i64(ticks, "size")
    n = len(ts)
    if n == 0:
        return BAR_SCHEMA.empty_table()
    session_day = sessions.trade_date.astype("datetime64[D]").astype(np.int32)  # date32 = days since epoch
    out = [np.empty(n, dtype=np.float64 if name == "vwap" else np.int64)
           for name in ("ts_event", "open", "high", "low", "close", "volume", "trade_count", "vwap",
                        "session_id")]
    out_day = np.empty(n, dtype=np.int32)
    status, k = _bars_1s_kernel(ts, price, size, np.ascontiguousarray(sessions.open_ns, dtype=np.int64),
                                np.ascontiguousarray(sessions.close_ns, dtype=np.int64), session_day,
                                *out, out_day)
    if status == _UNSORTED:
        _require_sorted(ts, "ticks are")
    if status == _OUTSIDE:
        _session_ids(ts, sessions, "ticks")  # raises with the first offending tick
    values = [arr[:k] for arr in out]
    if dense:
        return _table(*_densify(*values, NS), sessions)
    return _table_with_days(values, out_day[:k])


def _table_with_days(values: list[np.ndarray], days: np.ndarray) -> pa.Table:
    """The bar table from columns in BAR_SCHEMA order, trade dates already as date32 day numbers."""
    return pa.Table.from_arrays([pa.array(v) for v in values] + [pa.array(days).view(pa.date32())],
                                schema=BAR_SCHEMA)


def resample(bars_1s: pa.Table, interval: str, sessions: Sessions, dense: bool = False) -> pa.Table:
    """Coarser bars from 1 s bars, buckets anchored to the session open; "1d" is the whole trading day.

    Session membership is recomputed from `ts_event` against `sessions`, so the caller may pass calendar
    sessions here even if the 1 s bars were cut on halts. Flat filler bars (trade_count 0) are ignored;
    with `dense` the coarse bars are densified again at their own interval ("1d" is never densified).
    """
    step = interval_ns(interval)
    keep = pc_trade_bars(bars_1s)
    ts = column_i64(keep, "ts_event")
    if len(ts) == 0:
        return BAR_SCHEMA.empty_table()
    _require_sorted(ts, "bars are")
    sid = _session_ids(ts, sessions, "bars")
    o, h, lo, c = (column_i64(keep, k) for k in ("open", "high", "low", "close"))
    vol, count = column_i64(keep, "volume"), column_i64(keep, "trade_count")
    vwap_in = keep.column("vwap").to_numpy()
    anchor = day_anchor_ns(sessions)[sid] if step is None else sessions.open_ns[sid]
    if step is None:
        key = sessions.trade_date[sid].astype(np.int64)
    else:
        key = (ts - anchor) // step
    boundary = np.empty(len(ts), dtype=bool)
    boundary[0] = True
    boundary[1:] = key[1:] != key[:-1]
    if step is not None:
        boundary[1:] |= sid[1:] != sid[:-1]
    starts = np.flatnonzero(boundary)
    ends = np.append(starts[1:], len(ts))
    out_sid = sid[starts]
    out_ts = anchor[starts] if step is None else anchor[starts] + key[starts] * step
    out_vol = np.add.reduceat(vol, starts)
    pv = np.add.reduceat(vwap_in * vol, starts)
    out_c = c[ends - 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        out_vwap = np.where(out_vol > 0, pv / np.maximum(out_vol, 1), out_c / PRICE_SCALE)
    cols = (out_ts, o[starts], np.maximum.reduceat(h, starts), np.minimum.reduceat(lo, starts), out_c,
            out_vol, np.add.reduceat(count, starts), out_vwap, out_sid)
    if dense and step is not None:
        cols = _densify(*cols, step)
    return _table(*cols, sessions)


def pc_trade_bars(bars: pa.Table) -> pa.Table:
    """Only the bars that hold trades (drops dense fillers)."""
    count = column_i64(bars, "trade_count")
    if len(count) and bool((count == 0).any()):
        return bars.filter(pa.array(count > 0))
    return bars
