"""CME Globex trading sessions as arrays: pure, no Dagster.

A session for trade date D (Mon..Fri) runs from 17:00 America/Chicago on the previous calendar day
(Sunday for Monday) to 16:00 on D: the daily 16:00-17:00 halt and the Friday 16:00 -> Sunday 17:00 weekend
fall between sessions. Exchange holidays are not modelled; the gap-threshold split in `split_on_gaps`
catches an unexpected halt.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np

from hdi_core.units import DAY_NS, NS  # noqa: F401  (re-exported: callers import them from here)

CHICAGO = ZoneInfo("America/Chicago")
OPEN_LOCAL = dt.time(17, 0)
CLOSE_LOCAL = dt.time(16, 0)


@dataclass(frozen=True)
class Sessions:
    """Sorted, non-overlapping sessions: open_ns[i] <= t < close_ns[i] is session i of trade_date[i]."""

    open_ns: np.ndarray  # int64
    close_ns: np.ndarray  # int64
    trade_date: np.ndarray  # datetime64[D]

    def __len__(self) -> int:
        return len(self.open_ns)


def _local_ns(day: dt.date, at: dt.time) -> int:
    return int(dt.datetime.combine(day, at, tzinfo=CHICAGO).timestamp()) * NS


def globex_sessions(start_ns: int, end_ns: int) -> Sessions:
    """Every Globex session that overlaps [start_ns, end_ns)."""
    first = dt.datetime.fromtimestamp(start_ns / NS, tz=dt.UTC).date() - dt.timedelta(days=1)
    last = dt.datetime.fromtimestamp(end_ns / NS, tz=dt.UTC).date() + dt.timedelta(days=2)
    opens, closes, dates = [], [], []
    day = first
    while day <= last:
        if day.weekday() < 5:  # trade dates are Monday..Friday
            prev = day - dt.timedelta(days=1)  # Monday opens on Sunday evening
            o, c = _local_ns(prev, OPEN_LOCAL), _local_ns(day, CLOSE_LOCAL)
            if c > start_ns and o < end_ns:
                opens.append(o)
                closes.append(c)
                dates.append(np.datetime64(day, "D"))
        day += dt.timedelta(days=1)
    return Sessions(np.array(opens, dtype=np.int64), np.array(closes, dtype=np.int64),
                    np.array(dates, dtype="datetime64[D]"))


def session_index(ts_ns: np.ndarray, sessions: Sessions) -> np.ndarray:
    """Index of the session holding each timestamp, -1 for a timestamp outside every session."""
    idx = np.searchsorted(sessions.open_ns, ts_ns, side="right") - 1
    inside = idx >= 0
    inside[inside] = ts_ns[inside] < sessions.close_ns[idx[inside]]
    return np.where(inside, idx, -1)


def split_on_gaps(ts_ns: np.ndarray, session_ids: np.ndarray, max_gap_ns: int) -> np.ndarray:
    """New session ids where a pause longer than `max_gap_ns` inside a calendar session starts a new one.

    Ids are renumbered 0, 1, 2... in time order; -1 (a tick outside every session) stays -1.
    """
    ts_ns = np.asarray(ts_ns, dtype=np.int64)
    session_ids = np.asarray(session_ids, dtype=np.int64)
    inside = session_ids >= 0
    out = np.full(len(ts_ns), -1, dtype=np.int64)
    ts_in, sid_in = ts_ns[inside], session_ids[inside]
    if len(ts_in) == 0:
        return out
    breaks = np.empty(len(ts_in), dtype=bool)
    breaks[0] = False
    breaks[1:] = (np.diff(sid_in) != 0) | (np.diff(ts_in) > max_gap_ns)
    out[inside] = np.cumsum(breaks, dtype=np.int64)
    return out


def split_sessions(ts_ns: np.ndarray, sessions: Sessions, max_gap_ns: int) -> Sessions:
    """`sessions` with each calendar session cut wherever its ticks pause longer than `max_gap_ns`.

    `ts_ns` must be sorted. The piece before a pause closes at the second after its last tick; the piece
    after it opens at the second of its first tick (whole seconds, so 1 s bars never straddle a cut).
    Pieces keep their trade date, so daily bars still cover the whole trading day.
    """
    if max_gap_ns < NS:
        raise ValueError(f"max_gap_ns must be at least one second, got {max_gap_ns}")
    ts_ns = np.asarray(ts_ns, dtype=np.int64)
    sid = session_index(ts_ns, sessions)
    inside = sid >= 0
    ts_in, sid_in = ts_ns[inside], sid[inside]
    pause = np.flatnonzero((np.diff(sid_in) == 0) & (np.diff(ts_in) > max_gap_ns))
    if len(pause) == 0:
        return sessions
    cut_close = (ts_in[pause] // NS + 1) * NS
    cut_open = ts_in[pause + 1] // NS * NS
    opens = np.sort(np.concatenate([sessions.open_ns, cut_open]))
    closes = np.sort(np.concatenate([sessions.close_ns, cut_close]))
    parent = np.searchsorted(sessions.open_ns, opens, side="right") - 1
    return Sessions(opens, closes, sessions.trade_date[parent])


def day_anchor_ns(sessions: Sessions) -> np.ndarray:
    """Per session, the open of the first session sharing its trade date (itself unless split)."""
    first_of_day = np.searchsorted(sessions.trade_date, sessions.trade_date, side="left")
    return sessions.open_ns[first_of_day]


def session_spans(ts_sorted: np.ndarray, sessions: Sessions) -> tuple[np.ndarray, np.ndarray]:
    """[lo[i], hi[i]) = the rows of sorted `ts_sorted` inside session i (two binary searches per session)."""
    lo = np.searchsorted(ts_sorted, sessions.open_ns, side="left")
    hi = np.searchsorted(ts_sorted, sessions.close_ns, side="left")
    return lo, hi
