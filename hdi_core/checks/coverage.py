"""Coverage against the exchange calendar, and the order of the raw records: parts of timestamp_continuity.

All columnar: the trade dates present come from one session lookup, silences from one diff of the bar times
inside regular hours, record order and duplicates from comparing each record with the one before it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from hdi_core.calendar.arrays import CHICAGO, Sessions, session_index
from hdi_core.checks.common import MAX_EXAMPLES, _iso
from hdi_core.continuous.bars import column_i64

MINUTE_NS = 60 * 1_000_000_000
# Columns that together identify one delivered record of the trades schema (several trades may share ts_event).
RECORD_KEY = ("ts_recv", "sequence", "instrument_id", "ts_event", "price", "size")


def missing_trade_dates(ts: np.ndarray, sessions: Sessions, expected: np.ndarray) -> np.ndarray:
    """The expected trade dates (datetime64[D]) without a single bar."""
    idx = session_index(ts, sessions)
    present = np.unique(sessions.trade_date[idx[idx >= 0]])
    return np.setdiff1d(np.asarray(expected, dtype="datetime64[D]"), present)


def regular_hours(sessions: Sessions, start_minute: int, end_minute: int) -> tuple[np.ndarray, np.ndarray]:
    """[start, end) ns of each segment's part inside its trade date's regular hours (America/Chicago).

    A segment closing early (holiday, early close) clips its regular hours; parts that are empty are dropped.
    """
    if len(sessions) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    midnight = pd.DatetimeIndex(sessions.trade_date.astype("datetime64[ns]")).tz_localize(CHICAGO)
    rth_start = (midnight + pd.Timedelta(minutes=start_minute)).tz_convert("UTC").asi8
    rth_end = (midnight + pd.Timedelta(minutes=end_minute)).tz_convert("UTC").asi8
    start = np.maximum(sessions.open_ns, rth_start)
    end = np.minimum(sessions.close_ns, rth_end)
    keep = end > start
    return start[keep], end[keep]


def silences(ts: np.ndarray, step_ns: int, start: np.ndarray, end: np.ndarray,
             max_silence_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """(start, length) in ns of every pause longer than max_silence_ns inside the [start, end) pieces.

    `ts` are the sorted times of bars holding trades (a bar covers [t, t + step_ns)). A piece without any
    bar is one silence from its start to its end; the edges of a piece count (open to first trade, last
    trade to close).
    """
    if len(start) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    lo = np.searchsorted(ts, start, side="left")
    hi = np.searchsorted(ts, end, side="left")
    empty = hi == lo
    first = np.where(empty, end, ts[np.minimum(lo, len(ts) - 1)] if len(ts) else end)
    last_end = np.where(empty, start, ts[np.maximum(hi - 1, 0)] + step_ns if len(ts) else start)
    # interior pauses: consecutive bars in the same piece
    piece = np.searchsorted(start, ts, side="right") - 1
    inside = (piece >= 0) & (ts < end[np.maximum(piece, 0)])
    same = inside[1:] & inside[:-1] & (piece[1:] == piece[:-1])
    gap_start = ts[:-1] + step_ns
    gap_len = ts[1:] - gap_start
    interior = np.flatnonzero(same & (gap_len > max_silence_ns))
    starts = np.concatenate([start, np.where(empty, start, last_end), gap_start[interior]])
    lengths = np.concatenate([np.where(empty, end - start, first - start), np.where(empty, 0, end - last_end),
                              gap_len[interior]])
    long = lengths > max_silence_ns
    order = np.argsort(starts[long], kind="stable")
    return starts[long][order], lengths[long][order]


def record_order(ticks: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """(rows delivered out of index-time order, rows that repeat the record before them exactly).

    Databento sorts trades by ts_recv (the index time); a late ts_event alone is real market data, and so are
    several trades at one ts_event. A record equal to its predecessor in every identifying field
    (RECORD_KEY) was delivered twice.
    """
    if "ts_recv" not in ticks.column_names or ticks.num_rows < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    recv = column_i64(ticks, "ts_recv")
    back = np.flatnonzero(recv[1:] < recv[:-1]) + 1
    same = recv[1:] == recv[:-1]
    for name in RECORD_KEY[1:]:
        if name in ticks.column_names:
            values = column_i64(ticks, name)
            same &= values[1:] == values[:-1]
    return back, np.flatnonzero(same) + 1


def coverage_examples(missing: np.ndarray, silence_start: np.ndarray, silence_len: np.ndarray,
                      back: np.ndarray, twice: np.ndarray, ticks: pa.Table | None) -> list[dict]:
    """The first violations of the coverage and record-order parts, each with its reason."""
    out: list[dict] = [{"trade_date": str(d), "reason": "trade date the exchange had is missing"}
                       for d in missing[:MAX_EXAMPLES]]
    out += [{"ts_event": _iso(s), "silence_minutes": round(n / MINUTE_NS, 2),
             "reason": "silence inside regular hours longer than the limit"}
            for s, n in zip(silence_start[:MAX_EXAMPLES], silence_len[:MAX_EXAMPLES], strict=True)]
    if ticks is not None:
        ts = column_i64(ticks, "ts_event")
        out += [{"ts_event": _iso(ts[i]), "tick_row": int(i), "reason": "record out of index-time (ts_recv) order"}
                for i in back[:MAX_EXAMPLES]]
        out += [{"ts_event": _iso(ts[i]), "tick_row": int(i), "reason": "record delivered twice"}
                for i in twice[:MAX_EXAMPLES]]
    return out[:MAX_EXAMPLES]
