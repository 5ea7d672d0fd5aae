"""The five validation checkpoints on bars, and the adjustment checks on ticks: pure functions.

Each check returns a CheckOutcome with a violation count, JSON-friendly details and the first (at most 10)
violating rows, their timestamps as ISO strings. Checks never raise on bad data; they report it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
from numba import njit

from hdi_core.calendar.arrays import Sessions, session_index
from hdi_core.calendar.outside import OUTSIDE_REASONS, outside_reasons
from hdi_core.continuous.bars import column_i64, interval_ns
from hdi_core.continuous.indicators import SMA_RESUM_EVERY, rsi_value, true_range_at
from hdi_core.errors import HdiError
from hdi_core.units import NS, PRICE_SCALE

MAX_EXAMPLES = 10
CHECKPOINTS = ("session_alignment", "ohlc_integrity", "indicator_sanity", "timestamp_continuity",
               "no_nan_or_inf")


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    passed: bool
    violations: int
    details: dict[str, Any] = field(default_factory=dict)
    first_violations: list[dict[str, Any]] = field(default_factory=list)


def _iso(ts_ns: int) -> str:
    return str(np.datetime64(int(ts_ns), "ns")) + "Z"


def _plain(value: Any) -> Any:
    """NumPy scalars and arrays -> JSON-friendly Python values (NaN/inf become strings)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def _rows(table: pa.Table, mask_or_index: np.ndarray, reason: list[str] | None = None) -> list[dict]:
    """The first violating rows of `table` as dicts, ts_event as ISO string, with an optional reason."""
    index = np.flatnonzero(mask_or_index) if mask_or_index.dtype == bool else mask_or_index
    index = index[:MAX_EXAMPLES]
    out = []
    for k, i in enumerate(index):
        row = {"row": int(i)}
        for name in table.column_names:
            v = table.column(name)[int(i)].as_py()
            row[name] = _iso(v) if name == "ts_event" and isinstance(v, int) else _plain(v)
        if reason is not None:
            row["reason"] = reason[k]
        out.append(row)
    return out


def _outcome(name: str, bad: np.ndarray, table: pa.Table, details: dict, reason: Any = None) -> CheckOutcome:
    count = int(np.count_nonzero(bad))
    return CheckOutcome(name, count == 0, count, _plain(details), _rows(table, bad, reason) if count else [])


def _kernel_outcome(name: str, count: int, rows: np.ndarray, reason_codes: np.ndarray | None,
                    reason_texts: Sequence[str], table: pa.Table, details: dict) -> CheckOutcome:
    """An outcome from a kernel's violation count and its first MAX_EXAMPLES rows and reason codes."""
    shown = rows[:min(count, MAX_EXAMPLES)]
    reason = None if reason_codes is None else [reason_texts[int(c)] for c in reason_codes[:len(shown)]]
    examples = _rows(table, shown, reason) if count else []
    return CheckOutcome(name, count == 0, count, _plain(details), examples)


@njit(cache=True, nogil=True, inline="always")
def _session_at(t: int, hint: int, open_ns: np.ndarray, close_ns: np.ndarray) -> int:  # pragma: no cover
    """Index of the session holding t, or -1; checks `hint` and its successor before a binary search."""
    n = len(open_ns)
    if 0 <= hint < n and open_ns[hint] <= t < close_ns[hint]:
        return hint
    if 0 <= hint + 1 < n and open_ns[hint + 1] <= t < close_ns[hint + 1]:
        return hint + 1
    lo, hi = 0, n  # first session opening after t
    while lo < hi:
        mid = (lo + hi) // 2
        if open_ns[mid] <= t:
            lo = mid + 1
        else:
            hi = mid
    j = lo - 1
    if j >= 0 and t < close_ns[j]:
        return j
    return -1


@njit(cache=True, nogil=True, inline="always")
def _note(bad: int, i: int, code: int, rows: np.ndarray, codes: np.ndarray) -> int:  # pragma: no cover
    """Record row i (with its reason code) among the first examples; return the new violation count."""
    if bad < len(rows):
        rows[bad] = i
        codes[bad] = code
    return bad + 1


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


