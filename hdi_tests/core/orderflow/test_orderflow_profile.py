"""Volume profile: POC with its tie rule, value area expansion, nodes, against hand-built sessions and loops."""

from __future__ import annotations

import numpy as np
import pytest
from orderflow_tapes import TICK, A, B, ct, random_trades, week_sessions

from hdi_core.calendar import NS
from hdi_core.orderflow import Trades, volume_profile


def _session(volumes: list[int], day: int = 6) -> Trades:
    """One trade per level (buy side) of a single trade date: level j at 5000 + j ticks with volumes[j]."""
    keep = [j for j, v in enumerate(volumes) if v > 0]
    t0 = ct(2024, 3, day, 9, 30)
    return Trades(t0 + np.arange(len(keep), dtype=np.int64), np.array([5000 * NS + j * TICK for j in keep]),
                  np.array([volumes[j] for j in keep]), np.full(len(keep), B, np.uint8))


def _summary(volumes: list[int], **kw: float) -> dict:
    levels, summary = volume_profile(_session(volumes), week_sessions(), TICK, **kw)
    row = summary.to_pylist()[0]
    to_tick = lambda p: (p - 5000 * NS) // TICK  # noqa: E731
    return {"poc": to_tick(row["poc"]), "val": to_tick(row["value_area_low"]), "vah": to_tick(row["value_area_high"]),
            "volume": row["volume"], "va_volume": row["value_area_volume"], "levels": levels.to_pylist()}


def test_value_area_two_level_expansion() -> None:
    # POC at 4 (50). Pairs: up (5,6)=40 vs down (3,2)=25 -> up (90); then up (7,8)=5 vs down 25 -> down (115).
    got = _summary([1, 4, 5, 20, 50, 30, 10, 5, 0, 1], value_area_share=0.85)  # 107.1 of 126
    assert (got["poc"], got["val"], got["vah"]) == (4, 2, 6)
    assert got["volume"] == 126 and got["va_volume"] == 115
    assert [r["in_value_area"] for r in got["levels"]] == [False, False] + [True] * 5 + [False] * 3


def test_poc_tie_goes_to_the_level_nearest_the_middle_then_the_lower() -> None:
    assert _summary([9, 1, 1, 9, 1, 1, 1, 9, 1])["poc"] == 3  # 3 is nearer the middle (4) than 0 or 7
    assert _summary([1, 9, 1, 9, 1])["poc"] == 1  # 1 and 3 equidistant from 2: the lower


def test_zero_volume_levels_inside_the_range_are_on_the_ladder_and_low_nodes() -> None:
    got = _summary([10, 10, 10, 40, 10, 0, 0, 10, 30, 10, 10], node_window_ticks=1, hvn_factor=1.5,
                   lvn_factor=0.5)
    nodes = {(r["price"] - 5000 * NS) // TICK: r["node"] for r in got["levels"] if r["node"]}
    assert nodes == {3: "high", 8: "high", 5: "low", 6: "low"}
    assert len(got["levels"]) == 11
    assert sum(r["is_poc"] for r in got["levels"]) == 1


def test_share_one_covers_the_whole_range() -> None:
    got = _summary([3, 1, 7, 2], value_area_share=1.0)
    assert (got["val"], got["vah"], got["va_volume"]) == (0, 3, 13)


def _oracle(volumes: list[int], share: float) -> tuple[int, int, int]:
    """POC and value area by the written rule, with plain loops."""
    r = len(volumes)
    top = max(volumes)
    candidates = [j for j in range(r) if volumes[j] == top]
    poc = min(candidates, key=lambda j: (abs(2 * j - (r - 1)), j))
    lo = hi = poc
    area = volumes[poc]
    while area < share * sum(volumes) and (lo > 0 or hi < r - 1):
        up = sum(volumes[hi + 1 : min(hi + 3, r)])
        down = sum(volumes[max(lo - 2, 0) : lo])
        if hi < r - 1 and (lo == 0 or up >= down):
            hi, area = min(hi + 2, r - 1), area + up
        else:
            lo, area = max(lo - 2, 0), area + down
    return poc, lo, hi


@pytest.mark.parametrize("seed", range(6))
def test_matches_a_plain_loop_oracle(seed: int) -> None:
    rng = np.random.default_rng(seed)
    volumes = rng.integers(0, 50, int(rng.integers(1, 60))).tolist()
    volumes[0] = volumes[-1] = max(volumes[0], 1)  # the range ends on traded levels
    share = float(rng.uniform(0.3, 1.0))
    got = _summary(volumes, value_area_share=share)
    assert (got["poc"], got["val"], got["vah"]) == _oracle(volumes, share)


def test_sessions_are_trade_dates_and_volumes_add_up() -> None:
    trades = random_trades(9, 4_000)
    levels, summary = volume_profile(trades, week_sessions(), TICK)
    assert summary["volume"].to_numpy().sum() == trades.size.sum() == levels["volume"].to_numpy().sum()
    assert summary.num_rows == len(set(levels["trade_date"].to_pylist()))
    sides = levels.select(["buy_volume", "sell_volume", "no_side_volume"]).to_pandas().sum(axis=1)
    assert (sides.to_numpy() == levels["volume"].to_numpy()).all()
    assert int(np.sum(trades.size[trades.side == A])) == levels["sell_volume"].to_numpy().sum()
