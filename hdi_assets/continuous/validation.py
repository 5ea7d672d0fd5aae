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

from hdi_assets.continuous import indicators
from hdi_assets.continuous.bars import PRICE_SCALE, column_i64, interval_ns
from hdi_assets.continuous.sessions import NS, Sessions, session_spans

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


def _first_reasons(bad: np.ndarray, kinds: list[tuple[np.ndarray, str]]) -> list[str]:
    """The reason of each of the first violating rows (only those: a string per bar would cost a lot)."""
    rows = np.flatnonzero(bad)[:MAX_EXAMPLES]
    return [next(text for mask, text in kinds if mask[i]) for i in rows]


def _outcome(name: str, bad: np.ndarray, table: pa.Table, details: dict, reason: Any = None) -> CheckOutcome:
    count = int(np.count_nonzero(bad))
    return CheckOutcome(name, count == 0, count, _plain(details), _rows(table, bad, reason) if count else [])


def _session_of(ts: np.ndarray, sessions: Sessions) -> np.ndarray:
    """Session index per bar, -1 outside; sorted bars take two binary searches per session."""
    if len(ts) < 2 or not bool(np.any(ts[1:] < ts[:-1])):
        lo, hi = session_spans(ts, sessions)
        sid = np.full(len(ts), -1, dtype=np.int64)
        for s in np.flatnonzero(hi > lo):  # one slice per session
            sid[lo[s]:hi[s]] = s
        return sid
    idx = np.searchsorted(sessions.open_ns, ts, side="right") - 1
    inside = idx >= 0
    inside[inside] = ts[inside] < sessions.close_ns[idx[inside]]
    return np.where(inside, idx, -1)


def session_alignment(bars: pa.Table, sessions: Sessions, interval: str | int = "1s") -> CheckOutcome:
    """Every bar starts and ends (start + interval) inside one session; a daily bar starts at its open."""
    ts = column_i64(bars, "ts_event")
    step = interval_ns(interval)
    sid = _session_of(ts, sessions)
    safe = np.maximum(sid, 0)
    outside = sid < 0
    if step is None:
        crosses = ~outside & (ts != sessions.open_ns[safe])
    else:
        crosses = ~outside & (ts + step > sessions.close_ns[safe])
    mislabelled = np.zeros(len(ts), dtype=bool)
    if "session_id" in bars.column_names and len(sessions):
        labels = column_i64(bars, "session_id")
        mislabelled = ~outside & (labels != sid)
    bad = outside | crosses | mislabelled
    reason = _first_reasons(bad, [(outside, "starts outside every session"),
                                  (crosses, "ends after its session closes"),
                                  (mislabelled, "session_id disagrees with ts_event")])
    details = {"bars": len(ts), "outside_session": int(outside.sum()), "spanning_close": int(crosses.sum()),
               "wrong_session_id": int(mislabelled.sum()),
               "sessions_with_bars": int(np.count_nonzero(np.bincount(sid[~outside], minlength=1)))}
    return _outcome("session_alignment", bad, bars, details, reason)


def ohlc_integrity(bars: pa.Table) -> CheckOutcome:
    """high >= open, close, low; low <= open, close; volume > 0 except flat filler bars (trade_count 0)."""
    o, h, lo, c = (column_i64(bars, k) for k in ("open", "high", "low", "close"))
    vol = column_i64(bars, "volume")
    has_count = "trade_count" in bars.column_names
    count = column_i64(bars, "trade_count") if has_count else np.ones(len(o), np.int64)
    high_bad = (h < o) | (h < c) | (h < lo)
    low_bad = (lo > o) | (lo > c)
    filler = (count == 0) & (vol == 0) & (o == h) & (h == lo) & (lo == c)
    volume_bad = ~(((vol > 0) & (count > 0)) | filler)
    bad = high_bad | low_bad | volume_bad
    reason = _first_reasons(bad, [(high_bad, "high below open/close/low"), (low_bad, "low above open/close"),
                                  (volume_bad, "no volume on a bar that is not a filler")])
    details = {"bars": len(o), "high_violations": int(high_bad.sum()), "low_violations": int(low_bad.sum()),
               "volume_violations": int(volume_bad.sum()), "filler_bars": int(filler.sum())}
    return _outcome("ohlc_integrity", bad, bars, details, reason)


CHUNK_BARS = 1 << 20  # indicator temporaries of ~8 MB per array, reused instead of fresh memory