def _examples() -> tuple[np.ndarray, np.ndarray]:
    return np.zeros(MAX_EXAMPLES, dtype=np.int64), np.zeros(MAX_EXAMPLES, dtype=np.int64)


def _bounds(sessions: Sessions) -> tuple[np.ndarray, np.ndarray]:
    return (np.ascontiguousarray(sessions.open_ns, dtype=np.int64),
            np.ascontiguousarray(sessions.close_ns, dtype=np.int64))


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


@njit(cache=True, nogil=True)
def _ohlc_kernel(o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray, vol: np.ndarray,
                 count: np.ndarray, counts: np.ndarray, rows: np.ndarray,
                 codes: np.ndarray) -> int:  # pragma: no cover - compiled
    """counts = [high violations, low violations, volume violations, filler bars]; returns bad bars."""
    bad = n_high = n_low = n_volume = n_filler = 0  # locals, not counts[]: they stay in registers
    for i in range(len(o)):
        high_bad = h[i] < o[i] or h[i] < c[i] or h[i] < lo[i]
        low_bad = lo[i] > o[i] or lo[i] > c[i]
        filler = count[i] == 0 and vol[i] == 0 and o[i] == h[i] and h[i] == lo[i] and lo[i] == c[i]
        volume_bad = not ((vol[i] > 0 and count[i] > 0) or filler)
        n_high += high_bad
        n_low += low_bad
        n_volume += volume_bad
        n_filler += filler
        if high_bad or low_bad or volume_bad:
            bad = _note(bad, i, 0 if high_bad else (1 if low_bad else 2), rows, codes)
    counts[0], counts[1], counts[2], counts[3] = n_high, n_low, n_volume, n_filler
    return bad


def ohlc_integrity(bars: pa.Table) -> CheckOutcome:
    """high >= open, close, low; low <= open, close; volume > 0 except flat filler bars (trade_count 0)."""
    o, h, lo, c = (column_i64(bars, k) for k in ("open", "high", "low", "close"))
    vol = column_i64(bars, "volume")
    has_count = "trade_count" in bars.column_names
    count = column_i64(bars, "trade_count") if has_count else np.ones(len(o), np.int64)
    counts = np.zeros(4, dtype=np.int64)
    rows, codes = _examples()
    bad = _ohlc_kernel(o, h, lo, c, vol, count, counts, rows, codes)
    details = {"bars": len(o), "high_violations": int(counts[0]), "low_violations": int(counts[1]),
               "volume_violations": int(counts[2]), "filler_bars": int(counts[3])}
    return _kernel_outcome("ohlc_integrity", bad, rows, codes,
                           ("high below open/close/low", "low above open/close",
                            "no volume on a bar that is not a filler"), bars, details)


_SANITY_COUNTS = ("sma_not_finite", "ema_not_finite", "rsi_not_finite", "atr_not_finite", "rsi_out_of_range",
                  "atr_negative", "sma_out_of_range")


