"""Back-adjustment against plain loops, and the weekend roll joined with no false jump."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from hdi_core.calendar import CHICAGO, NS, calendar_sessions
from hdi_core.continuous.adjust import adjust_ticks, panama_backward, panama_forward, ratio_backward
from hdi_core.continuous.rolls import gaps_from_settlements, switches_from_mappings
from hdi_core.continuous.validation import roll_continuity, within_contract_changes
from hdi_core.errors import HdiError


def ct(y: int, m: int, d: int, hh: int, mm: int = 0) -> int:
    return int(dt.datetime(y, m, d, hh, mm, tzinfo=CHICAGO).timestamp()) * NS


def px(x: float) -> int:
    return int(round(x * 4)) * 250_000_000


def random_rolls(seed: int = 0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    ts = np.sort(rng.integers(0, 1000 * NS, 5000))
    price = rng.integers(-50, 6000, 5000) * 250_000_000  # negative prices are legal after adjustment
    switch = np.array([300 * NS, 700 * NS, 1500 * NS, int(ts[123])])  # one beyond the window, one on a tick
    gap = np.array([px(12.5), px(-3.25), px(7.0), px(1.0)])
    return ts, price, switch, gap


def test_panama_backward_matches_loop() -> None:
    ts, price, switch, gap = random_rolls()
    expected = [p + sum(g for s, g in zip(switch, gap, strict=True) if s > t) for t, p in zip(ts, price,
                                                                                                strict=True)]
    assert panama_backward(ts, price, switch, gap).tolist() == expected
    shuffled = np.random.default_rng(1).permutation(len(ts))  # unsorted input takes the other path
    assert panama_backward(ts[shuffled], price[shuffled], switch[::-1], gap[::-1]).tolist() == \
        [expected[i] for i in shuffled]
    after = ts >= switch.max()
    assert (panama_backward(ts, price, switch, gap)[after] == price[after]).all()  # newest unchanged


def test_panama_forward_matches_loop() -> None:
    ts, price, switch, gap = random_rolls()
    expected = [p - sum(g for s, g in zip(switch, gap, strict=True) if s <= t) for t, p in zip(ts, price,
                                                                                                strict=True)]
    assert panama_forward(ts, price, switch, gap).tolist() == expected


def test_ratio_backward_close_to_loop_and_refuses_nonpositive() -> None:
    ts, price, switch, _ = random_rolls()
    old = np.array([px(100), px(200), px(50), px(80)])
    new = np.array([px(101), px(198), px(51), px(80.25)])
    got = ratio_backward(ts, price, switch, old, new)
    for t, p, g in zip(ts, price, got, strict=True):
        f = 1.0
        for s, o, n in zip(switch, old, new, strict=True):
            f *= n / o if s > t else 1.0
        assert abs(g - p * f) <= 1.0
    with pytest.raises(HdiError, match="positive"):
        ratio_backward(ts, price, switch, old - px(100), new)


def weekend() -> tuple[pa.Table, pa.Table]:
    """Friday's last ESH4 tick 15:59 CT at 5100.25, Sunday's first ESM4 tick at 5200 after a weekend rally;
    settlements Friday: ESH4 5100, ESM4 5150."""
    continuous = pa.table({
        "ts_event": [ct(2024, 3, 8, 15, 58), ct(2024, 3, 8, 15, 59), ct(2024, 3, 10, 17),
                     ct(2024, 3, 10, 17, 1)],
        "price": [px(5100), px(5100.25), px(5200), px(5201)], "size": [1, 1, 1, 1],
        "instrument_id": [1, 1, 2, 2], "raw_symbol": ["ESH4", "ESH4", "ESM4", "ESM4"]})
    settle = pa.table({"instrument_id": pa.array([1, 2], pa.int64()),
                       "trade_date": pa.array([dt.date(2024, 3, 8)] * 2, pa.date32()),
                       "price": pa.array([px(5100), px(5150)], pa.int64())})
    sw = switches_from_mappings([("2024-03-01", "2024-03-10", 1), ("2024-03-10", "2024-03-20", 2)])
    sessions = calendar_sessions("CME Globex Equity", ct(2024, 3, 4, 0), ct(2024, 3, 16, 0))
    events = gaps_from_settlements(sw, settle, sessions)
    return continuous, events


def test_weekend_roll_keeps_the_weekend_move_and_joins_the_contracts() -> None:
    continuous, events = weekend()
    out = adjust_ticks(continuous, events)
    adjusted = out["adjusted_price"].to_pylist()
    assert adjusted == [px(5150), px(5150.25), px(5200), px(5201)]
    assert adjusted[2] - adjusted[1] == px(49.75)  # the market's own weekend move survives
    assert roll_continuity(out, None, events).passed
    assert within_contract_changes(out["price"].to_numpy(), np.array(adjusted),
                                   out["instrument_id"].to_numpy()).passed


def test_wrong_sign_adjustment_fails_roll_continuity() -> None:
    continuous, events = weekend()
    raw = continuous["price"].to_numpy()
    wrong = raw - np.where(continuous["ts_event"].to_numpy() < events["switch_ns"][0].as_py(),
                           events["roll_gap"][0].as_py(), 0)  # the seed's sign
    out = continuous.append_column("adjusted_price", pa.array(wrong))
    outcome = roll_continuity(out, None, events)  # exact identity: no tolerance
    assert not outcome.passed and outcome.violations == 1
    assert outcome.first_violations[0]["switch"].startswith("2024-03-10T00:00")
    assert outcome.first_violations[0]["reason"] == "gap has the wrong sign"
    unadjusted = continuous.append_column("adjusted_price", continuous["price"])
    assert roll_continuity(unadjusted, continuous, events).passed is False
