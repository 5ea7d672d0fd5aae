"""Roll switches and same-moment gap measurement, including a roll across a weekend move."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from hdi_core.calendar import CHICAGO, NS, calendar_sessions
from hdi_core.continuous.rolls import (
    SWITCH_SCHEMA,
    MissingPriceError,
    gaps_from_last_trades,
    gaps_from_settlements,
    roll_events,
    settlements_from_statistics,
    switch_at,
    switches_from_mappings,
)
from hdi_core.errors import HdiError

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
            "sessions": calendar_sessions("CME Globex Equity", ct(2024, 3, 4, 0), ct(2024, 3, 16, 0))}


def test_switches_from_mappings() -> None:
    sw = switches_from_mappings(weekend_roll()["mappings"])
    assert sw.to_pylist() == [{"switch_ns": ct(2024, 3, 9, 18), "old_instrument_id": OLD, "new_instrument_id": NEW,
                               "databento_switch_ns": ct(2024, 3, 9, 18)}]  # 00:00 UTC Sunday = Saturday 18:00 CST
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
    # the combined path prefers settlements (an earlier date both have is fine) and falls back per roll
    earlier = roll_events(sw, m["sessions"], m["settlements"].slice(0, 2), table, table).to_pylist()[0]
    assert (earlier["method"], earlier["reference_trade_date"]) == ("settlement", dt.date(2024, 3, 7))
    both = roll_events(sw, m["sessions"], m["settlements"].slice(0, 1), table, table)
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
    assert out["final"].to_pylist() == [False, True, True]


def test_preliminary_settlements_do_not_price_a_roll() -> None:
    """Friday 03-08 has only a preliminary settlement of the new contract: the roll uses Thursday's finals."""
    m = weekend_roll()
    settle = m["settlements"].append_column("final", pa.array([True, True, True, False]))
    ev = gaps_from_settlements(switches_from_mappings(m["mappings"]), settle, m["sessions"]).to_pylist()[0]
    assert (ev["reference_trade_date"], ev["roll_gap"]) == (dt.date(2024, 3, 7), px(5120) - px(5080))


# --- rolls around holidays: hand-built settlement tables, expected dates worked out by hand ---------------------
# CME 2024 (and 2023-12-29) days without a trade date of their own, from CME Group's 2024 holiday calendar.
HOLIDAYS = {dt.date(2024, 1, 1), dt.date(2024, 1, 15), dt.date(2024, 2, 19), dt.date(2024, 3, 29),
            dt.date(2024, 5, 27), dt.date(2024, 6, 19), dt.date(2024, 7, 4), dt.date(2024, 9, 2),
            dt.date(2024, 11, 28), dt.date(2024, 12, 25)}
# switch date (00:00 UTC, Databento's mapping boundary) -> last trade date before it, by hand
EXPECTED_SETTLEMENT_DATE = {
    "2024-01-02": "2023-12-29", "2024-01-16": "2024-01-12", "2024-02-20": "2024-02-16",
    "2024-03-30": "2024-03-28", "2024-03-31": "2024-03-28", "2024-04-01": "2024-03-28",
    "2024-05-28": "2024-05-24", "2024-06-20": "2024-06-18", "2024-07-05": "2024-07-03",
    "2024-09-03": "2024-08-30", "2024-11-29": "2024-11-27", "2024-12-26": "2024-12-24",
}


def _hand_trade_dates(first: dt.date, last: dt.date) -> list[dt.date]:
    days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    return [d for d in days if d.weekday() < 5 and d not in HOLIDAYS]


def _hand_settlements(switch: dt.date, skip: set[tuple[int, dt.date]] = frozenset()) -> pa.Table:
    """Old and new settle every trade date two weeks around the switch; the price encodes the date."""
    rows = [(iid, d, px(5000 + d.toordinal() % 1000 + (40 if iid == NEW else 0)))
            for d in _hand_trade_dates(switch - dt.timedelta(days=14), switch + dt.timedelta(days=5))
            for iid in (OLD, NEW) if (iid, d) not in skip]
    return pa.table({"instrument_id": pa.array([r[0] for r in rows], pa.int64()),
                     "trade_date": pa.array([r[1] for r in rows], pa.date32()),
                     "price": pa.array([r[2] for r in rows], pa.int64())})


def _switch(day: dt.date) -> pa.Table:
    prev = (day - dt.timedelta(days=3)).isoformat()
    return switches_from_mappings([(prev, day.isoformat(), OLD), (day.isoformat(), (day + dt.timedelta(days=9))
                                                                  .isoformat(), NEW)])