@njit(cache=True, nogil=True)
def _sanity_kernel(close: np.ndarray, high: np.ndarray, low: np.ndarray, period: int, scale: float,
                   counts: np.ndarray, extremes: np.ndarray, rows: np.ndarray,
                   codes: np.ndarray) -> int:  # pragma: no cover - compiled
    """SMA, EMA, RSI and ATR of the whole series in one pass, each checked as it is computed.

    counts follow _SANITY_COUNTS; extremes = [rsi min, rsi max, atr max] over values that are not NaN.
    The recurrences are those of indicators.py (which tests check against plain loops).
    """
    n = len(close)
    if n == 0:
        return 0
    low_bound = low.min() / scale
    high_bound = high.max() / scale
    slack = 1e-9 * max(abs(low_bound), abs(high_bound), 1.0)  # float rounding of the moving sum
    ema_alpha = 2.0 / (period + 1)
    wilder_alpha = 1.0 / period
    base = close[0] / scale
    sma_sum = 0.0
    ema = 0.0
    gain = 0.0
    loss = 0.0
    atr = 0.0
    bad = 0
    prev = close[0] / scale
    for i in range(n):
        c = close[i] / scale
        # SMA: a centred moving sum, recomputed from scratch every SMA_RESUM_EVERY bars
        if i >= period and (i - period) % SMA_RESUM_EVERY == 0:
            sma_sum = 0.0
            for m in range(i - period + 1, i + 1):
                sma_sum += close[m] / scale - base
        else:
            sma_sum += c - base
            if i >= period:
                sma_sum -= close[i - period] / scale - base
        # EMA and ATR are seeded with the mean of their first `period` inputs
        tr = true_range_at(high[i] / scale, low[i] / scale, prev)
        if i < period:
            ema += c
            atr += tr
            if i == period - 1:
                ema /= period
                atr /= period
        else:
            ema = ema_alpha * c + (1.0 - ema_alpha) * ema
            atr = wilder_alpha * tr + (1.0 - wilder_alpha) * atr
        # RSI smooths gains and losses from the second bar on, seeded at bar `period`
        d = c - prev
        if 1 <= i <= period:
            gain += max(d, 0.0)
            loss += max(-d, 0.0)
            if i == period:
                gain /= period
                loss /= period
        elif i > period:
            gain = wilder_alpha * max(d, 0.0) + (1.0 - wilder_alpha) * gain
            loss = wilder_alpha * max(-d, 0.0) + (1.0 - wilder_alpha) * loss
        prev = c
        if i < period - 1:
            continue  # every indicator still in its warm-up
        sma = sma_sum / period + base
        row_bad = False
        for k, v in ((0, sma), (1, ema), (3, atr)):
            if not np.isfinite(v):
                counts[k] += 1
                row_bad = True
        if not (low_bound - slack <= sma <= high_bound + slack) and not np.isnan(sma):
            counts[6] += 1
            row_bad = True
        if atr < 0:
            counts[5] += 1
            row_bad = True
        if not np.isnan(atr):
            extremes[2] = max(extremes[2], atr)
        if i >= period:
            rsi = rsi_value(gain, loss)
            if not np.isfinite(rsi):
                counts[2] += 1
                row_bad = True
            if rsi < 0 or rsi > 100:
                counts[4] += 1
                row_bad = True
            if not np.isnan(rsi):
                extremes[0] = min(extremes[0], rsi)
                extremes[1] = max(extremes[1], rsi)
        if row_bad:
            bad = _note(bad, i, 0, rows, codes)
    return bad


def indicator_sanity(bars: pa.Table, period: int = 14) -> CheckOutcome:
    """SMA/EMA/RSI/ATR of the (whole-series) closes are finite after warm-up, RSI in [0, 100], ATR >= 0,
    SMA within [min low, max high] of the series.

    One compiled pass computes and checks all four per bar, keeping no indicator arrays.
    """
    if period < 1:
        raise HdiError(f"indicator period must be at least 1, got {period}")
    close, high, low = (column_i64(bars, k) for k in ("close", "high", "low"))
    counts = np.zeros(len(_SANITY_COUNTS), dtype=np.int64)
    extremes = np.array([np.inf, -np.inf, -np.inf])
    rows, codes = _examples()
    bad = _sanity_kernel(close, high, low, period, float(PRICE_SCALE), counts, extremes, rows, codes)
    details = {"bars": len(close), "period": period, "scope": "whole series",
               **{name: int(v) for name, v in zip(_SANITY_COUNTS, counts, strict=True)},
               **{k: float(v) for k, v in zip(("rsi_min", "rsi_max", "atr_max"), extremes, strict=True)
                  if np.isfinite(v)}}
    return _kernel_outcome("indicator_sanity", bad, rows, None, (), bars, details)


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
            misaligned = True
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


