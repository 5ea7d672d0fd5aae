"""Trading segments as arrays, and the columnar lookups the kernels use: pure NumPy, no calendar knowledge.

A segment is one continuous stretch of trading: one row of `Sessions`. A CME trade date has one segment
(17:00 CT the evening before to 16:00 CT) or several (grains: overnight and day segments around a break;
a holiday session whose trading belongs to the next trade date). Rows are sorted and never overlap.
"""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np

from hdi_core.units import DAY_NS, NS  # noqa: F401  (re-exported for the kernels)

CHICAGO = ZoneInfo("America/Chicago")


@dataclass(frozen=True)
class Sessions:
    """Sorted, non-overlapping segments: open_ns[i] <= t < close_ns[i] is segment i of trade_date[i].

    `early_close` (optional, bool per row) marks a segment the exchange closed before its regular time
    (holiday halt or early close); session_alignment uses it to name why a tick is outside.
    """

    open_ns: np.ndarray  # int64
    close_ns: np.ndarray  # int64
    trade_date: np.ndarray  # datetime64[D], non-decreasing
    early_close: np.ndarray | None = None  # bool

    def __len__(self) -> int:
        return len(self.open_ns)

    def overlapping(self, start_ns: int, end_ns: int) -> Sessions:
        """The rows that overlap [start_ns, end_ns)."""
        lo = int(np.searchsorted(self.close_ns, start_ns, side="right"))
        hi = int(np.searchsorted(self.open_ns, end_ns, side="left"))
        early = None if self.early_close is None else self.early_close[lo:hi]
        return Sessions(self.open_ns[lo:hi], self.close_ns[lo:hi], self.trade_date[lo:hi], early)


def session_index(ts_ns: np.ndarray, sessions: Sessions) -> np.ndarray:
    """Index of the segment holding each timestamp, -1 for a timestamp outside every segment."""
    idx = np.searchsorted(sessions.open_ns, ts_ns, side="right") - 1
    inside = idx >= 0
    inside[inside] = ts_ns[inside] < sessions.close_ns[idx[inside]]
    return np.where(inside, idx, -1)


def split_on_gaps(ts_ns: np.ndarray, session_ids: np.ndarray, max_gap_ns: int) -> np.ndarray:
    """New segment ids where a pause longer than `max_gap_ns` inside a calendar segment starts a new one.

    Ids are renumbered 0, 1, 2... in time order; -1 (a tick outside every segment) stays -1.
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
    """`sessions` with each segment cut wherever its ticks pause longer than `max_gap_ns`.

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
    early = None
    if sessions.early_close is not None:  # only the piece ending at the exchange's close keeps the flag
        early = sessions.early_close[parent] & np.isin(closes, sessions.close_ns)
    return Sessions(opens, closes, sessions.trade_date[parent], early)


def day_anchor_ns(sessions: Sessions) -> np.ndarray:
    """Per segment, the open of the first segment sharing its trade date (the daily bar's timestamp)."""
    first_of_day = np.searchsorted(sessions.trade_date, sessions.trade_date, side="left")
    return sessions.open_ns[first_of_day]


def session_spans(ts_sorted: np.ndarray, sessions: Sessions) -> tuple[np.ndarray, np.ndarray]:
    """[lo[i], hi[i]) = the rows of sorted `ts_sorted` inside segment i (two binary searches per segment)."""
    lo = np.searchsorted(ts_sorted, sessions.open_ns, side="left")
    hi = np.searchsorted(ts_sorted, sessions.close_ns, side="left")
    return lo, hi