@pytest.mark.parametrize("calendar", ["CME Globex Equity", "CMEGlobex_GC", "CBOT_Bond", "CMEGlobex_Grains"])
@pytest.mark.parametrize("switch_day", sorted(EXPECTED_SETTLEMENT_DATE))
def test_holiday_rolls_use_both_settlements_of_the_same_trade_date(calendar: str, switch_day: str) -> None:
    day = dt.date.fromisoformat(switch_day)
    expected = dt.date.fromisoformat(EXPECTED_SETTLEMENT_DATE[switch_day])
    sessions = calendar_sessions(calendar, ct(day.year, day.month, 1, 0) - 20 * 86_400 * NS, ct(2025, 1, 10, 0))
    ev = gaps_from_settlements(_switch(day), _hand_settlements(day), sessions).to_pylist()[0]
    assert (ev["method"], ev["reference_trade_date"]) == ("settlement", expected)
    assert ev["roll_gap"] == px(40)  # both prices from one date: only the 40-point spread, no overnight move
    # the new contract lacks that date's settlement: both come from the trade date before
    ev = gaps_from_settlements(_switch(day), _hand_settlements(day, {(NEW, expected)}), sessions).to_pylist()[0]
    earlier = max(d for d in _hand_trade_dates(expected - dt.timedelta(days=7), expected) if d < expected)
    assert ev["reference_trade_date"] == earlier and ev["roll_gap"] == px(40)


def test_roll_without_same_moment_prices_names_dates_tried() -> None:
    day = dt.date(2024, 1, 16)
    sessions = calendar_sessions("CME Globex Equity", ct(2023, 12, 20, 0), ct(2024, 1, 31, 0))
    only_old = _hand_settlements(day, {(NEW, d) for d in _hand_trade_dates(dt.date(2023, 12, 1), day)})
    with pytest.raises(MissingPriceError, match=r"roll at 2024-01-16T00:00:00.*2024-01-12 new missing"):
        gaps_from_settlements(_switch(day), only_old, sessions)
    none = ticks([(ct(2024, 1, 12, 10), 4800.0, OLD)])
    with pytest.raises(MissingPriceError, match=r"segments 2024-01-16 .*2024-01-12"):
        roll_events(_switch(day), sessions, only_old, none, none)


def test_last_trades_fallback_reaches_back_over_the_holiday_session() -> None:
    """MLK 2024: the holiday session (halt 12:00 CT, trade date 01-16) has trades of the old contract only, so
    the fallback walks back to Friday 01-12's final minutes where both traded."""
    day = dt.date(2024, 1, 16)
    sessions = calendar_sessions("CME Globex Equity", ct(2024, 1, 1, 0), ct(2024, 1, 31, 0))
    rows = [(ct(2024, 1, 15, 11, 50), 4800.0, OLD),
            (ct(2024, 1, 12, 15, 58, 10), 4790.0, OLD), (ct(2024, 1, 12, 15, 58, 40), 4831.0, NEW)]
    table = ticks(rows)
    ev = gaps_from_last_trades(_switch(day), table, table, sessions=sessions).to_pylist()[0]
    assert ev["reference_trade_date"] == dt.date(2024, 1, 12) and ev["reference_ns"] == ct(2024, 1, 12, 15, 58)
    assert ev["roll_gap"] == px(4831) - px(4790)


def utc_midnight(day: str) -> int:
    return int(dt.datetime.fromisoformat(f"{day}T00:00:00+00:00").timestamp()) * NS


def test_the_switch_moves_to_the_open_of_the_trade_date_databento_switches_in() -> None:
    sessions = calendar_sessions("CME Globex Equity", ct(2024, 1, 1, 0), ct(2024, 7, 1, 0))
    # (Databento's 00:00 UTC switch, the first open of its trade date): a weekday switch lands an hour or two
    # into the evening session; a Saturday-evening one (Sunday 00:00 UTC) moves to the Sunday open; after a
    # holiday (MLK 01-15, Juneteenth 06-19) the trade date opens with the holiday session the day before.
    cases = [(utc_midnight("2024-03-12"), ct(2024, 3, 11, 17)), (utc_midnight("2024-03-10"), ct(2024, 3, 10, 17)),
             (utc_midnight("2024-01-16"), ct(2024, 1, 14, 17)), (utc_midnight("2024-06-20"), ct(2024, 6, 18, 17))]
    for databento_ns, expected_open in cases:
        switches = pa.table({"switch_ns": [databento_ns], "old_instrument_id": [OLD], "new_instrument_id": [NEW],
                             "databento_switch_ns": [databento_ns]}, schema=SWITCH_SCHEMA)
        moved = switch_at(switches, sessions, "trade_date_open").to_pylist()[0]
        assert (moved["switch_ns"], moved["databento_switch_ns"]) == (expected_open, databento_ns)
        assert switch_at(switches, sessions, "databento").to_pylist()[0]["switch_ns"] == databento_ns
