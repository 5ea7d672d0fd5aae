"""Technical indicators on float arrays: compiled single-pass recurrences (no Python loop per bar).

Every indicator runs over the whole series, across session breaks: the input is a back-adjusted
continuous series, whose point is exactly that it can be read across sessions and rolls. The first values
before an indicator has a full window are NaN (the warm-up); `warmup(name, period)` says how many.
The kernels here are also called per bar by validation.indicator_sanity, which keeps no arrays at all.
"""

from __future__ import annotations

import numpy as np
from numba import njit

SMA_RESUM_EVERY = 1024  # the moving sum is recomputed from scratch this often, so rounding cannot drift


@njit(cache=True, nogil=True)
def _sma_kernel(x: np.ndarray, period: int, out: np.ndarray) -> None:  # pragma: no cover - compiled
    base = x[0]  # centring keeps the running sum small, so its rounding error stays small
    total = 0.0
    for t in range(len(x)):
        if t >= period and (t - period) % SMA_RESUM_EVERY == 0:
            total = 0.0
            for m in range(t - period + 1, t + 1):
                total += x[m] - base
        else:
            total += x[t] - base
            if t >= period:
                total -= x[t - period] - base
        out[t] = total / period + base if t >= period - 1 else np.nan


@njit(cache=True, nogil=True)
def _smooth_kernel(x: np.ndarray, alpha: float, first: int, period: int,
                   out: np.ndarray) -> None:  # pragma: no cover - compiled
    """out[start] = mean(x[first:first+period]), then y = alpha*x + (1-alpha)*y; NaN before start."""
    start = first + period - 1
    seed = 0.0
    for t in range(first, start + 1):
        seed += x[t]
    y = seed / period
    beta = 1.0 - alpha
    for t in range(start):
        out[t] = np.nan
    out[start] = y
    for t in range(start + 1, len(x)):
        y = alpha * x[t] + beta * y
        out[t] = y


@njit(cache=True, nogil=True)
def _rsi_kernel(close: np.ndarray, period: int, out: np.ndarray) -> None:  # pragma: no cover - compiled
    alpha = 1.0 / period
    gain = 0.0
    loss = 0.0
    for t in range(min(period, len(close))):
        out[t] = np.nan
    for t in range(1, period + 1):
        d = close[t] - close[t - 1]
        gain += max(d, 0.0)
        loss += max(-d, 0.0)
    gain /= period
    loss /= period
    for t in range(period, len(close)):
        if t > period:
            d = close[t] - close[t - 1]
            gain = alpha * max(d, 0.0) + (1.0 - alpha) * gain
            loss = alpha * max(-d, 0.0) + (1.0 - alpha) * loss
        out[t] = rsi_value(gain, loss)


@njit(cache=True, nogil=True, inline="always")
def rsi_value(gain: float, loss: float) -> float:  # pragma: no cover - compiled
    """RSI from Wilder-smoothed gain and loss: 50 when the window did not move, 100 with no losses."""
    if gain + loss == 0.0:
        return 50.0
    return min(100.0 * gain / (gain + loss), 100.0)


@njit(cache=True, nogil=True, inline="always")
def true_range_at(high: float, low: float, prev_close: float) -> float:  # pragma: no cover - compiled
    return max(high - low, max(abs(high - prev_close), abs(low - prev_close)))


@njit(cache=True, nogil=True)
def _true_range_kernel(high: np.ndarray, low: np.ndarray, close: np.ndarray,
                       out: np.ndarray) -> None:  # pragma: no cover - compiled
    for t in range(len(close)):
        out[t] = true_range_at(high[t], low[t], close[t - 1] if t > 0 else close[0])


def _f64(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float64)


def sma(x: np.ndarray, period: int) -> np.ndarray:
    """Simple moving average; NaN for the first period-1 values."""
    x = _f64(x)
    out = np.full(len(x), np.nan)
    if period < 1 or len(x) < period:
        return out
    _sma_kernel(x, period, out)
    return out


def ema(x: np.ndarray, period: int) -> np.ndarray:
    """EMA with alpha = 2/(period+1), seeded with the SMA of the first `period` values; NaN before."""
    x = _f64(x)
    out = np.full(len(x), np.nan)
    if period < 1 or len(x) < period:
        return out
    _smooth_kernel(x, 2.0 / (period + 1), 0, period, out)
    return out


def wilder(x: np.ndarray, period: int, first: int = 0) -> np.ndarray:
    """Wilder smoothing (alpha = 1/period) of x[first:], seeded with the mean of its first `period` values."""
    x = _f64(x)
    out = np.full(len(x), np.nan)
    if period < 1 or len(x) <= first + period - 1:
        return out
    _smooth_kernel(x, 1.0 / period, first, period, out)
    return out


def rsi(close: np.ndarray, period: int = 14) -> np.ndarray:
    """Wilder RSI in [0, 100]; 100 when there are no losses, 50 when the window did not move; NaN warm-up."""
    close = _f64(close)
    out = np.full(len(close), np.nan)
    if period < 1 or len(close) <= period:
        return out
    _rsi_kernel(close, period, out)
    return out


def true_range(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    """max(high-low, |high-prev close|, |low-prev close|); the first bar is just high-low."""
    out = np.empty(len(close))
    _true_range_kernel(_f64(high), _f64(low), _f64(close), out)
    return out


def atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int = 14) -> np.ndarray:
    """Wilder average true range; NaN for the first period-1 values."""
    return wilder(true_range(high, low, close), period)
