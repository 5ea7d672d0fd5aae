"""The per-product calendar against pandas_market_calendars' own schedule (rebuilt here with plain loops) and
against CME facts written out by hand: trade dates, segments, holiday halts and early closes, 2024 and 2025."""

from __future__ import annotations

import bisect
import datetime as dt
import time

import pandas_market_calendars as mcal
import pytest

from hdi_core.calendar import CHICAGO, NS, calendar_sessions
from hdi_core.errors import HdiError

CALENDAR_OF = {"ES": "CME Globex Equity", "NQ": "CME Globex Equity", "GC": "CMEGlobex_GC", "ZB": "CBOT_Bond",
               "ZC": "CMEGlobex_Grains"}
YEARS = (2024, 2025)
# CME's equity early closes at 12:15 CT, written out by hand (a fact the schedule must match).
EQUITY_EARLY_CLOSE_1215 = {dt.date(2024, 7, 3), dt.date(2024, 11, 29), dt.date(2024, 12, 24),
                           dt.date(2025, 7, 3), dt.date(2025, 11, 28), dt.date(2025, 12, 24)}


def ct(y: int, m: int, d: int, hh: int, mm: int = 0) -> int:
    return int(dt.datetime(y, m, d, hh, mm, tzinfo=CHICAGO).timestamp()) * NS


def local(ns: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ns / NS, CHICAGO)


def year_range(year: int) -> tuple[int, int]:
    return ct(year, 1, 1, 0), ct(year + 1, 1, 1, 0)


def expected_segments(calendar: str, year: int) -> list[tuple[int, int, dt.date]]:
    """The library's schedule, one loop over its rows: a break splits a row; a holiday row's trade date is the
    next CME_TradeDate day."""
    cal = mcal.get_calendar(calendar)
    sched = cal.schedule(dt.date(year - 1, 12, 1), dt.date(year + 1, 1, 31))
    trade_days = [d.date() for d in mcal.get_calendar("CME_TradeDate").valid_days(dt.date(year - 1, 12, 1),
                                                                                  dt.date(year + 1, 2, 28))]
    out = []
    for label, row in sched.iterrows():
        day = label.date()
        trade_date = trade_days[bisect.bisect_left(trade_days, day)]
        opens, closes = int(row["market_open"].value), int(row["market_close"].value)
        b0, b1 = row.get("break_start"), row.get("break_end")
        if b0 is not None and b1 is not None and b0 == b0 and b0.value < b1.value:
            out += [(opens, int(b0.value), trade_date), (int(b1.value), closes, trade_date)]
        else:
            out.append((opens, closes, trade_date))
    start, end = year_range(year)
    return [s for s in out if s[1] > start and s[0] < end]


@pytest.mark.parametrize("year", YEARS)
@pytest.mark.parametrize("calendar", sorted(set(CALENDAR_OF.values())))
def test_segments_match_the_library_schedule(calendar: str, year: int) -> None:
    s = calendar_sessions(calendar, *year_range(year))
    got = [(int(o), int(c), d.astype(dt.date)) for o, c, d in zip(s.open_ns, s.close_ns, s.trade_date, strict=True)]
    assert got == expected_segments(calendar, year)
    assert (s.open_ns[1:] >= s.close_ns[:-1]).all()  # sorted, never overlapping
    assert (s.trade_date[1:] >= s.trade_date[:-1]).all()


@pytest.mark.parametrize("year", YEARS)
@pytest.mark.parametrize("calendar", sorted(set(CALENDAR_OF.values())))
def test_trade_dates_are_cme_trade_dates(calendar: str, year: int) -> None:
    cme = {d.date() for d in mcal.get_calendar("CME_TradeDate").valid_days(f"{year}-01-01", f"{year}-12-31")}
    s = calendar_sessions(calendar, ct(year, 1, 2, 18), ct(year, 12, 31, 0))
    days = {d.astype(dt.date) for d in s.trade_date}
    assert days <= cme | {dt.date(year, 12, 31)}
    assert len(cme - days) <= 3  # grains close on Good Friday-like days the equity calendar trades


