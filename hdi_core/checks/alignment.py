"""Session-aware resampling: every bar inside one segment of the product's calendar."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from numba import njit

from hdi_core.calendar.arrays import Sessions, session_index
from hdi_core.calendar.outside import OUTSIDE_REASONS, outside_reasons
from hdi_core.checks.common import MAX_EXAMPLES, CheckOutcome, _bounds, _examples, _kernel_outcome, _note, _session_at
from hdi_core.continuous.bars import column_i64, interval_ns


@njit(cache=True, nogil=True)
def _alignment_kernel(ts: np.ndarray, labels: np.ndarray, has_labels: bool, open_ns: np.ndarray,
                      close_ns: np.ndarray, step: int, daily: bool, counts: np.ndarray, rows: np.ndarray,
                      codes: np.ndarray) -> int:  # pragma: no cover - compiled
    """counts = [outside, spanning close, wrong session_id, sessions with bars]; returns bad bars."""
    seen = np.zeros(len(open_ns), dtype=np.bool_)
    hint = 0
    bad = outside = crossing = wrong_label = 0  # locals, not counts[]: they stay in registers
    for i in range(len(ts)):
        t = ts[i]
        s = _session_at(t, hint, open_ns, close_ns)
        if s < 0:
            outside += 1
            bad = _note(bad, i, 0, rows, codes)
            continue
        hint = s
        seen[s] = True
        crosses = (t != open_ns[s]) if daily else (t + step > close_ns[s])
        wrong = has_labels and labels[i] != s
        crossing += crosses
        wrong_label += wrong
        if crosses or wrong:
            bad = _note(bad, i, 1 if crosses else 2, rows, codes)
    counts[0], counts[1], counts[2] = outside, crossing, wrong_label
    counts[3] = np.count_nonzero(seen)
    return bad



def session_alignment(bars: pa.Table, sessions: Sessions, interval: str | int = "1s") -> CheckOutcome:
    """Every bar starts and ends (start + interval) inside one segment; a daily bar starts at its open.

    A bar outside every segment is reported with why: on a closed day, inside a halt, after an early close.
    """
    ts = column_i64(bars, "ts_event")
    step = interval_ns(interval)
    has_labels = "session_id" in bars.column_names and len(sessions) > 0
    labels = column_i64(bars, "session_id") if has_labels else ts
    counts = np.zeros(4, dtype=np.int64)
    rows, codes = _examples()
    bad = _alignment_kernel(ts, labels, has_labels, *_bounds(sessions), step or 0, step is None, counts, rows,
                            codes)
    details = {"bars": len(ts), "outside_session": int(counts[0]), "spanning_close": int(counts[1]),
               "wrong_session_id": int(counts[2]), "sessions_with_bars": int(counts[3])}
    if counts[0]:  # only on failure: classify the outside bars (closed day / halt / early close)
        outside = np.flatnonzero(session_index(ts, sessions) < 0)
        why = outside_reasons(ts[outside], sessions)
        for code, text in enumerate(OUTSIDE_REASONS):
            details[f"outside_{text.replace(' ', '_')}"] = int(np.count_nonzero(why == code))
        shown = min(bad, MAX_EXAMPLES)
        is_out = codes[:shown] == 0
        codes[:shown][is_out] = 3 + why[np.searchsorted(outside, rows[:shown][is_out])]
    return _kernel_outcome("session_alignment", bad, rows, codes,
                           ("starts outside every session", "ends after its session closes",
                            "session_id disagrees with ts_event",
                            *(f"outside every session: {text}" for text in OUTSIDE_REASONS)), bars, details)


