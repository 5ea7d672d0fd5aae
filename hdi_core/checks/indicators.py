"""Indicator values within the bounds the market implies."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from numba import njit

from hdi_core.checks.common import MAX_EXAMPLES, CheckOutcome, _examples, _iso, _kernel_outcome, _note
from hdi_core.continuous.bars import column_i64
from hdi_core.continuous.indicators import SMA_RESUM_EVERY, rsi_value, true_range_at
from hdi_core.errors import HdiError
from hdi_core.units import PRICE_SCALE

_SANITY_COUNTS = ("sma_not_finite", "ema_not_finite", "rsi_not_finite", "atr_not_finite", "rsi_out_of_range",
                  "atr_negative", "sma_out_of_range", "atr_above_max_true_range")


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
    max_tr = 0.0
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
        max_tr = max(max_tr, tr)
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
        if atr > max_tr * (1 + 1e-9) + 1e-12:  # a mean of true ranges cannot exceed the largest of them
            counts[7] += 1
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


HIST_BINS = 256  # per-session histogram of |normalized return| in 1/8 ticks: the median without a sort
BINS_PER_TICK = 8


@njit(cache=True, nogil=True)
def _normalized_returns(ts: np.ndarray, close: np.ndarray, session: np.ndarray, explained: np.ndarray, step: int,
                        max_silence: int) -> np.ndarray:  # pragma: no cover - compiled
    """Per bar: |return into it| / sqrt(bar steps since the previous bar), or -1 when a session edge, a roll or
    change of instrument (an `explained` time in (previous bar, this bar's end)) or a long silence explains it."""
    n = len(close)
    out = np.full(n, -1.0)
    e = 0
    for i in range(1, n):
        gap = ts[i] - ts[i - 1]
        while e < len(explained) and explained[e] <= ts[i - 1]:
            e += 1
        if session[i] < 0 or session[i - 1] != session[i] or gap - step > max_silence:
            continue
        if e < len(explained) and explained[e] < ts[i] + step:
            continue
        move = abs(close[i] - close[i - 1])
        out[i] = move if gap <= step else move / np.sqrt(gap / step)  # adjacent bars: no sqrt
    return out


@njit(cache=True, nogil=True)
def _return_kernel(ts: np.ndarray, close: np.ndarray, session: np.ndarray, explained: np.ndarray, step: int,
                   max_silence: int, tick: float, floor: float, max_sigmas: float, rows: np.ndarray,
                   zs: np.ndarray, sigmas: np.ndarray) -> int:  # pragma: no cover - compiled
    """Per-session histograms of the time-normalized |return| (-> robust sigma = 1.4826 x median, floored),
    then the returns beyond max_sigmas that no roll, edge or silence explains and that do not revert (a
    spike's out and back legs are a bad print, ohlc_integrity's business). Returns the outlier count."""
    n = len(close)
    r = _normalized_returns(ts, close, session, explained, step, max_silence)
    n_sessions = session.max() + 1 if n else 0
    hist = np.zeros((max(n_sessions, 1), HIST_BINS), np.int64)
    unit = tick / BINS_PER_TICK
    for i in range(n):
        if r[i] >= 0:
            hist[session[i], min(int(r[i] / unit), HIST_BINS - 1)] += 1
    sigma = np.full(max(n_sessions, 1), floor)
    for s in range(n_sessions):
        total = hist[s].sum()
        seen = 0
        for b in range(HIST_BINS):
            seen += hist[s, b]
            if 2 * seen >= total and total > 0:
                sigma[s] = max(floor, 1.4826 * (b + 0.5) * unit)
                break
    count = 0
    for i in range(1, n):
        if r[i] < 0 or r[i] <= max_sigmas * sigma[session[i]]:
            continue
        move = close[i] - close[i - 1]
        back = i + 1 < n and session[i + 1] == session[i] and abs(move + close[i + 1] - close[i]) <= 0.5 * abs(move)
        out = i >= 2 and session[i - 2] == session[i] and \
            abs(move + close[i - 1] - close[i - 2]) <= 0.5 * abs(move)
        if back or out:
            continue
        if count < len(rows):
            rows[count], zs[count], sigmas[count] = i, r[i] / sigma[session[i]], sigma[session[i]]
        count += 1
    return count


def return_outliers(ts: np.ndarray, close: np.ndarray, session: np.ndarray, step_ns: int, explained_ns: np.ndarray,
                    max_silence_ns: int, tick_size: int, max_sigmas: float, min_sigma_ticks: float
                    ) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """Bar-to-bar returns beyond max_sigmas of their session's robust volatility that do not revert.

    A return is divided by the square root of the bars' distance in steps (a move over minutes is not one over
    a second); the session's volatility is 1.4826 * the median of those (floored at min_sigma_ticks ticks). A
    return across a session edge, a roll or change of instrument (`explained_ns`, sorted), or a silence longer
    than max_silence_ns is explained. Returns (count, first rows, their z-scores, their sessions' sigmas).
    """
    rows = np.zeros(MAX_EXAMPLES, np.int64)
    zs, sigmas = np.zeros(MAX_EXAMPLES), np.zeros(MAX_EXAMPLES)
    count = _return_kernel(ts, close, np.asarray(session, np.int64), explained_ns, step_ns, max_silence_ns,
                           float(tick_size), float(min_sigma_ticks * tick_size), float(max_sigmas), rows, zs, sigmas)
    shown = min(count, MAX_EXAMPLES)
    return count, rows[:shown], zs[:shown], sigmas[:shown]


def indicator_sanity(bars: pa.Table, period: int = 14, *, explained_ns: np.ndarray | None = None,
                     step_ns: int = 1_000_000_000, tick_size: int = 1, max_return_sigmas: float = 30,
                     min_sigma_ticks: float = 1, max_silence_ns: int = 30 * 60 * 1_000_000_000,
                     session: np.ndarray | None = None) -> CheckOutcome:
    """SMA/EMA/RSI/ATR of the (whole-series) closes are finite after warm-up, RSI in [0, 100], ATR >= 0 and
    never above the largest true range, SMA within [min low, max high] of the series; and no bar-to-bar return
    beyond max_return_sigmas of its session's robust volatility unless a roll, a change of instrument, a
    session edge or an outage explains it (see return_outliers).

    One compiled pass computes and checks all four indicators per bar, keeping no indicator arrays.
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
    outcome = _kernel_outcome("indicator_sanity", bad, rows, None, (), bars, details)
    thresholds = {"period": period, "max_return_sigmas": max_return_sigmas, "min_sigma_ticks": min_sigma_ticks}
    if session is None:
        return outcome.with_thresholds(**thresholds)
    ts = column_i64(bars, "ts_event")
    trades = column_i64(bars, "trade_count") > 0 if "trade_count" in bars.column_names else np.ones(len(ts), bool)
    index = None if trades.all() else np.flatnonzero(trades)  # dense fillers repeat the close: not returns
    sub = (ts, close, np.asarray(session)) if index is None else (ts[index], close[index], np.asarray(session)[index])
    explained = np.sort(np.asarray(explained_ns if explained_ns is not None else [], dtype=np.int64))
    n_out, rows_out, z, sigma = return_outliers(*sub, step_ns, explained, max_silence_ns, tick_size,
                                                max_return_sigmas, min_sigma_ticks)
    at = rows_out if index is None else index[rows_out]
    before = rows_out - 1 if index is None else index[rows_out - 1]
    examples = [{"ts_event": _iso(ts[at[k]]), "row": int(at[k]), "close": int(close[at[k]]),
                 "previous_close": int(close[before[k]]), "z": float(z[k]), "session_sigma": float(sigma[k]),
                 "reason": "return beyond the session's robust volatility, not explained by a roll or edge"}
                for k in range(len(rows_out))]
    total = outcome.violations + n_out
    return CheckOutcome("indicator_sanity", total == 0, total,
                        {**outcome.details, "return_outliers": n_out},
                        (outcome.first_violations + examples)[:MAX_EXAMPLES], thresholds)


