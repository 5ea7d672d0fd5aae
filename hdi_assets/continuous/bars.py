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

from hdi_assets.continuous.sessions import NS, Sessions, day_anchor_ns, session_spans
from hdi_resources.errors import HdiError

INTERVAL_NS: dict[str, int] = {"1s": NS, "1m": 60 * NS, "5m": 300 * NS, "15m": 900 * NS, "1h": 3600 * NS}
DAILY = "1d"
PRICE_SCALE = 1_000_000_000

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


CHUNK_TICKS = 1 << 20  # temporaries of ~8 MB stay in cache and in malloc's heap instead of fresh pages


def _chunk_cuts(ts: np.ndarray, chunk: int) -> np.ndarray:
    """Row cuts about `chunk` apart, each moved forward to the first tick of a new second."""
    n = len(ts)
    targets = np.arange(chunk, n, chunk)
    cuts = np.searchsorted(ts, (ts[targets] // NS + 1) * NS, side="left") if len(targets) else targets
    return np.unique(np.concatenate([[0], cuts, [n]]))


def _bars_of_chunk(ts: np.ndarray, price: np.ndarray, size: np.ndarray, forced: np.ndarray,
                   out: dict[str, np.ndarray], k: int) -> int:
    """Write the 1 s bars of one chunk (starting on a new second) at row k of `out`; return the bar count."""
    n = len(ts)
    sec = ts // NS
    boundary = np.empty(n, dtype=bool)
    boundary[0] = True
    np.not_equal(sec[1:], sec[:-1], out=boundary[1:])
    boundary[forced] = True  # a session opening mid-second still starts a new bar
    starts = np.flatnonzero(boundary)
    m = len(starts)
    ends = np.empty(m, dtype=np.int64)
    ends[:-1] = starts[1:]
    ends[-1] = n
    rows = slice(k, k + m)
    np.multiply(sec[starts], NS, out=out["ts_event"][rows])
    np.take(price, starts, out=out["open"][rows])
    np.take(price, ends - 1, out=out["close"][rows])
    np.maximum.reduceat(price, starts, out=out["high"][rows])
    np.minimum.reduceat(price, starts, out=out["low"][rows])
    cum_size = np.cumsum(size)  # exact int64; faster than add.reduceat
    vol = out["volume"][rows]
    np.take(cum_size, ends - 1, out=vol)
    vol[1:] -= cum_size[ends[:-1] - 1]
    np.subtract(ends, starts, out=out["trade_count"][rows])
    notional = price.astype(np.float64)
    notional *= size
    vwap = out["vwap"][rows]
    np.add.reduceat(notional, starts, out=vwap)
    with np.errstate(invalid="ignore", divide="ignore"):
        vwap /= vol * float(PRICE_SCALE)
    zero_volume = vol == 0  # zero-size trades leave no weight: fall back to the close
    if zero_volume.any():
        vwap[zero_volume] = out["close"][rows][zero_volume] / PRICE_SCALE
    return m


def ohlcv_1s(ticks: pa.Table, sessions: Sessions, dense: bool = False,
             price_column: str = "price") -> pa.Table:
    """1-second OHLCV bars of sorted ticks, labelled with session index and trade date.

    Raises HdiError if a tick lies outside every session (never drops it silently) or ticks are unsorted.
    Works in chunks of about CHUNK_TICKS ticks cut on whole seconds, writing into output arrays sized for
    the worst case (one bar per tick): only the rows written are ever touched, so they cost no memory.
    """
    ts = column_i64(ticks, "ts_event")
    price = column_i64(ticks, price_column)
    size = column_i64(ticks, "size")
    n = len(ts)
    if n == 0:
        return BAR_SCHEMA.empty_table()
    _require_sorted(ts, "ticks are")
    lo_rows, hi_rows = session_spans(ts, sessions)
    counts = hi_rows - lo_rows
    if int(counts.sum()) != n:
        _session_ids(ts, sessions, "ticks")  # raises with the first offending tick
    session_starts = np.unique(lo_rows[counts > 0])
    out = {name: np.empty(n, dtype=np.float64 if name == "vwap" else np.int64)
           for name in ("ts_event", "open", "high", "low", "close", "volume", "trade_count", "vwap")}
    cuts = _chunk_cuts(ts, CHUNK_TICKS)
    k = 0
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):  # one iteration per million ticks
        lo_f, hi_f = np.searchsorted(session_starts, [a, b])
        k += _bars_of_chunk(ts[a:b], price[a:b], size[a:b], session_starts[lo_f:hi_f] - a, out, k)
    cols = {name: arr[:k] for name, arr in out.items()}
    # bar i belongs to the session holding its first tick: count bars starting before each session's span
    sid = np.searchsorted(cols["ts_event"], sessions.open_ns, side="left")
    cols["session_id"] = np.repeat(np.arange(len(sessions), dtype=np.int64), np.diff(np.append(sid, k)))
    order = ("ts_event", "open", "high", "low", "close", "volume", "trade_count", "vwap", "session_id")
    values = [cols[name] for name in order]
    if dense:
        values = list(_densify(*values, NS))
    return _table(*values, sessions)


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
