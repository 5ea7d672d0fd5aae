"""Adjustment across window edges: each window adjusted on its own, with the rolls `adjusts_with` selects, joins
into one jump-free series; after a roll changes, re-adjusting the windows the staleness sensor selects gives the
whole-series result again. The expected values come from the definitions, computed with plain loops."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pytest

from hdi_assets.partitions import adjusts_with, products
from hdi_core.continuous import adjust
from hdi_core.units import NS, PRICE_SCALE

WINDOWS = ("2024-01-01", "2024-07-01", "2025-01-01")
TICK = PRICE_SCALE // 4  # 0.25 points


def _ns(day: str, hour: int = 15) -> int:
    return int(dt.datetime.fromisoformat(f"{day}T{hour:02d}:00:00+00:00").timestamp()) * NS


# One roll in each window; contract k trades at fair + OFFSET[k] (a carry), so every gap is OFFSET[k+1] - OFFSET[k].
SWITCHES = np.array([_ns("2024-03-14"), _ns("2024-09-12"), _ns("2025-03-13")], dtype=np.int64)
OFFSETS = np.array([0, 12, 25, 39], dtype=np.int64) * TICK


def _market(seed: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(ts, fair, price, window index) of ticks over the three windows; the fair walk has no jump at any roll."""
    rng = np.random.default_rng(seed)
    ts = np.sort(rng.integers(_ns("2024-01-02"), _ns("2025-06-27"), 6_000)).astype(np.int64)
    fair = 4_000 * PRICE_SCALE + np.cumsum(rng.integers(-2, 3, len(ts))) * TICK
    contract = np.searchsorted(SWITCHES, ts, side="right")
    window = np.searchsorted([_ns(w, 0) for w in WINDOWS], ts, side="right") - 1
    return ts, fair, fair + OFFSETS[contract], window


def _expected(method: str, ts: np.ndarray, price: np.ndarray, gaps: np.ndarray, old: np.ndarray,
              new: np.ndarray) -> np.ndarray:
    """The definitions, tick by tick: backward adds every later roll's gap, forward subtracts every earlier one's,
    ratio multiplies by every later roll's new/old."""
    out = np.empty(len(ts), dtype=np.float64)
    for i, (t, p) in enumerate(zip(ts.tolist(), price.tolist(), strict=True)):
        k = sum(1 for s in SWITCHES.tolist() if s <= t)
        if method == "panama_backward":
            out[i] = p + sum(gaps[k:].tolist())
        elif method == "panama_forward":
            out[i] = p - sum(gaps[:k].tolist())
        else:
            out[i] = p * float(np.prod([n / o for n, o in zip(new[k:].tolist(), old[k:].tolist(), strict=True)]))
    return out


def _adjust_window(method: str, w: int, ts: np.ndarray, price: np.ndarray, window: np.ndarray, gaps: np.ndarray,
                   old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """What panama_adjusted_ticks does for one window: only the rolls of the windows that move it."""
    product = dataclasses.replace(products()["ES"], adjustment=method)
    use = np.array([adjusts_with(product, WINDOWS[w], WINDOWS[r]) for r in range(len(WINDOWS))])
    sel = window == w
    return adjust.adjust(method, ts[sel], price[sel], SWITCHES[use], gaps[use], old[use], new[use])


def _roll_prices(fair_at_roll: np.ndarray, gaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    old = fair_at_roll + OFFSETS[:-1]
    return old, old + gaps


@pytest.mark.parametrize("method", ["panama_backward", "panama_forward", "ratio_backward"])
def test_windows_adjusted_apart_join_without_jumps_and_follow_a_changed_roll(method: str) -> None:
    ts, fair, price, window = _market()
    fair_at_roll = fair[np.searchsorted(ts, SWITCHES)]
    gaps = np.diff(OFFSETS)
    old, new = _roll_prices(fair_at_roll, gaps)
    built = np.concatenate([_adjust_window(method, w, ts, price, window, gaps, old, new) for w in range(3)])
    expected = _expected(method, ts, price, gaps, old, new)
    if method.startswith("panama"):
        assert (built == expected).all()
        assert len(np.unique(built - fair)) == 1  # one series: a constant away from the jump-free fair walk
    else:
        assert np.abs(built - expected).max() <= 1  # ratio: within one fixed-point unit (float factor)

    # The middle window's roll is re-measured: the sensor re-adjusts exactly the windows it moves (the earlier
    # ones for a backward method, the later ones for a forward one); the others keep what they had.
    changed = 1
    gaps2 = gaps.copy()
    gaps2[changed] += 3 * TICK
    old2, new2 = _roll_prices(fair_at_roll, gaps2)
    product = dataclasses.replace(products()["ES"], adjustment=method)
    stale = [w for w in range(3) if adjusts_with(product, WINDOWS[w], WINDOWS[changed])]
    assert stale == ([0, 1] if method.endswith("backward") else [1, 2])
    parts = [_adjust_window(method, w, ts, price, window, gaps2, old2, new2) if w in stale
             else built[window == w] for w in range(3)]
    rebuilt = np.concatenate(parts)
    expected2 = _expected(method, ts, price, gaps2, old2, new2)
    if method.startswith("panama"):
        assert (rebuilt == expected2).all()
    else:
        assert np.abs(rebuilt - expected2).max() <= 1
