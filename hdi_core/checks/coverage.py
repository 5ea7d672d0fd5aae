"""Coverage against the exchange calendar, and the order of the raw records: parts of timestamp_continuity.

All columnar: the trade dates present come from one session lookup, silences from one diff of the bar times
inside regular hours, record order and duplicates from comparing each record with the one before it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
from numba import njit

from hdi_core.calendar.arrays import CHICAGO, Sessions
from hdi_core.checks.common import MAX_EXAMPLES, _iso
from hdi_core.continuous.bars import column_i64

MINUTE_NS = 60 * 1_000_000_000
# Columns that together identify one delivered record of the trades schema (several trades may share ts_event).
RECORD_KEY = ("ts_recv", "sequence", "instrument_id", "ts_event", "price", "size")


def missing_trade_dates(ts: np.ndarray, sessions: Sessions, expected: np.ndarray) -> np.ndarray:
    """The expected trade dates (datetime64[D]) without a single bar (`ts` sorted: two searches per segment)."""
    ts = np.asarray(ts, dtype=np.int64)
    seen = np.searchsorted(ts, sessions.close_ns, side="left") > np.searchsorted(ts, sessions.open_ns, side="left")
    present = np.unique(sessions.trade_date[seen])
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


@njit(cache=True, nogil=True)
def _silence_kernel(ts: np.ndarray, step: int, start: np.ndarray, end: np.ndarray, max_silence: int,
                    out_start: np.ndarray, out_len: np.ndarray) -> int:  # pragma: no cover - compiled
    """Pauses longer than max_silence inside the sorted, disjoint [start, end) pieces; fills the outputs while
    they have room and returns how many there are."""
    count = 0
    j = 0
    n = len(ts)
    for p in range(len(start)):
        while j < n and ts[j] < start[p]:
            j += 1
        covered = start[p]  # trading known up to here: the piece's start, then each bar's end
        while j < n and ts[j] < end[p]:
            if ts[j] - covered > max_silence:
                if count < len(out_start):
                    out_start[count], out_len[count] = covered, ts[j] - covered
                count += 1
            covered = max(covered, ts[j] + step)
            j += 1
        if end[p] - covered > max_silence:
            if count < len(out_start):
                out_start[count], out_len[count] = covered, end[p] - covered
            count += 1
    return count


def silences(ts: np.ndarray, step_ns: int, start: np.ndarray, end: np.ndarray,
             max_silence_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """(start, length) in ns of every pause longer than max_silence_ns inside the [start, end) pieces.

    `ts` are the sorted times of bars holding trades (a bar covers [t, t + step_ns)). A piece without any
    bar is one silence from its start to its end; the edges of a piece count (open to first trade, last
    trade to close).
    """
    ts = np.ascontiguousarray(ts, dtype=np.int64)
    args = (ts, int(step_ns), np.asarray(start, np.int64), np.asarray(end, np.int64), int(max_silence_ns))
    room = np.zeros(len(start) + 16, np.int64), np.zeros(len(start) + 16, np.int64)
    count = _silence_kernel(*args, *room)
    if count > len(room[0]):  # more pauses than pieces: size the outputs exactly and run again
        room = np.zeros(count, np.int64), np.zeros(count, np.int64)
        _silence_kernel(*args, *room)
    return room[0][:count], room[1][:count]


@njit(cache=True, nogil=True)
def _order_kernel(recv: np.ndarray, seq: np.ndarray, iid: np.ndarray, ts: np.ndarray, price: np.ndarray,
                  size: np.ndarray, back: np.ndarray, twice: np.ndarray) -> tuple[int, int]:  # pragma: no cover
    """Marks records received before their predecessor, and records equal to it in every RECORD_KEY field."""
    n_back = n_twice = 0
    for i in range(1, len(recv)):
        if recv[i] < recv[i - 1]:
            back[i] = True
            n_back += 1
        elif recv[i] == recv[i - 1] and seq[i] == seq[i - 1] and iid[i] == iid[i - 1] and ts[i] == ts[i - 1] \
                and price[i] == price[i - 1] and size[i] == size[i - 1]:
            twice[i] = True
            n_twice += 1
    return n_back, n_twice


def record_order(ticks: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """(rows delivered out of index-time order, rows that repeat the record before them exactly).

    Databento sorts trades by ts_recv (the index time); a late ts_event alone is real market data, and so are
    several trades at one ts_event. A record equal to its predecessor in every identifying field
    (RECORD_KEY) was delivered twice.
    """
    if "ts_recv" not in ticks.column_names or ticks.num_rows < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    n = ticks.num_rows
    cols = [column_i64(ticks, k) if k in ticks.column_names else np.zeros(n, np.int64) for k in RECORD_KEY]
    back, twice = np.zeros(n, np.bool_), np.zeros(n, np.bool_)
    n_back, n_twice = _order_kernel(*cols, back, twice)
    return (np.flatnonzero(back) if n_back else np.zeros(0, np.int64),
            np.flatnonzero(twice) if n_twice else np.zeros(0, np.int64))


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
