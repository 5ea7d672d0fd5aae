"""Timestamp continuity: order, alignment, and coverage against the exchange calendar."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from numba import njit

from hdi_core.calendar.arrays import Sessions
from hdi_core.checks.common import (
    MAX_EXAMPLES,
    CheckOutcome,
    _bounds,
    _examples,
    _kernel_outcome,
    _note,
    _plain,
    _session_at,
)
from hdi_core.checks.coverage import (
    MINUTE_NS,
    coverage_examples,
    missing_trade_dates,
    record_order,
    regular_hours,
    silences,
)
from hdi_core.continuous.bars import column_i64, interval_ns
from hdi_core.units import NS


@njit(cache=True, nogil=True)
def _continuity_kernel(ts: np.ndarray, open_ns: np.ndarray, close_ns: np.ndarray, step: int, daily: bool,
                       dense: bool, counts: np.ndarray, rows: np.ndarray,
                       codes: np.ndarray) -> int:  # pragma: no cover - compiled
    """counts = [duplicates, decreases, misaligned, gaps inside a session]; returns bad bars."""
    hint = 0
    prev_s = -2
    bad = n_duplicate = n_decrease = n_misaligned = n_gap = 0  # locals: they stay in registers
    inv_step = 1.0 / step if step > 0 else 0.0
    for i in range(len(ts)):
        t = ts[i]
        s = _session_at(t, hint, open_ns, close_ns)
        if s >= 0:
            hint = s
        d = t - ts[i - 1] if i > 0 else 1
        duplicate = i > 0 and d == 0
        decrease = i > 0 and d < 0
        if s < 0:
            misaligned = False  # outside every session: session_alignment reports it, with why
        elif daily:
            misaligned = t != open_ns[s]
        else:
            offset = t - open_ns[s]  # >= 0 inside the session
            q = np.int64(offset * inv_step)  # float estimate of offset // step, corrected below: no division
            r = offset - q * step
            while r < 0:
                r += step
            while r >= step:
                r -= step
            misaligned = r != 0
        gap = dense and not daily and i > 0 and s == prev_s and d > step
        prev_s = s
        n_duplicate += duplicate
        n_decrease += decrease
        n_misaligned += misaligned
        n_gap += gap
        if duplicate or decrease or misaligned or gap:
            code = 0 if duplicate else (1 if decrease else (2 if misaligned else 3))
            bad = _note(bad, i, code, rows, codes)
    counts[0], counts[1], counts[2], counts[3] = n_duplicate, n_decrease, n_misaligned, n_gap
    return bad


def timestamp_continuity(bars: pa.Table, sessions: Sessions, interval: str | int = NS, dense: bool = False, *,
                         expected_dates: np.ndarray | None = None, regular_minutes: tuple[int, int] | None = None,
                         max_silence_minutes: float = 30, max_filled_fraction: float = 1.0,
                         ticks: pa.Table | None = None, calendar: Sessions | None = None) -> CheckOutcome:
    """Strictly increasing, unique, aligned to the interval from the session open; dense: no missing
    interval between a session's first and last bar (gaps only at session breaks), and filled seconds at most
    max_filled_fraction of the bars. Against the calendar (`calendar`, else `sessions`): every expected trade
    date has bars; inside regular hours (`regular_minutes`, America/Chicago; None: not checked, an illiquid
    product) no silence longer than max_silence_minutes. Given the ticks: none out of index-time (ts_recv)
    order, none delivered twice."""
    ts = column_i64(bars, "ts_event")
    step = interval_ns(interval)
    counts = np.zeros(4, dtype=np.int64)
    rows, codes = _examples()
    bad = _continuity_kernel(ts, *_bounds(sessions), step or 0, step is None, dense, counts, rows, codes)
    details = {"bars": len(ts), "interval_ns": step, "dense": dense, "duplicates": int(counts[0]),
               "decreases": int(counts[1]), "misaligned": int(counts[2]),
               "gaps_inside_session": int(counts[3])}
    outcome = _kernel_outcome("timestamp_continuity", bad, rows, codes,
                              ("duplicate timestamp", "goes back in time",
                               "not aligned to the interval from the session open",
                               "missing interval inside a session (dense)"), bars, details)
    calendar = calendar if calendar is not None else sessions
    trades = column_i64(bars, "trade_count") > 0 if "trade_count" in bars.column_names else np.ones(len(ts), bool)
    filled = int(len(ts) - np.count_nonzero(trades))
    too_filled = bool(dense and len(ts) and filled > max_filled_fraction * len(ts))
    trade_ts = ts if trades.all() else ts[trades]  # dense fillers are not trading
    missing = (missing_trade_dates(trade_ts, calendar, expected_dates) if expected_dates is not None
               else np.zeros(0, "datetime64[D]"))
    silence_start = silence_len = np.zeros(0, np.int64)
    if regular_minutes is not None and step is not None:
        present = np.isin(calendar.trade_date, np.setdiff1d(calendar.trade_date, missing))
        present_sessions = Sessions(calendar.open_ns[present], calendar.close_ns[present],
                                    calendar.trade_date[present])
        start, end = regular_hours(present_sessions, *regular_minutes)
        silence_start, silence_len = silences(trade_ts, step, start, end, int(max_silence_minutes * MINUTE_NS))
    back, twice = record_order(ticks) if ticks is not None else (np.zeros(0, np.int64), np.zeros(0, np.int64))
    total = outcome.violations + len(missing) + len(silence_start) + len(back) + len(twice) + too_filled
    examples = outcome.first_violations + coverage_examples(missing, silence_start, silence_len, back, twice, ticks)
    if too_filled:
        examples.append({"filled_bars": filled, "bars": len(ts), "reason": "too many filled (invented) bars"})
    details = {**outcome.details, "filled_bars": filled, "expected_trade_dates": len(expected_dates)
               if expected_dates is not None else None, "missing_trade_dates": len(missing),
               "long_silences": len(silence_start), "longest_silence_minutes": round(
                   float(silence_len.max()) / MINUTE_NS, 2) if len(silence_len) else 0.0,
               "records_out_of_order": len(back), "records_delivered_twice": len(twice)}
    thresholds = {"max_silence_minutes": max_silence_minutes, "regular_minutes": regular_minutes,
                  "max_filled_fraction": max_filled_fraction}
    return CheckOutcome("timestamp_continuity", total == 0, total, _plain(details), examples[:MAX_EXAMPLES],
                        _plain(thresholds))
