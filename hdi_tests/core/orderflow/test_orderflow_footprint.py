"""Footprint: known levels and diagonal imbalances on a hand-built bar, a plain-loop oracle on random tapes."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
from orderflow_tapes import TICK, A, B, N, ct, random_trades, week_sessions

from hdi_core.calendar import NS, session_index
from hdi_core.errors import HdiError
from hdi_core.orderflow import Trades, footprint


def _bar(rows: list[tuple[int, int, int]]) -> Trades:
    """Trades in one minute: (price in ticks above 5000, size, side)."""
    t0 = ct(2024, 3, 6, 9, 30)
    n = len(rows)
    return Trades(t0 + np.arange(n, dtype=np.int64), np.array([5000 * NS + p * TICK for p, _, _ in rows]),
                  np.array([q for _, q, _ in rows]), np.array([s for _, _, s in rows], np.uint8))


def test_known_levels_and_diagonal_imbalances() -> None:
    # level 0: sell 10; level 1: buy 30 (>= 3 x sell 10 below: buy imbalance), sell 2; level 2: buy 5 (< min 10);
    # level 4 (a gap at 3): sell 40 against no buy above: sell imbalance; no-side 6 at level 0 apart
    trades = _bar([(0, 10, A), (1, 30, B), (1, 2, A), (2, 5, B), (4, 40, A), (0, 6, N)])
    rows = footprint(trades, week_sessions(), "1m", TICK, ratio=3.0, min_volume=10).to_pylist()
    got = [(r["price"], r["buy_volume"], r["sell_volume"], r["no_side_volume"], r["buy_imbalance"],
            r["sell_imbalance"]) for r in rows]
    base = 5000 * NS
    assert got == [
        (base, 0, 10, 6, False, False),  # sell 10 vs buy 30 one tick up: not 3x
        (base + TICK, 30, 2, 0, True, False),
        (base + 2 * TICK, 5, 0, 0, False, False),
        (base + 4 * TICK, 0, 40, 0, False, True),
    ]


def test_ratio_boundary_is_inclusive() -> None:
    trades = _bar([(0, 10, A), (1, 30, B)])
    flags = footprint(trades, week_sessions(), "1m", TICK, ratio=3.0, min_volume=1)["buy_imbalance"].to_pylist()
    assert flags == [False, True]
    flags = footprint(trades, week_sessions(), "1m", TICK, ratio=3.01, min_volume=1)["buy_imbalance"].to_pylist()
    assert flags == [False, False]


def test_off_grid_prices_floor_to_the_tick() -> None:
    trades = Trades(np.array([ct(2024, 3, 6, 9, 30)] * 2), np.array([5000 * NS + 1, 5000 * NS + TICK - 1]),
                    np.array([1, 2]), np.array([B, B], np.uint8))
    rows = footprint(trades, week_sessions(), "1m", TICK).to_pylist()
    assert [(r["price"], r["buy_volume"]) for r in rows] == [(5000 * NS, 3)]


def test_a_wrong_tick_is_refused() -> None:
    trades = _bar([(0, 1, A), (1, 1, A)])
    with pytest.raises(HdiError, match="tick must be a positive"):
        footprint(trades, week_sessions(), "1m", 0)
    wide = Trades(trades.ts, np.array([0, 10**17]), trades.size, trades.side)
    with pytest.raises(HdiError, match="is the product's tick size right"):
        footprint(wide, week_sessions(), "1m", 1)


@pytest.mark.parametrize("seed", [4, 5])
def test_matches_a_plain_loop_oracle(seed: int) -> None:
    sessions = week_sessions()
    trades = random_trades(seed, 3_000)
    ratio, min_volume = 2.5, 15
    rows = footprint(trades, sessions, "5m", TICK, ratio, min_volume).to_pylist()
    sid = session_index(trades.ts, sessions)
    levels: dict = defaultdict(lambda: [0, 0, 0])
    for i in range(len(trades)):
        opened = int(sessions.open_ns[sid[i]])
        bar = opened + (int(trades.ts[i]) - opened) // (300 * NS) * (300 * NS)
        levels[(bar, int(trades.price[i]))][{B: 0, A: 1, N: 2}[int(trades.side[i])]] += int(trades.size[i])
    expected = []
    for (bar, price), (buy, sell, none) in sorted(levels.items()):
        below = levels.get((bar, price - TICK), [0, 0, 0])[1]
        above = levels.get((bar, price + TICK), [0, 0, 0])[0]
        expected.append((bar, price, buy, sell, none, buy >= min_volume and buy >= ratio * below,
                         sell >= min_volume and sell >= ratio * above))
    got = [(r["ts_event"], r["price"], r["buy_volume"], r["sell_volume"], r["no_side_volume"], r["buy_imbalance"],
            r["sell_imbalance"]) for r in rows]
    assert got == expected
    assert sum(r[2] + r[3] + r[4] for r in got) == int(trades.size.sum())


def test_negative_back_adjusted_prices_floor_down() -> None:
    t0 = ct(2024, 3, 6, 9, 30)
    trades = Trades(np.array([t0, t0 + 1, t0 + 2]), np.array([-12_500_000_000, -12_400_000_000, -12_750_000_000]),
                    np.array([1, 2, 3]), np.array([B, A, N], np.uint8))
    rows = footprint(trades, week_sessions(), "1m", TICK).to_pylist()
    assert [(r["price"], r["buy_volume"], r["sell_volume"], r["no_side_volume"]) for r in rows] == [
        (-12_750_000_000, 0, 0, 3), (-12_500_000_000, 1, 2, 0)]  # -12.40 lies on the -12.50 level