def indicator_sanity(bars: pa.Table, period: int = 14) -> CheckOutcome:
    """SMA/EMA/RSI/ATR of the (whole-series) closes are finite after warm-up, RSI in [0, 100], ATR >= 0,
    SMA within [min low, max high] of the series.

    Computed in chunks of CHUNK_BARS bars, each preceded by an overlap long enough (50 periods, >= 1000
    bars) for the exponential indicators to forget where they were seeded (weight below 1e-17).
    """
    close_all, high_all, low_all = (column_i64(bars, k) for k in ("close", "high", "low"))
    n = len(close_all)
    low_bound = float(low_all.min()) / PRICE_SCALE if n else 0.0
    high_bound = float(high_all.max()) / PRICE_SCALE if n else 0.0
    slack = 1e-9 * max(abs(low_bound), abs(high_bound), 1.0)  # float rounding of the moving sum
    overlap = max(50 * period, 1000)
    bad = np.zeros(n, dtype=bool)
    counts = dict.fromkeys(("sma_not_finite", "ema_not_finite", "rsi_not_finite", "atr_not_finite",
                            "rsi_out_of_range", "atr_negative", "sma_out_of_range"), 0)
    extremes = {"rsi_min": np.inf, "rsi_max": -np.inf, "atr_max": -np.inf}
    for a in range(0, n, CHUNK_BARS):  # one iteration per million bars
        b = min(a + CHUNK_BARS, n)
        w = max(0, a - overlap)
        c = close_all[w:b] / PRICE_SCALE
        values = {"sma": indicators.sma(c, period), "ema": indicators.ema(c, period),
                  "rsi": indicators.rsi(c, period),
                  "atr": indicators.atr(high_all[w:b] / PRICE_SCALE, low_all[w:b] / PRICE_SCALE, c, period)}
        values = {k: v[a - w:] for k, v in values.items()}
        chunk_bad = bad[a:b]
        for name, v in values.items():
            warm = max(indicators.warmup(name, period) - a, 0) if w == 0 else 0
            nonfinite = ~np.isfinite(v)
            nonfinite[:warm] = False
            counts[f"{name}_not_finite"] += int(nonfinite.sum())
            chunk_bad |= nonfinite
        with np.errstate(invalid="ignore"):
            rsi_range = (values["rsi"] < 0) | (values["rsi"] > 100)
            atr_negative = values["atr"] < 0
            sma_out = (values["sma"] < low_bound - slack) | (values["sma"] > high_bound + slack)
        counts["rsi_out_of_range"] += int(rsi_range.sum())
        counts["atr_negative"] += int(atr_negative.sum())
        counts["sma_out_of_range"] += int(sma_out.sum())
        chunk_bad |= rsi_range | atr_negative | sma_out
        if np.isfinite(values["rsi"]).any():
            extremes["rsi_min"] = min(extremes["rsi_min"], float(np.nanmin(values["rsi"])))
            extremes["rsi_max"] = max(extremes["rsi_max"], float(np.nanmax(values["rsi"])))
        if np.isfinite(values["atr"]).any():
            extremes["atr_max"] = max(extremes["atr_max"], float(np.nanmax(values["atr"])))
    details = {"bars": n, "period": period, "scope": "whole series", **counts,
               **{k: v for k, v in extremes.items() if np.isfinite(v)}}
    return _outcome("indicator_sanity", bad, bars, details)


def timestamp_continuity(bars: pa.Table, sessions: Sessions, interval: str | int = NS,
                         dense: bool = False) -> CheckOutcome:
    """Strictly increasing, unique, aligned to the interval from the session open; dense: no missing
    interval between a session's first and last bar (gaps only at session breaks)."""
    ts = column_i64(bars, "ts_event")
    step = interval_ns(interval)
    n = len(ts)
    sid = _session_of(ts, sessions)
    safe = np.maximum(sid, 0)
    duplicate = np.zeros(n, dtype=bool)
    decrease = np.zeros(n, dtype=bool)
    gap = np.zeros(n, dtype=bool)
    d = np.diff(ts)
    duplicate[1:] = d == 0
    decrease[1:] = d < 0
    if step is None:
        misaligned = (sid < 0) | (ts != sessions.open_ns[safe])
    else:
        misaligned = (sid < 0) | ((ts - sessions.open_ns[safe]) % step != 0)
        if dense:
            same_session = sid[1:] == sid[:-1]
            gap[1:] = same_session & (d > step)
    bad = duplicate | decrease | misaligned | gap
    reason = _first_reasons(bad, [(duplicate, "duplicate timestamp"), (decrease, "goes back in time"),
                                  (misaligned, "not aligned to the interval from the session open"),
                                  (gap, "missing interval inside a session (dense)")])
    details = {"bars": n, "interval_ns": step, "dense": dense, "duplicates": int(duplicate.sum()),
               "decreases": int(decrease.sum()), "misaligned": int(misaligned.sum()),
               "gaps_inside_session": int(gap.sum())}
    return _outcome("timestamp_continuity", bad, bars, details, reason)


def no_nan_or_inf(table: pa.Table) -> CheckOutcome:
    """No null in any column, no NaN or inf in any float column."""
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


def within_contract_changes(raw_price: np.ndarray, adjusted_price: np.ndarray, instrument_id: np.ndarray,
                            ts_ns: np.ndarray | None = None) -> CheckOutcome:
    """Inside each contract segment every tick-to-tick change of the adjusted series equals the raw one's."""
    raw = np.asarray(raw_price, dtype=np.int64)
    adj = np.asarray(adjusted_price, dtype=np.int64)
    iid = np.asarray(instrument_id, dtype=np.int64)
    shift = adj - raw  # constant inside a segment iff every change matches exactly
    bad = np.zeros(len(raw), dtype=bool)
    bad[1:] = (iid[1:] == iid[:-1]) & (shift[1:] != shift[:-1])
    segments = int(np.count_nonzero(iid[1:] != iid[:-1])) + 1 if len(iid) else 0
    examples = [{"row": int(i), "ts_event": _iso(ts_ns[i]) if ts_ns is not None else None,
                 "instrument_id": int(iid[i]), "raw_change": int(raw[i] - raw[i - 1]),
                 "adjusted_change": int(adj[i] - adj[i - 1])} for i in np.flatnonzero(bad)[:MAX_EXAMPLES]]
    count = int(bad.sum())
    details = {"ticks": len(raw), "segments": segments}
    return CheckOutcome("within_contract_changes", count == 0, count, details, examples)


def validation_report(outcomes: Iterable[CheckOutcome]) -> dict[str, Any]:
    """JSON-serialisable summary: overall pass and one entry per checkpoint."""
    items: Sequence[CheckOutcome] = list(outcomes)
    return {"passed": all(o.passed for o in items),
            "checkpoints": [{"checkpoint": o.name, "passed": bool(o.passed), "violations": int(o.violations),
                             "details": _plain(o.details), "first_violations": _plain(o.first_violations)}
                            for o in items]}
