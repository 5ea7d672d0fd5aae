"""Technical indicators on float arrays, pure NumPy, vectorized (no Python loop per bar).

Every indicator runs over the whole series, across session breaks: the input is a back-adjusted
continuous series, whose point is exactly that it can be read across sessions and rolls. The first values
before an indicator has a full window are NaN (the warm-up); `warmup(name, period)` says how many.

Exponential smoothing (EMA, Wilder) is computed in blocks: inside a block the recurrence
y[t] = a*x[t] + (1-a)*y[t-1] is a scaled cumulative sum, and only one carry per block (a few thousand
bars long) crosses block borders in a short Python loop.
"""

from __future__ import annotations

import math

import numpy as np

_MAX_SCALE_DECADES = 100  # beta**-block stays below 1e100: no overflow, precision loss about eps * x / a


def _smooth(x: np.ndarray, alpha: float, init: float) -> np.ndarray:
    """y[t] = alpha*x[t] + (1-alpha)*y[t-1] with y[-1] = init, vectorized by blocks."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    beta = 1.0 - alpha
    if n == 0:
        return x.copy()
    if beta <= 0.0:
        return x.copy()
    block = max(1, min(n, int(_MAX_SCALE_DECADES * math.log(10) / -math.log(beta))))
    rows = -(-n // block)
    padded = np.zeros(rows * block)
    padded[:n] = x
    padded = padded.reshape(rows, block)
    k = np.arange(block, dtype=np.float64)
    grow = beta ** -k  # beta**-k for k in block
    decay = beta ** k  # beta**k
    local = np.cumsum(padded * grow, axis=1)
    local *= decay
    local *= alpha  # local[j, i] = alpha * sum_{m<=i} beta**(i-m) x[j*block+m]
    carry = np.empty(rows)
    prev = init
    beta_block = beta ** block
    last = local[:, -1]
    for j in range(rows):  # one step per block of thousands of bars
        carry[j] = prev
        prev = last[j] + beta_block * prev
    out = local + (beta * decay)[None, :] * carry[:, None]  # + beta**(i+1) * y[j*block-1]
    return out.reshape(-1)[:n]


def sma(x: np.ndarray, period: int) -> np.ndarray:
    """Simple moving average; NaN for the first period-1 values."""
    x = np.asarray(x, dtype=np.float64)
    out = np.full(len(x), np.nan)
    if period < 1 or len(x) < period:
        return out
    base = x[0]  # centring keeps the cumulative sum small, so its rounding error stays small
    c = np.cumsum(x - base)
    out[period - 1] = c[period - 1] / period
    out[period:] = (c[period:] - c[:-period]) / period
    out[period - 1:] += base
    return out


def ema(x: np.ndarray, period: int) -> np.ndarray:
    """EMA with alpha = 2/(period+1), seeded with the SMA of the first `period` values; NaN before."""
    x = np.asarray(x, dtype=np.float64)
    out = np.full(len(x), np.nan)
    if period < 1 or len(x) < period:
        return out
    seed = float(np.mean(x[:period]))
    out[period - 1] = seed
    out[period:] = _smooth(x[period:], 2.0 / (period + 1), seed)
    return out


def wilder(x: np.ndarray, period: int, first: int = 0) -> np.ndarray:
    """Wilder smoothing (alpha = 1/period) of x[first:], seeded with the mean of its first `period` values."""
    x = np.asarray(x, dtype=np.float64)
    out = np.full(len(x), np.nan)
    start = first + period - 1
    if period < 1 or len(x) <= start:
        return out
    seed = float(np.mean(x[first:first + period]))
    out[start] = seed
    out[start + 1:] = _smooth(x[start + 1:], 1.0 / period, seed)
    return out


def rsi(close: np.ndarray, period: int = 14) -> np.ndarray:
    """Wilder RSI in [0, 100]; 100 when there are no losses, 50 when the window did not move; NaN warm-up."""
    close = np.asarray(close, dtype=np.float64)
    out = np.full(len(close), np.nan)
    if len(close) <= period:
        return out
    delta = np.diff(close, prepend=close[0])
    gain = wilder(np.maximum(delta, 0.0), period, first=1)
    loss = wilder(np.maximum(-delta, 0.0), period, first=1)
    # block-wise smoothing can leave -1e-17 where the exact value is 0; clip that rounding away
    g, lo = np.maximum(gain[period:], 0.0), np.maximum(loss[period:], 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.minimum(100.0 * g / (g + lo), 100.0)
    value[(g + lo) == 0.0] = 50.0
    out[period:] = value
    return out


def true_range(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    """max(high-low, |high-prev close|, |low-prev close|); the first bar is just high-low."""
    high, low, close = (np.asarray(a, dtype=np.float64) for a in (high, low, close))
    prev = np.concatenate([close[:1], close[:-1]])
    return np.maximum(high - low, np.maximum(np.abs(high - prev), np.abs(low - prev)))


def atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int = 14) -> np.ndarray:
    """Wilder average true range; NaN for the first period-1 values."""
    return np.maximum(wilder(true_range(high, low, close), period), 0.0)  # clip -1e-17 rounding; NaN stays


def warmup(name: str, period: int) -> int:
    """How many leading values of an indicator are NaN by construction."""
    return {"sma": period - 1, "ema": period - 1, "atr": period - 1, "rsi": period}[name]
