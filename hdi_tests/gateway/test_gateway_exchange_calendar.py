"""The synthetic market follows the exchange (pandas_market_calendars), not HDI: holiday halts, closed days,
early closes, corn's two segments, CME trade dates and their settlements, for 2024 and 2025."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from exchange_oracle import cme_trade_dates, schedule, trade_date_of

from hdi_gateway.synthetic import DATASET, TEST_TICKS_PER_SESSION, SyntheticMarket, product_contracts

NS = 1_000_000_000
CHICAGO = ZoneInfo("America/Chicago")
FIRST, LAST = "2024-01-01", "2025-12-31"


def ct_ns(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    return int(dt.datetime(year, month, day, hour, minute, tzinfo=CHICAGO).timestamp()) * NS


@pytest.fixture(scope="module")
def market() -> SyntheticMarket:
    return SyntheticMarket(seed=7, ticks_per_session=TEST_TICKS_PER_SESSION)


def product_records(market: SyntheticMarket, root: str, schema: str, start_ns: int, end_ns: int) -> np.ndarray:
    return market.records(DATASET, schema, product_contracts(root).instrument_id, start_ns, end_ns)


@pytest.fixture(scope="module")
def es_trades(market: SyntheticMarket) -> np.ndarray:
    return product_records(market, "ES", "trades", ct_ns(2023, 12, 29), ct_ns(2026, 1, 1))


def in_window(ts: np.ndarray, start_ns: int, end_ns: int) -> np.ndarray:
    return ts[(ts >= start_ns) & (ts < end_ns)]


def test_es_trades_only_inside_the_library_sessions(es_trades: np.ndarray) -> None:
    ts = es_trades["ts_event"].astype(np.int64)
    assert not np.isnat(trade_date_of("ES", ts, "2023-12-20", "2026-01-10")).any()
    # every library session is traded, so closed days and early halts are the only silences
    rows = schedule("ES", FIRST, LAST)
    opens, closes = rows["open_ns"].to_numpy(), rows["close_ns"].to_numpy()
    counts = np.searchsorted(ts, closes) - np.searchsorted(ts, opens)
    assert (counts > 0).all()


@pytest.mark.parametrize("closed", [dt.date(2024, 1, 1), dt.date(2024, 12, 25), dt.date(2025, 1, 1),
                                    dt.date(2025, 12, 25)])
def test_es_is_silent_on_closed_days(es_trades: np.ndarray, closed: dt.date) -> None:
    assert np.datetime64(closed) not in schedule("ES", FIRST, LAST)["day"].to_numpy()
    ts = es_trades["ts_event"].astype(np.int64)
    # from the previous evening's would-be open to the next session's open, nothing trades
    day_before = closed - dt.timedelta(days=1)
    assert len(in_window(ts, ct_ns(day_before.year, day_before.month, day_before.day, 17),
                         ct_ns(closed.year, closed.month, closed.day, 17))) == 0


def test_es_good_friday_follows_the_library(market: SyntheticMarket, es_trades: np.ndarray) -> None:
    """2024-03-29: the library has ES trading until 08:15 CT (CME's abbreviated Good Friday session); GC closed."""
    rows = schedule("ES", FIRST, LAST).set_index("day")
    close = int(rows.loc[np.datetime64("2024-03-29"), "close_ns"])
    assert close == ct_ns(2024, 3, 29, 8, 15)
    ts = es_trades["ts_event"].astype(np.int64)
    assert len(in_window(ts, close, ct_ns(2024, 3, 31, 17))) == 0
    assert len(in_window(ts, ct_ns(2024, 3, 29, 7), close)) > 0
    assert np.datetime64("2024-03-29") not in schedule("GC", FIRST, LAST)["day"].to_numpy()
    gc = product_records(market, "GC", "trades", ct_ns(2024, 3, 28, 16), ct_ns(2024, 3, 31, 17))
    assert len(gc) == 0


@pytest.mark.parametrize("day,halt", [(dt.date(2024, 1, 15), (12, 0)), (dt.date(2025, 1, 20), (12, 0)),
                                      (dt.date(2024, 7, 3), (12, 15)), (dt.date(2024, 11, 29), (12, 15)),
                                      (dt.date(2024, 12, 24), (12, 15)), (dt.date(2025, 7, 3), (12, 15))])
def test_es_holiday_halts_and_early_closes(es_trades: np.ndarray, day: dt.date, halt: tuple[int, int]) -> None:
    close = ct_ns(day.year, day.month, day.day, *halt)
    rows = schedule("ES", FIRST, LAST).set_index("day")
    assert int(rows.loc[np.datetime64(day), "close_ns"]) == close, "the library's halt"
    ts = es_trades["ts_event"].astype(np.int64)
    assert len(in_window(ts, close - 3600 * NS, close)) > 0, "trades up to the halt"
    assert len(in_window(ts, close, ct_ns(day.year, day.month, day.day, 17))) == 0, "silent after the halt"


def test_settlements_exist_exactly_for_the_library_trade_dates(market: SyntheticMarket) -> None:
    stats = product_records(market, "ES", "statistics", ct_ns(2024, 1, 1), ct_ns(2026, 1, 1))
    settle = stats[stats["stat_type"] == 3]
    final = settle[(settle["stat_flags"] & 1) == 1]
    preliminary = settle[(settle["stat_flags"] & 1) == 0]
    dates = np.unique(final["ts_ref"].astype("datetime64[ns]").astype("datetime64[D]"))
    rows = schedule("ES", "2023-12-20", "2026-01-10")
    expected = np.unique(trade_date_of("ES", rows["close_ns"].to_numpy() - 1, "2023-12-20", "2026-01-10"))
    expected = expected[(expected >= np.datetime64("2024-01-02")) & (expected <= np.datetime64("2025-12-31"))]
    assert np.array_equal(dates, expected)
    assert np.isin(dates, cme_trade_dates(FIRST, LAST)).all()
    for not_a_trade_date in ("2024-01-15", "2024-03-29", "2024-06-19", "2024-07-04", "2024-11-28", "2025-01-20"):
        assert np.datetime64(not_a_trade_date) not in dates
    assert np.datetime64("2024-01-16") in dates and np.datetime64("2024-07-03") in dates
    # one preliminary and one final per contract and trade date; the final one is published after the close
    assert len(preliminary) == len(final)
    day_ns = 86_400 * NS
    final_day = final["ts_recv"].astype(np.int64) // day_ns
    assert (final_day > final["ts_ref"].astype(np.int64) // day_ns).any(), "some finals arrive the next UTC day"


def test_a_holiday_session_trades_for_the_next_trade_date(market: SyntheticMarket, es_trades: np.ndarray) -> None:
    """MLK Monday 2024-01-15: its trading (Sun 17:00 - Mon 12:00 CT) is part of trade date 2024-01-16."""
    daily = market.daily_stats(DATASET, dt.date(2024, 1, 12), dt.date(2024, 1, 18))
    es = daily[daily["instrument_id"] // 10_000 == 1]
    assert dt.date(2024, 1, 15) not in set(es["date"])
    ts = es_trades["ts_event"].astype(np.int64)
    sel = (ts >= ct_ns(2024, 1, 14, 17)) & (ts < ct_ns(2024, 1, 16, 16))
    assert int(es_trades["size"][sel].astype(np.int64).sum()) == int(es[es["date"] == dt.date(2024, 1, 16)][
        "volume"].sum())
    assert np.all(trade_date_of("ES", ts[sel]) == np.datetime64("2024-01-16"))


def test_corn_trades_two_segments_and_never_in_the_break(market: SyntheticMarket) -> None:
    trades = product_records(market, "ZC", "trades", ct_ns(2024, 1, 1), ct_ns(2024, 7, 1))
    ts = trades["ts_event"].astype(np.int64)
    local = pd.to_datetime(ts, utc=True).tz_convert(CHICAGO)
    minutes = np.asarray(local.hour * 60 + local.minute)
    assert not ((minutes >= 7 * 60 + 45) & (minutes < 8 * 60 + 30)).any(), "trade in the 07:45-08:30 CT break"
    rows = schedule("ZC", "2024-01-01", "2024-06-30")
    assert (rows["break_start_ns"] < rows["break_end_ns"]).all(), "the library has the break"
    night = np.searchsorted(ts, rows["break_start_ns"]) - np.searchsorted(ts, rows["open_ns"])
    day = np.searchsorted(ts, rows["close_ns"]) - np.searchsorted(ts, rows["break_end_ns"])
    inside_break = np.searchsorted(ts, rows["break_end_ns"]) - np.searchsorted(ts, rows["break_start_ns"])
    assert (night > 0).all() and (day > 0).all() and (inside_break == 0).all()
    # grains are closed on MLK day: nothing from Friday's 13:20 close to Monday's 19:00 open
    assert len(in_window(ts, ct_ns(2024, 1, 12, 13, 20), ct_ns(2024, 1, 15, 19))) == 0
    assert not np.isnat(trade_date_of("ZC", ts)).any()


def test_the_gateway_does_not_load_hdis_calendar() -> None:
    code = ("import sys, hdi_gateway.synthetic, hdi_gateway.server; "
            "assert 'hdi_core.sessions' not in sys.modules, 'gateway imported HDI calendar'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_calendar_adapter_is_columnar_and_applies_the_trade_date_rule() -> None:
    from hdi_gateway import exchange_calendar as ec

    for name in ("CME Globex Equity", "CMEGlobex_Gold", "CBOT_Bond", "CMEGlobex_Grains"):
        seg = ec.segments(name)
        assert seg.open_ns.dtype == np.int64 and seg.trade_date.dtype == np.dtype("datetime64[D]")
        assert (seg.open_ns < seg.close_ns).all() and (seg.close_ns[:-1] <= seg.open_ns[1:]).all()
        assert np.isin(seg.trade_date, ec.cme_trade_dates()).all(), "every segment trades for a CME trade date"
    row = ec.trade_date_row("CME Globex Equity", dt.date(2024, 1, 16))
    opens, closes = ec.segment_bounds("CME Globex Equity", row)
    assert list(opens) == [ct_ns(2024, 1, 14, 17), ct_ns(2024, 1, 15, 17)]
    assert list(closes) == [ct_ns(2024, 1, 15, 12), ct_ns(2024, 1, 16, 16)]
    assert ec.trade_date_row("CME Globex Equity", dt.date(2024, 1, 15)) == -1
    row = ec.trade_date_row("CMEGlobex_Grains", dt.date(2024, 3, 5))
    opens, closes = ec.segment_bounds("CMEGlobex_Grains", row)
    assert list(opens) == [ct_ns(2024, 3, 4, 19), ct_ns(2024, 3, 5, 8, 30)]
    assert list(closes) == [ct_ns(2024, 3, 5, 7, 45), ct_ns(2024, 3, 5, 13, 20)]
