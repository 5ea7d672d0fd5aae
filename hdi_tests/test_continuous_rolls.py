"""Roll switches and same-moment gap measurement, including a roll across a weekend move."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from hdi_core.continuous.rolls import (
    MissingPriceError,
    gaps_from_last_trades,
    gaps_from_settlements,
    roll_events,
    settlements_from_statistics,
    switches_from_mappings,
)
from hdi_core.errors import HdiError
from hdi_core.sessions import CHICAGO, NS, globex_sessions

OLD, NEW = 1001, 2002


def ct(y: int, m: int, d: int, hh: int, mm: int = 0, ss: float = 0.0) -> int:
    base = dt.datetime(y, m, d, hh, mm, tzinfo=CHICAGO)
    return int(base.timestamp()) * NS + int(round(ss * NS))


def px(x: float) -> int:
    return int(round(x * 4)) * 250_000_000


def ticks(rows: list[tuple[int, float, int]]) -> pa.Table:
    rows = sorted(rows)
    return pa.table({"ts_event": pa.array([r[0] for r in rows], pa.int64()),
                     "price": pa.array([px(r[1]) for r in rows], pa.int64()),
                     "size": pa.array([1] * len(rows), pa.int64()),
                     "instrument_id": pa.array([r[2] for r in rows], pa.int64()),
                     "raw_symbol": pa.array(["ESH4" if r[2] == OLD else "ESM4" for r in rows])})


def weekend_roll() -> dict:
    """ESH4 -> ESM4 switching Sunday 2024-03-10 00:00 UTC: the old contract's last tick is Friday 15:59 CT,
    the new one's first in the continuous stream Sunday 17:00 CT after a 50-point weekend rally."""
    mappings = [("2024-03-04", "2024-03-05", OLD), ("2024-03-05", "2024-03-10", str(OLD)),
                ("2024-03-10", "2024-03-17", str(NEW))]
    settle = pa.table({"instrument_id": pa.array([OLD, NEW, OLD, NEW], pa.int64()),
                       "trade_date": pa.array([dt.date(2024, 3, 7)] * 2 + [dt.date(2024, 3, 8)] * 2,
                                              pa.date32()),
                       "price": pa.array([px(5080), px(5120), px(5100), px(5150)], pa.int64())})
    continuous = ticks([(ct(2024, 3, 8, 15, 58), 5100.0, OLD), (ct(2024, 3, 8, 15, 59), 5100.25, OLD),
                        (ct(2024, 3, 10, 17, 0), 5200.0, NEW), (ct(2024, 3, 10, 17, 1), 5201.0, NEW)])
    return {"mappings": mappings, "settlements": settle, "continuous": continuous,
            "sessions": globex_sessions(ct(2024, 3, 4, 0), ct(2024, 3, 16, 0))}


def test_switches_from_mappings() -> None:
    sw = switches_from_mappings(weekend_roll()["mappings"])
    assert sw.to_pylist() == [{"switch_ns": ct(2024, 3, 9, 18), "old_instrument_id": OLD,
                               "new_instrument_id": NEW}]  # 00:00 UTC Sunday = Saturday 18:00 CST
    assert switches_from_mappings([("2024-01-01", "2024-02-01", 5)]).num_rows == 0
    with pytest.raises(HdiError, match="overlap"):
        switches_from_mappings([("2024-01-01", "2024-02-01", 5), ("2024-01-15", "2024-03-01", 6)])


def test_weekend_roll_gap_is_the_same_moment_settlement_difference() -> None:
    m = weekend_roll()
    sw = switches_from_mappings(m["mappings"])
    ev = gaps_from_settlements(sw, m["settlements"], m["sessions"]).to_pylist()[0]
    assert ev["method"] == "settlement" and ev["reference_trade_date"] == dt.date(2024, 3, 8)
    assert ev["roll_gap"] == px(5150) - px(5100) == px(50)
    last_vs_first = px(5200) - px(5100.25)  # the seed's measure: bakes the weekend move into history
    assert ev["roll_gap"] != last_vs_first
    assert ev["reference_ns"] == ct(2024, 3, 8, 16)
    with_symbols = roll_events(sw, m["sessions"], m["settlements"], m["continuous"], m["continuous"])
    assert with_symbols["old_raw_symbol"].to_pylist() == ["ESH4"]
    assert with_symbols["new_raw_symbol"].to_pylist() == ["ESM4"]