def timestamp_continuity(bars: pa.Table, sessions: Sessions, interval: str | int = NS,
                         dense: bool = False) -> CheckOutcome:
    """Strictly increasing, unique, aligned to the interval from the session open; dense: no missing
    interval between a session's first and last bar (gaps only at session breaks)."""
    ts = column_i64(bars, "ts_event")
    step = interval_ns(interval)
    counts = np.zeros(4, dtype=np.int64)
    rows, codes = _examples()
    bad = _continuity_kernel(ts, *_bounds(sessions), step or 0, step is None, dense, counts, rows, codes)
    details = {"bars": len(ts), "interval_ns": step, "dense": dense, "duplicates": int(counts[0]),
               "decreases": int(counts[1]), "misaligned": int(counts[2]),
               "gaps_inside_session": int(counts[3])}
    return _kernel_outcome("timestamp_continuity", bad, rows, codes,
                           ("duplicate timestamp", "goes back in time",
                            "not aligned to the interval from the session open",
                            "missing interval inside a session (dense)"), bars, details)


@njit(cache=True, nogil=True)
def _any_not_finite(values: np.ndarray) -> bool:  # pragma: no cover - compiled
    for v in values:
        if not np.isfinite(v):
            return True
    return False


def no_nan_or_inf(table: pa.Table) -> CheckOutcome:
    """No null in any column, no NaN or inf in any float column."""
    clean = all(table.column(name).null_count == 0 for name in table.column_names) and not any(
        _any_not_finite(chunk.to_numpy()) for name in table.column_names
        if pa.types.is_floating(table.column(name).type) for chunk in table.column(name).chunks)
    if clean:  # the usual case in one read of the float columns; masks only to report a failure
        return CheckOutcome("no_nan_or_inf", True, 0, {"rows": table.num_rows, "bad_values_per_column": {}})
    bad = np.zeros(table.num_rows, dtype=bool)
    per_column: dict[str, int] = {}
    for name in table.column_names:  # one vectorized pass per column
        col = table.column(name)
        col_bad = np.zeros(table.num_rows, dtype=bool)
        if col.null_count:
            col_bad |= col.is_null().to_numpy(zero_copy_only=False)
        if pa.types.is_floating(col.type):
            values = col.to_numpy(zero_copy_only=False) if col.null_count else col.to_numpy()
            col_bad |= ~np.isfinite(values) & ~col_bad
        if col_bad.any():
            per_column[name] = int(col_bad.sum())
            bad |= col_bad
    details = {"rows": table.num_rows, "bad_values_per_column": per_column}
    return _outcome("no_nan_or_inf", bad, table, details)


def run_checkpoints(bars: pa.Table, sessions: Sessions, interval_ns: str | int = NS, dense: bool = False,
                    period: int = 14) -> list[CheckOutcome]:
    """The five checkpoints, in order."""
    return [session_alignment(bars, sessions, interval_ns), ohlc_integrity(bars),
            indicator_sanity(bars, period), timestamp_continuity(bars, sessions, interval_ns, dense),
            no_nan_or_inf(bars)]


def _tick_prices(adjusted_ticks: pa.Table, raw_ticks: pa.Table | None) -> tuple[np.ndarray, ...]:
    ts = column_i64(adjusted_ticks, "ts_event")
    if raw_ticks is None:  # one table: `price` raw, `adjusted_price` adjusted (adjust.adjust_ticks output)
        return ts, column_i64(adjusted_ticks, "adjusted_price"), column_i64(adjusted_ticks, "price"), \
            column_i64(adjusted_ticks, "instrument_id")
    adjusted_col = "adjusted_price" if "adjusted_price" in adjusted_ticks.column_names else "price"
    return ts, column_i64(adjusted_ticks, adjusted_col), column_i64(raw_ticks, "price"), \
        column_i64(raw_ticks, "instrument_id")


