"""The synthetic GLBX.MDP3 market: determinism, exchange calendar, price and volume model, DBN layout.

Sessions and trade dates come from pandas_market_calendars (exchange_oracle), never from HDI's calendar.
"""

from __future__ import annotations

import datetime as dt

import databento as db
import databento_dbn as dbn
import numpy as np
import pandas as pd
import pytest
from exchange_oracle import cme_trade_dates, schedule, trade_date_of, trade_dates_by_product

from hdi_core.errors import HdiError
from hdi_gateway.synthetic import (
    DATASET,
    DEFAULT_TICKS_PER_SESSION,
    SCHEMAS_SERVED,
    TEST_TICKS_PER_SESSION,
    SyntheticMarket,
)

NS = 1_000_000_000
DAY = 86_400 * NS
TICK = {"ES": 250_000_000, "NQ": 250_000_000, "GC": 100_000_000, "ZB": 31_250_000, "ZC": 250_000_000}


def utc_ns(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    return int(dt.datetime(year, month, day, hour, minute, tzinfo=dt.UTC).timestamp()) * NS


# the June 2024 ES/NQ roll: ESM4 expires Friday 2024-06-21 13:30 UTC
WEEK_START, WEEK_END = utc_ns(2024, 6, 12), utc_ns(2024, 6, 24)


@pytest.fixture(scope="module")
def market() -> SyntheticMarket:
    return SyntheticMarket(seed=7, ticks_per_session=TEST_TICKS_PER_SESSION)


@pytest.fixture(scope="module")
def week_trades(market: SyntheticMarket) -> np.ndarray:
    return market.records(DATASET, "trades", None, WEEK_START, WEEK_END)


@pytest.fixture(scope="module")
def symbols(market: SyntheticMarket) -> dict[int, str]:
    return {i.instrument_id: i.raw_symbol for i in market.instruments(DATASET, WEEK_START, WEEK_END)}


def trade_dates(records: np.ndarray) -> np.ndarray:
    """The library's CME trade date of each trade; every trade must lie inside a library session."""
    dates = trade_dates_by_product(records["instrument_id"], records["ts_event"].astype(np.int64))
    assert not np.isnat(dates).any(), "trade outside the exchange calendar's sessions"
    return dates


def to_df(records: np.ndarray, schema: str) -> pd.DataFrame:
    meta = dbn.Metadata(dataset=DATASET, start=WEEK_START, end=WEEK_END, stype_in=dbn.SType.INSTRUMENT_ID,
                        stype_out=dbn.SType.INSTRUMENT_ID, schema=dbn.Schema.from_str(schema),
                        symbols=["ALL_SYMBOLS"])
    store = db.DBNStore.from_bytes(bytes(meta) + records.tobytes())
    return store.to_df(price_type="fixed", pretty_ts=False, map_symbols=False).reset_index()


def test_records_use_the_dbn_v3_layout(market: SyntheticMarket) -> None:
    classes = {"trades": dbn.v3.TradeMsg, "tbbo": dbn.v3.MBP1Msg, "ohlcv-1m": dbn.v3.OHLCVMsg,
               "statistics": dbn.v3.StatMsg, "definition": dbn.v3.InstrumentDefMsg}
    rtypes = {"trades": 0x00, "tbbo": 0x01, "ohlcv-1m": 0x21, "statistics": 0x18, "definition": 0x13}
    for schema, cls in classes.items():
        records = market.records(DATASET, schema, None, utc_ns(2024, 6, 13), utc_ns(2024, 6, 14))
        assert len(records) > 0, schema
        assert records.dtype == np.dtype(cls._dtypes), schema
        assert (records["length"].astype(int) * 4 == records.dtype.itemsize).all()
        assert (records["rtype"] == rtypes[schema]).all()
        assert (records["publisher_id"] == 1).all()


def test_same_seed_gives_identical_bytes_whatever_is_asked_first() -> None:
    first, second = (SyntheticMarket(7, TEST_TICKS_PER_SESSION) for _ in range(2))
    small_start, small_end = utc_ns(2024, 6, 18, 3), utc_ns(2024, 6, 18, 15)
    for schema in ("trades", "tbbo", "ohlcv-1m", "statistics", "definition"):
        whole = first.records(DATASET, schema, None, WEEK_START, WEEK_END)
        piece = second.records(DATASET, schema, None, small_start, small_end)
        again = second.records(DATASET, schema, None, WEEK_START, WEEK_END)
        assert whole.tobytes() == again.tobytes(), schema
        time_field = "ts_recv" if schema in ("statistics", "definition") else "ts_event"
        inside = (whole[time_field] >= small_start) & (whole[time_field] < small_end)
        assert whole[inside].tobytes() == piece.tobytes(), schema
    other = SyntheticMarket(8, TEST_TICKS_PER_SESSION).records(DATASET, "trades", None, small_start,
                                                               small_end)
    assert other.tobytes() != first.records(DATASET, "trades", None, small_start, small_end).tobytes()


def test_trades_happen_only_inside_globex_sessions(week_trades: np.ndarray) -> None:
    ts = week_trades["ts_event"].astype(np.int64)
    assert (np.diff(ts) >= 0).all()
    assert (week_trades["ts_recv"] > week_trades["ts_event"]).all()
    local = pd.to_datetime(ts, utc=True).tz_convert("America/Chicago")
    minutes = local.hour * 60 + local.minute
    weekday = local.weekday
    assert not (minutes // 60 == 16).any(), "trade inside the daily 16:00-17:00 CT halt"
    assert not (weekday == 5).any(), "trade on Saturday"
    assert not ((weekday == 4) & (minutes >= 16 * 60)).any(), "trade after the Friday close"
    assert not ((weekday == 6) & (minutes < 17 * 60)).any(), "trade before the Sunday open"
    assert (weekday == 6).any(), "the Sunday-evening open is traded"
    trade_dates(week_trades)
    assert set(np.unique(week_trades["action"])) == {b"T"}
    assert set(np.unique(week_trades["side"])) == {b"A", b"B"}


def test_prices_follow_the_contract_model(market: SyntheticMarket, week_trades: np.ndarray,
                                          symbols: dict[int, str]) -> None:
    ids = week_trades["instrument_id"]
    for iid in np.unique(ids):
        raw = symbols[int(iid)]
        rows = week_trades[ids == iid]
        assert (rows["price"] % TICK[raw[:2]] == 0).all()
        expected = market.contract_price(raw, rows["ts_event"].astype(np.int64))
        assert np.array_equal(rows["price"], expected), raw


def test_a_roll_has_a_same_moment_spread_equal_to_the_carry(market: SyntheticMarket,
                                                            week_trades: np.ndarray) -> None:
    front = week_trades[week_trades["instrument_id"] == 10294]  # ESM4
    nxt = week_trades[week_trades["instrument_id"] == 10297]  # ESU4
    same = np.intersect1d(front["ts_event"], nxt["ts_event"])
    assert len(same) > 100, "spread legs print both contracts at the same moment"
    front_px = pd.Series(front["price"], index=front["ts_event"]).groupby(level=0).first()[same]
    next_px = pd.Series(nxt["price"], index=nxt["ts_event"]).groupby(level=0).first()[same]
    spread_points = (next_px.to_numpy() - front_px.to_numpy()) / NS
    assert (spread_points > 5).all() and (spread_points < 60).all(), "ES carry ~10-40 points per quarter"
    fair = market.fair_price("ES", same.astype(np.int64))
    assert np.all(np.abs(spread_points - (market.contract_price("ESU4", same) - market.contract_price(
        "ESM4", same)) / NS) < 1e-9)
    assert (fair > 1000).all()


def test_the_daily_halt_creates_a_price_jump(market: SyntheticMarket) -> None:
    sessions = schedule("ES", "2024-06-03", "2024-06-28")
    last_second = market.fair_price("ES", sessions["close_ns"].to_numpy()[:-1] - NS)
    next_open = market.fair_price("ES", sessions["open_ns"].to_numpy()[1:])
    jumps = np.abs(next_open / last_second - 1)
    assert (jumps > 1e-5).mean() > 0.9
    assert (jumps < 0.1).all()


def test_volume_moves_from_front_to_next_over_the_roll_week(week_trades: np.ndarray) -> None:
    es = week_trades[(week_trades["instrument_id"] // 10_000) == 1]
    frame = pd.DataFrame({"date": trade_dates(es), "iid": es["instrument_id"],
                          "size": es["size"].astype(np.int64)})
    volume = frame.groupby(["date", "iid"])["size"].sum().unstack(fill_value=0)
    share_next = volume[10297] / (volume[10294] + volume[10297])
    roll = share_next.loc[np.datetime64("2024-06-13"):np.datetime64("2024-06-19")]
    assert (np.diff(roll.to_numpy()) > 0).all(), "the next month's share rises every session of the roll"
    leader = volume.idxmax(axis=1)
    assert leader[np.datetime64("2024-06-12")] == 10294
    assert leader[np.datetime64("2024-06-14")] == 10294
    assert leader[np.datetime64("2024-06-17")] == 10297, "the leader switches mid-week"
    assert leader[np.datetime64("2024-06-20")] == 10297


def test_daily_stats_equal_the_generated_trades_and_statistics(market: SyntheticMarket) -> None:
    daily = market.daily_stats(DATASET, dt.date(2024, 6, 12), dt.date(2024, 6, 22))
    sessions = schedule("ES", "2024-06-12", "2024-06-21")  # every product's trade dates 06-12..06-21 lie inside
    trades = market.records(DATASET, "trades", None, int(sessions["open_ns"].iloc[0]),
                            int(sessions["close_ns"].iloc[-1]))
    frame = pd.DataFrame({"date": trade_dates(trades).astype(object),
                          "instrument_id": trades["instrument_id"].astype(np.int64),
                          "size": trades["size"].astype(np.int64)})
    from_trades = frame.groupby(["date", "instrument_id"])["size"].sum()
    stated = daily.set_index(["date", "instrument_id"])["volume"]
    stated.index = stated.index.set_levels(stated.index.levels[1].astype(np.int64), level=1)
    assert set(from_trades.index) == set(stated.index)
    assert (from_trades.sort_index() == stated.sort_index()).all()

    stats = market.records(DATASET, "statistics", None, WEEK_START, WEEK_END)
    oi = stats[stats["stat_type"] == 9]
    ref_day = oi["ts_ref"].astype("datetime64[ns]").astype("datetime64[D]").astype(object)
    oi_frame = pd.DataFrame({"date": ref_day,
                             "instrument_id": oi["instrument_id"].astype(np.int64),
                             "oi": oi["quantity"]}).set_index(["date", "instrument_id"])["oi"]
    stated_oi = daily.set_index(["date", "instrument_id"])["open_interest"]
    stated_oi.index = stated_oi.index.set_levels(stated_oi.index.levels[1].astype(np.int64), level=1)
    assert (oi_frame.sort_index() == stated_oi.sort_index().loc[oi_frame.sort_index().index]).all()
    assert len(oi_frame) == len(stated_oi)


@pytest.mark.parametrize("schema,interval", [("ohlcv-1s", NS), ("ohlcv-1m", 60 * NS),
                                             ("ohlcv-1h", 3600 * NS), ("ohlcv-1d", DAY)])
def test_ohlcv_bars_are_built_from_the_trades(market: SyntheticMarket, schema: str, interval: int) -> None:
    start, end = utc_ns(2024, 6, 17), utc_ns(2024, 6, 19)
    bars = market.records(DATASET, schema, None, start, end)
    trades = market.records(DATASET, "trades", None, start, end)
    frame = pd.DataFrame({"bucket": trades["ts_event"].astype(np.int64) // interval * interval,
                          "iid": trades["instrument_id"], "price": trades["price"],
                          "size": trades["size"].astype(np.int64)})
    expected = frame.groupby(["bucket", "iid"], sort=True).agg(
        open=("price", "first"), high=("price", "max"), low=("price", "min"), close=("price", "last"),
        volume=("size", "sum")).reset_index()
    assert len(bars) == len(expected), "one bar per instrument per interval with trades, none without"
    assert np.array_equal(bars["ts_event"].astype(np.int64), expected["bucket"].to_numpy())
    assert np.array_equal(bars["instrument_id"], expected["iid"].to_numpy())
    for field in ("open", "high", "low", "close", "volume"):
        assert np.array_equal(bars[field].astype(np.int64), expected[field].to_numpy()), field
    # a bar starting before the query start is left out; later bars stay whole
    mid = start + interval // 2 if interval > NS else start + NS
    later = market.records(DATASET, schema, None, mid, end)
    assert (later["ts_event"] >= mid).all()
    assert later.tobytes() == bars[bars["ts_event"] >= mid].tobytes()


def test_tbbo_is_the_trade_with_the_book_before_it(market: SyntheticMarket) -> None:
    start, end = utc_ns(2024, 6, 17), utc_ns(2024, 6, 18)
    trades = market.records(DATASET, "trades", None, start, end)
    tbbo = market.records(DATASET, "tbbo", None, start, end)
    for field in ("instrument_id", "ts_event", "ts_recv", "price", "size", "side", "sequence"):
        assert np.array_equal(trades[field], tbbo[field]), field
    buy = tbbo["side"] == b"B"
    assert np.array_equal(tbbo["ask_px_00"][buy], tbbo["price"][buy])
    assert np.array_equal(tbbo["bid_px_00"][~buy], tbbo["price"][~buy])
    assert (tbbo["ask_px_00"] > tbbo["bid_px_00"]).all()
    assert (tbbo["ask_sz_00"][buy] >= tbbo["size"][buy]).all()
    assert (tbbo["bid_ct_00"] <= tbbo["bid_sz_00"]).all() and (tbbo["bid_ct_00"] >= 1).all()


def test_statistics_publish_settlement_and_open_interest_after_the_close(
        market: SyntheticMarket, symbols: dict[int, str]) -> None:
    stats = market.records(DATASET, "statistics", None, WEEK_START, WEEK_END)
    assert (np.diff(stats["ts_recv"].astype(np.int64)) >= 0).all()
    settle = stats[stats["stat_type"] == 3]
    oi = stats[stats["stat_type"] == 9]
    final = settle[(settle["stat_flags"] & 1) == 1]
    preliminary = settle[(settle["stat_flags"] & 1) == 0]
    assert len(final) == len(preliminary) == len(oi) > 0
    assert (settle["quantity"] == dbn.UNDEF_STAT_QUANTITY).all() and (oi["price"] == dbn.UNDEF_PRICE).all()
    assert (oi["quantity"] > 0).all()
    # the preliminary settlement and the open interest are published in the halt after the close
    for rows in (preliminary, oi):
        assert np.isnat(trade_dates_by_product(rows["instrument_id"], rows["ts_recv"].astype(np.int64))).all()
    key = ["instrument_id", "ts_ref"]
    assert np.array_equal(np.sort(preliminary[key]), np.sort(final[key]))
    order_p, order_f = np.lexsort((preliminary["ts_ref"], preliminary["instrument_id"])), np.lexsort(
        (final["ts_ref"], final["instrument_id"]))
    assert (final["ts_recv"][order_f] > preliminary["ts_recv"][order_p]).all(), "final after preliminary"
    assert np.array_equal(final["price"][order_f], preliminary["price"][order_p])
    # settlements only for the library's CME trade dates, at the close of the trade date's last session
    valid = cme_trade_dates("2024-06-01", "2024-06-30").astype("datetime64[ns]").astype(np.int64)
    assert np.isin(settle["ts_ref"].astype(np.int64), valid).all()
    expiration = {i.instrument_id: i.expiration_ns for i in market.instruments(DATASET, WEEK_START, WEEK_END)}
    for k in range(len(final)):
        iid, ts_ref = int(final["instrument_id"][k]), int(final["ts_ref"][k])
        s = schedule(symbols[iid][:2], "2024-06-01", "2024-06-30")
        day_of = trade_date_of(symbols[iid][:2], s["close_ns"].to_numpy() - 1, "2024-06-01", "2024-06-30")
        close = int(s["close_ns"].to_numpy()[day_of.astype("datetime64[ns]").astype(np.int64) == ts_ref].max())
        assert close < int(final["ts_recv"][k])
        # a contract expiring inside the session settles at its expiration, else at the close
        moment = min(close, expiration[iid] - 1)
        assert final["price"][k] == market.contract_price(symbols[iid], moment)[0]
    last = final[(final["instrument_id"] == 10294) & (final["ts_ref"] == utc_ns(2024, 6, 21))]
    assert last["price"][0] == market.contract_price("ESM4", utc_ns(2024, 6, 21, 13, 30) - 1)[0]


def test_definitions_describe_the_listed_contracts(market: SyntheticMarket) -> None:
    defs = market.records(DATASET, "definition", None, utc_ns(2024, 6, 16), utc_ns(2024, 6, 23))
    by_symbol = {}
    for row in defs:
        by_symbol.setdefault(row["raw_symbol"].decode(), row)
    assert {"ESM4", "ESU4", "ESZ4", "ESH5", "NQM4", "NQU4", "GCQ4", "GCV4"} <= set(by_symbol)
    assert by_symbol["ESM4"]["expiration"] == utc_ns(2024, 6, 21, 13, 30)
    assert by_symbol["ESZ4"]["expiration"] == utc_ns(2024, 12, 20, 14, 30)  # EST in December
    assert by_symbol["GCQ4"]["expiration"] == utc_ns(2024, 7, 29, 17, 30)  # 3rd-last business day of July
    assert by_symbol["ESM5"]["activation"] == utc_ns(2024, 6, 21, 13, 30)
    es, gc = by_symbol["ESU4"], by_symbol["GCQ4"]
    assert es["min_price_increment"] == 250_000_000 and gc["min_price_increment"] == 100_000_000
    assert es["unit_of_measure_qty"] == 50 * NS and gc["unit_of_measure_qty"] == 100 * NS
    assert by_symbol["NQU4"]["unit_of_measure_qty"] == 20 * NS
    assert es["exchange"] == b"XCME" and gc["exchange"] == b"XCEC"
    assert es["security_type"] == b"FUT" and es["instrument_class"] == b"F" and es["currency"] == b"USD"
    assert es["asset"] == b"ES" and es["strike_price"] == dbn.UNDEF_PRICE
    # one definition per listed contract per trade date, at the session open
    sessions = schedule("ES", "2024-06-17", "2024-06-21")
    at_open = np.isin(defs["ts_recv"].astype(np.int64) // NS * NS, sessions["open_ns"].to_numpy())
    es_rows = defs[(defs["instrument_id"] // 10_000 == 1) & at_open]
    # ESM4 ESU4 ESZ4 ESH5 at the first open of each trade date: 06-17, 06-18, 06-20 (from the Juneteenth
    # session that opens 06-18 17:00 CT), 06-21
    assert len(es_rows) == 4 * 4
    assert (np.diff(defs["ts_recv"].astype(np.int64)) >= 0).all()


def test_instrument_ids_are_stable_and_unique(market: SyntheticMarket) -> None:
    listed = market.instruments(DATASET, utc_ns(2019, 1, 1), utc_ns(2025, 1, 1))
    ids = [i.instrument_id for i in listed]
    assert len(ids) == len(set(ids))
    other = SyntheticMarket(seed=99).instruments(DATASET, utc_ns(2019, 1, 1), utc_ns(2025, 1, 1))
    assert [(i.instrument_id, i.raw_symbol) for i in other] == [
        (i.instrument_id, i.raw_symbol) for i in listed]
    assert {i.parent for i in listed} == {"ES.FUT", "NQ.FUT", "GC.FUT", "ZB.FUT", "ZC.FUT"}
    assert all(len(i.raw_symbol) == 4 for i in listed), "one-digit years, as CME and Databento"


@pytest.mark.parametrize("schema", ["trades", "tbbo", "ohlcv-1m", "ohlcv-1d", "statistics", "definition"])
def test_records_round_trip_through_the_databento_client(market: SyntheticMarket, schema: str) -> None:
    ids = np.array([10294, 30296])  # ESM4, GCQ4
    records = market.records(DATASET, schema, ids, utc_ns(2024, 6, 17), utc_ns(2024, 6, 18))
    df = to_df(records, schema)
    assert len(df) == len(records) > 0
    assert np.array_equal(df["instrument_id"].to_numpy(), records["instrument_id"])
    for field in ("price", "open", "close", "expiration", "quantity", "ts_recv", "ts_event"):
        if field in df.columns:
            decoded = df[field].to_numpy().astype(np.int64)
            assert np.array_equal(decoded, records[field].astype(np.int64)), field
    if schema == "definition":
        assert list(df["raw_symbol"].unique()) == ["ESM4", "GCQ4"]


def test_default_volume_is_realistic() -> None:
    market = SyntheticMarket()
    for root, target in DEFAULT_TICKS_PER_SESSION.items():
        trades = market.session_plan(root, dt.date(2024, 5, 8)).n_trades.sum()
        assert 0.8 * target < trades < 1.25 * target


def test_bad_requests_raise_hdi_error(market: SyntheticMarket) -> None:
    with pytest.raises(HdiError, match="XNAS.ITCH"):
        market.records("XNAS.ITCH", "trades", None, WEEK_START, WEEK_END)
    with pytest.raises(HdiError, match="imbalance"):
        market.records(DATASET, "imbalance", None, WEEK_START, WEEK_END)
    assert market.schemas(DATASET) == list(SCHEMAS_SERVED)
    assert len(market.records(DATASET, "trades", None, utc_ns(2024, 6, 15), utc_ns(2024, 6, 16))) == 0