def test_equity_facts_2024_2025() -> None:
    s = calendar_sessions("CME Globex Equity", ct(2024, 1, 1, 0), ct(2026, 1, 1, 0))
    rows = {(local(int(o)), local(int(c))): d.astype(dt.date) for o, c, d in zip(s.open_ns, s.close_ns, s.trade_date,
                                                                                strict=True)}
    by_close = {c: (o, d) for (o, c), d in rows.items()}
    days = set(rows.values())
    # a regular day: 17:00 CT the evening before to 16:00 CT
    assert by_close[local(ct(2024, 3, 6, 16))] == (local(ct(2024, 3, 5, 17)), dt.date(2024, 3, 6))
    # MLK: Sunday 17:00 -> Monday 12:00 halt, trading that belongs to Tuesday 2024-01-16
    assert by_close[local(ct(2024, 1, 15, 12))] == (local(ct(2024, 1, 14, 17)), dt.date(2024, 1, 16))
    assert dt.date(2024, 1, 15) not in days
    assert by_close[local(ct(2024, 1, 16, 16))] == (local(ct(2024, 1, 15, 17)), dt.date(2024, 1, 16))
    for day in EQUITY_EARLY_CLOSE_1215:  # early closes 12:15 CT
        assert local(ct(day.year, day.month, day.day, 12, 15)) in by_close
    # Christmas: no trading from the 12-24 early close until 12-25 17:00 CT, and 12-25 is no trade date
    assert dt.date(2024, 12, 25) not in days
    assert not any(o < local(ct(2024, 12, 25, 17)) < c for (o, c) in rows)


def test_comex_gold_mlk_halt_1330() -> None:
    s = calendar_sessions("CMEGlobex_GC", ct(2024, 1, 12, 0), ct(2024, 1, 17, 0))
    closes = [local(int(c)) for c in s.close_ns]
    assert local(ct(2024, 1, 15, 13, 30)) in closes
    k = closes.index(local(ct(2024, 1, 15, 13, 30)))
    assert s.trade_date[k].astype(dt.date) == dt.date(2024, 1, 16)


def test_corn_has_two_segments_per_trade_date() -> None:
    s = calendar_sessions("CMEGlobex_Grains", ct(2024, 3, 4, 0), ct(2024, 3, 9, 0))
    segs = [(local(int(o)).time(), local(int(c)).time(), d.astype(dt.date))
            for o, c, d in zip(s.open_ns, s.close_ns, s.trade_date, strict=True)]
    for day in (4, 5, 6, 7, 8):
        mine = [(o, c) for o, c, d in segs if d == dt.date(2024, 3, day)]
        assert mine == [(dt.time(19, 0), dt.time(7, 45)), (dt.time(8, 30), dt.time(13, 20))]


def test_schedules_are_cached() -> None:
    calendar_sessions("CBOT_Bond", *year_range(2024))
    start = time.perf_counter()
    for _ in range(200):
        calendar_sessions("CBOT_Bond", ct(2024, 5, 1, 0), ct(2024, 5, 8, 0))
    assert time.perf_counter() - start < 1.0


def test_bad_override_is_refused_naming_file_and_field(tmp_path, monkeypatch) -> None:
    bad = 'CBOT_Bond:\n  "2024-05-01": {close: "12:00", source: x, closes: y}\n'
    (tmp_path / "calendar_overrides.yaml").write_text(bad)
    monkeypatch.setenv("HDI_CONFIG_DIR", str(tmp_path))
    with pytest.raises(HdiError, match=r"calendar_overrides.yaml: CBOT_Bond.2024-05-01.closes: Extra inputs"):
        calendar_sessions("CBOT_Bond", ct(2024, 5, 1, 0), ct(2024, 5, 8, 0))


def test_override_moves_a_close(tmp_path, monkeypatch) -> None:
    (tmp_path / "calendar_overrides.yaml").write_text(
        'CBOT_Bond:\n  "2024-05-01": {close: "11:00", source: "test"}\n')
    monkeypatch.setenv("HDI_CONFIG_DIR", str(tmp_path))
    s = calendar_sessions("CBOT_Bond", ct(2024, 5, 1, 0), ct(2024, 5, 2, 0))
    assert ct(2024, 5, 1, 11) in s.close_ns.tolist()
    assert bool(s.early_close[s.close_ns.tolist().index(ct(2024, 5, 1, 11))])


@pytest.mark.parametrize(("calendar", "halt"), [("CME Globex Equity", (12, 0)), ("CMEGlobex_GC", (13, 30)),
                                                ("CBOT_Bond", (12, 0)), ("CMEGlobex_Grains", None)])
def test_mlk_2025_per_product(calendar: str, halt: tuple[int, int] | None) -> None:
    """MLK Monday 2025-01-20 is no trade date; a holiday session (if any) halts early and belongs to 01-21."""
    s = calendar_sessions(calendar, ct(2025, 1, 17, 0), ct(2025, 1, 22, 0))
    days = [d.astype(dt.date) for d in s.trade_date]
    assert dt.date(2025, 1, 20) not in days
    closes = [int(c) for c in s.close_ns]
    if halt is None:  # grains do not trade on MLK day at all
        assert not any(int(o) < ct(2025, 1, 20, 10) < int(c) for o, c in zip(s.open_ns, s.close_ns, strict=True))
    else:
        k = closes.index(ct(2025, 1, 20, *halt))
        assert days[k] == dt.date(2025, 1, 21) and int(s.open_ns[k]) == ct(2025, 1, 19, 17)