def roll_continuity(adjusted_ticks: pa.Table, raw_ticks: pa.Table | None, roll_events: pa.Table,
                    tolerance: int = 0) -> CheckOutcome:
    """At each switch inside the ticks, |adjusted jump| <= the contracts' own moves + tolerance (fixed units).

    The jump between the last adjusted tick before the switch and the first after must be explained by the
    market: the new contract's move from its reference price (gap measurement) to its first tick, plus the
    old contract's move from its reference price to its last tick. A wrong-sign or missing adjustment adds
    the gap to the jump and fails. `raw_ticks` (same rows as `adjusted_ticks`) may be None when
    `adjusted_ticks` holds both `price` (raw) and `adjusted_price`.
    """
    ts, adjusted, raw, iid = _tick_prices(adjusted_ticks, raw_ticks)
    switches = column_i64(roll_events, "switch_ns")
    old_ref, new_ref = column_i64(roll_events, "old_price"), column_i64(roll_events, "new_price")
    old_id = column_i64(roll_events, "old_instrument_id")
    new_id = column_i64(roll_events, "new_instrument_id")
    pos = np.searchsorted(ts, switches, side="left")
    inside = (pos > 0) & (pos < len(ts))
    p = pos[inside]
    jump = adjusted[p] - adjusted[p - 1]
    new_move = raw[p] - new_ref[inside]
    old_move = raw[p - 1] - old_ref[inside]
    allowed = np.abs(new_move) + np.abs(old_move) + int(tolerance)
    too_big = np.abs(jump) > allowed
    wrong_contract = (iid[p - 1] != old_id[inside]) | (iid[p] != new_id[inside])
    bad = too_big | wrong_contract
    examples = [
        {"switch": _iso(switches[inside][k]), "last_before": _iso(ts[p[k] - 1]),
         "first_after": _iso(ts[p[k]]),
         "adjusted_jump": int(jump[k]), "allowed": int(allowed[k]), "new_contract_move": int(new_move[k]),
         "old_contract_move": int(old_move[k]), "instrument_before": int(iid[p[k] - 1]),
         "instrument_after": int(iid[p[k]]),
         "reason": "jump larger than the market's move" if too_big[k] else "instrument differs from the roll"}
        for k in np.flatnonzero(bad)[:MAX_EXAMPLES]]
    count = int(bad.sum())
    details = {"rolls": len(switches), "rolls_inside_ticks": int(inside.sum()), "tolerance": int(tolerance),
               "max_abs_jump": int(np.abs(jump).max()) if len(jump) else 0}
    return CheckOutcome("roll_continuity", count == 0, count, _plain(details), examples)


@njit(cache=True, nogil=True)
def _within_contract_kernel(raw: np.ndarray, adj: np.ndarray, iid: np.ndarray, rows: np.ndarray,
                            codes: np.ndarray) -> tuple[int, int]:  # pragma: no cover - compiled
    """(ticks whose adjusted change differs from the raw one inside a segment, number of segments)."""
    bad = 0
    segments = 1 if len(raw) else 0
    for i in range(1, len(raw)):
        if iid[i] != iid[i - 1]:
            segments += 1
        elif adj[i] - raw[i] != adj[i - 1] - raw[i - 1]:  # the shift is constant inside a segment
            bad = _note(bad, i, 0, rows, codes)
    return bad, segments


def within_contract_changes(raw_price: np.ndarray, adjusted_price: np.ndarray, instrument_id: np.ndarray,
                            ts_ns: np.ndarray | None = None) -> CheckOutcome:
    """Inside each contract segment every tick-to-tick change of the adjusted series equals the raw one's."""
    raw = np.asarray(raw_price, dtype=np.int64)
    adj = np.asarray(adjusted_price, dtype=np.int64)
    iid = np.asarray(instrument_id, dtype=np.int64)
    rows, codes = _examples()
    count, segments = _within_contract_kernel(raw, adj, iid, rows, codes)
    examples = [{"row": int(i), "ts_event": _iso(ts_ns[i]) if ts_ns is not None else None,
                 "instrument_id": int(iid[i]), "raw_change": int(raw[i] - raw[i - 1]),
                 "adjusted_change": int(adj[i] - adj[i - 1])} for i in rows[:min(count, MAX_EXAMPLES)]]
    details = {"ticks": len(raw), "segments": segments}
    return CheckOutcome("within_contract_changes", count == 0, count, details, examples)


def validation_report(outcomes: Iterable[CheckOutcome]) -> dict[str, Any]:
    """JSON-serialisable summary: overall pass and one entry per checkpoint."""
    items: Sequence[CheckOutcome] = list(outcomes)
    return {"passed": all(o.passed for o in items),
            "checkpoints": [{"checkpoint": o.name, "passed": bool(o.passed), "violations": int(o.violations),
                             "details": _plain(o.details), "first_violations": _plain(o.first_violations)}
                            for o in items]}