def _loop_last_trades(rows: list[tuple[int, float, int]], end: int, window: int) -> tuple[int, float, float]:
    start = end - window
    last: dict[tuple[int, int], float] = {}
    for t, p, i in sorted(rows):
        if start <= t < end:
            last[(i, (t - start) // (60 * NS))] = p
    common = [m for (i, m) in last if i == OLD and (NEW, m) in last]
    m = max(common)
    return start + m * 60 * NS, last[(OLD, m)], last[(NEW, m)]


def test_last_trades_fallback_uses_the_last_minute_both_traded() -> None:
    m = weekend_roll()
    rng = np.random.default_rng(3)
    rows = []
    for minute in range(-40, 0):  # the 40 minutes before Friday's 16:00 close, plus a halted-hours stray
        base = ct(2024, 3, 8, 16) + minute * 60 * NS
        if rng.random() < 0.8:
            rows.append((base + int(rng.integers(0, 60 * NS)), 5100 + minute * 0.25, OLD))
        if minute % 3 == 0:
            rows.append((base + int(rng.integers(0, 60 * NS)), 5150 + minute * 0.25, NEW))
    rows.append((ct(2024, 3, 8, 16, 30), 5199.0, NEW))  # after the close: not the same session
    sw = switches_from_mappings(m["mappings"])
    table = ticks(rows)
    ev = gaps_from_last_trades(sw, table, table, sessions=m["sessions"]).to_pylist()[0]
    ref_ns, old_p, new_p = _loop_last_trades(rows, ct(2024, 3, 8, 16), 30 * 60 * NS)
    assert ev["method"] == "last_trades" and ev["reference_ns"] == ref_ns
    assert (ev["old_price"], ev["new_price"]) == (px(old_p), px(new_p))
    assert ev["roll_gap"] == px(new_p) - px(old_p)
    # the combined path prefers settlements and falls back per roll
    both = roll_events(sw, m["sessions"], m["settlements"].slice(0, 2), table, table)
    assert both["method"].to_pylist() == ["last_trades"]


def test_missing_prices_name_the_roll() -> None:
    m = weekend_roll()
    sw = switches_from_mappings(m["mappings"])
    only_old = m["settlements"].filter(pa.compute.equal(m["settlements"]["instrument_id"], OLD))
    with pytest.raises(MissingPriceError, match=r"roll at 2024-03-10T00:00:00.*1001 \(\?\) to 2002"):
        gaps_from_settlements(sw, only_old, m["sessions"])
    empty = ticks([(ct(2024, 3, 8, 10), 5100.0, OLD)])
    with pytest.raises(HdiError, match="no last_trades prices"):
        gaps_from_last_trades(sw, empty, empty, sessions=m["sessions"])


def test_settlements_from_statistics_prefers_final() -> None:
    ref = ct(2024, 3, 8, 0) // (86_400 * NS) * 86_400 * NS
    stats = pa.table({"instrument_id": [OLD, OLD, OLD, NEW], "stat_type": [3, 3, 9, 3],
                      "price": [px(5099), px(5100), px(1), px(5150)], "ts_ref": [ref] * 4,
                      "stat_flags": [1, 0, 0, 1], "update_action": [1, 1, 1, 1],
                      "ts_recv": [3, 1, 2, 4]})
    out = settlements_from_statistics(stats)
    lookup = {(r["instrument_id"], r["trade_date"]): r["price"] for r in out.to_pylist()}
    assert lookup == {(OLD, dt.date(2024, 3, 8)): px(5099), (NEW, dt.date(2024, 3, 8)): px(5150)}
