"""Indicators against plain Python loops (long enough to cross several EMA blocks)."""

from __future__ import annotations

import numpy as np
import pytest

from hdi_core.continuous import indicators


def series(n: int = 9000, seed: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    close = 5000 + np.cumsum(rng.normal(0, 1, n))
    high = close + rng.uniform(0, 2, n)
    low = close - rng.uniform(0, 2, n)
    return high, low, close


def loop_ema(x: list[float], period: int, alpha: float | None = None, first: int = 0) -> list[float]:
    a = 2 / (period + 1) if alpha is None else alpha
    out = [float("nan")] * len(x)
    start = first + period - 1
    y = sum(x[first:first + period]) / period
    out[start] = y
    for t in range(start + 1, len(x)):
        y = a * x[t] + (1 - a) * y
        out[t] = y
    return out


@pytest.mark.parametrize("period", [1, 14, 200])
def test_sma_and_ema_match_loops(period: int) -> None:
    _, _, close = series()
    sma = [float("nan")] * (period - 1) + [sum(close[i - period + 1:i + 1]) / period
                                          for i in range(period - 1, len(close))]
    np.testing.assert_allclose(indicators.sma(close, period), sma, rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(indicators.ema(close, period), loop_ema(close.tolist(), period), rtol=1e-11,
                               equal_nan=True)


def test_rsi_wilder_matches_loop() -> None:
    _, _, close = series()
    p = 14
    delta = [0.0] + [close[i] - close[i - 1] for i in range(1, len(close))]
    gain = loop_ema([max(d, 0.0) for d in delta], p, 1 / p, first=1)
    loss = loop_ema([max(-d, 0.0) for d in delta], p, 1 / p, first=1)
    expected = [float("nan")] * p + [100 * g / (g + lo) for g, lo in zip(gain[p:], loss[p:], strict=True)]
    got = indicators.rsi(close, p)
    np.testing.assert_allclose(got, expected, rtol=1e-9, equal_nan=True)
    assert np.nanmin(got) >= 0 and np.nanmax(got) <= 100
    assert indicators.rsi(np.full(50, 7.0), p)[p:].tolist() == [50.0] * (50 - p)
    assert (indicators.rsi(np.arange(50.0), p)[p:] == 100.0).all()


def test_atr_matches_loop() -> None:
    high, low, close = series()
    tr = [high[0] - low[0]] + [max(high[i] - low[i], abs(high[i] - close[i - 1]), abs(low[i] - close[i - 1]))
                               for i in range(1, len(close))]
    np.testing.assert_allclose(indicators.atr(high, low, close, 14), loop_ema(tr, 14, 1 / 14), rtol=1e-11,
                               equal_nan=True)


def test_short_series_are_all_warmup() -> None:
    assert np.isnan(indicators.ema(np.arange(5.0), 14)).all()
    assert np.isnan(indicators.rsi(np.arange(14.0), 14)).all()
    assert np.isnan(indicators.atr(np.ones(3), np.ones(3), np.ones(3), 14)).all()
