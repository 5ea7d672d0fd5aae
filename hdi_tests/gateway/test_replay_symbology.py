"""Databento symbology over the synthetic market, checked against simple independent computations."""

from __future__ import annotations

import datetime as dt

import databento as db
import databento_dbn as dbn
import numpy as np
import pandas as pd
import pytest
from exchange_oracle import trade_date_of

from hdi_core.errors import HdiError
from hdi_gateway.symbology import (
    ALL_SYMBOLS,
    STATS_LOOKBACK_DAYS,
    intervals_ns,
    record_mask,
    resolve,
    to_dbn_mappings,
)
from hdi_gateway.synthetic import DATASET, TEST_TICKS_PER_SESSION, SyntheticMarket

NS = 1_000_000_000
DAY = 86_400 * NS
START, END = dt.date(2024, 6, 10), dt.date(2024, 6, 27)  # the June 2024 ES roll; ESM4 expires 06-21
ESM4, ESU4 = 10294, 10297


def utc_ns(day: dt.date) -> int:
    return int(dt.datetime.combine(day, dt.time(0), tzinfo=dt.UTC).timestamp()) * NS


@pytest.fixture(scope="module")
def market() -> SyntheticMarket:
    return SyntheticMarket(seed=7, ticks_per_session=TEST_TICKS_PER_SESSION)


@pytest.fixture(scope="module")
def instruments(market: SyntheticMarket):
    return market.instruments(DATASET, utc_ns(START), utc_ns(END))


@pytest.fixture(scope="module")
def daily(market: SyntheticMarket) -> pd.DataFrame:
    return market.daily_stats(DATASET, START - dt.timedelta(days=STATS_LOOKBACK_DAYS), END)


def run(instruments, daily, symbols, stype_in, stype_out="instrument_id"):
    return resolve(instruments, daily, symbols, stype_in, stype_out, START, END)


def per_day(entries: list[dict]) -> dict[dt.date, str]:
    """Expand {d0, d1, s} intervals into one output per UTC day, checking they never overlap."""
    out: dict[dt.date, str] = {}
    for e in entries:
        day = dt.date.fromisoformat(e["d0"])
        while day < dt.date.fromisoformat(e["d1"]):
            assert day not in out, f"overlapping intervals on {day}"
            out[day] = e["s"]
            day += dt.timedelta(days=1)
    return out


def expected_by_previous_trade_date(leader_by_trade_date: dict[dt.date, int]) -> dict[dt.date, str]:
    """For every UTC day of the range: the leader of the latest trade date strictly before it."""
    out = {}
    day = START
    while day < END:
        prev = max(d for d in leader_by_trade_date if d < day)
        out[day] = str(leader_by_trade_date[prev])
        day += dt.timedelta(days=1)
    return out


def test_volume_rule_switches_the_day_after_the_volume_leader_changes(market, instruments, daily) -> None:
    trades = market.records(DATASET, "trades", np.array([ESM4, ESU4, 10300, 10303, 10306]),
                            utc_ns(START - dt.timedelta(days=5)), utc_ns(END))
    trade_date = trade_date_of("ES", trades["ts_event"].astype(np.int64))  # the exchange's, not HDI's
    frame = pd.DataFrame({"date": trade_date.astype(object), "iid": trades["instrument_id"],
                          "size": trades["size"].astype(np.int64)})
    leader = frame.groupby(["date", "iid"])["size"].sum().unstack(fill_value=0).idxmax(axis=1).to_dict()
    result, not_found = run(instruments, daily, ["ES.v.0"], "continuous")
    assert not_found == []
    assert per_day(result["ES.v.0"]) == expected_by_previous_trade_date(leader)
    switch = [e["d0"] for e in result["ES.v.0"]]
    assert switch == ["2024-06-10", "2024-06-18"]  # leader changed on Monday 06-17's session
    assert result["ES.v.0"][1]["s"] == str(ESU4)


def test_calendar_rule_changes_after_expiration(instruments, daily) -> None:
    result, _ = run(instruments, daily, ["ES.c.0", "ES.c.1"], "continuous", "raw_symbol")
    assert result["ES.c.0"] == [{"d0": "2024-06-10", "d1": "2024-06-22", "s": "ESM4"},
                                {"d0": "2024-06-22", "d1": "2024-06-27", "s": "ESU4"}]
    assert result["ES.c.1"] == [{"d0": "2024-06-10", "d1": "2024-06-22", "s": "ESU4"},
                                {"d0": "2024-06-22", "d1": "2024-06-27", "s": "ESZ4"}]


def test_open_interest_rule_follows_open_interest(market, instruments, daily) -> None:
    stats = market.records(DATASET, "statistics", None, utc_ns(START - dt.timedelta(days=5)), utc_ns(END))
    oi = stats[(stats["stat_type"] == 9) & (stats["instrument_id"] // 10_000 == 1)]
    ref_day = oi["ts_ref"].astype("datetime64[ns]").astype("datetime64[D]").astype(object)
    frame = pd.DataFrame({"date": ref_day,
                          "iid": oi["instrument_id"], "oi": oi["quantity"]})
    leader = frame.groupby(["date", "iid"])["oi"].sum().unstack(fill_value=0).idxmax(axis=1).to_dict()
    result, _ = run(instruments, daily, ["ES.n.0"], "continuous")
    assert per_day(result["ES.n.0"]) == expected_by_previous_trade_date(leader)
    volume_switch = run(instruments, daily, ["ES.v.0"], "continuous")[0]["ES.v.0"][1]["d0"]
    assert result["ES.n.0"][1]["d0"] > volume_switch, "open interest rolls after volume"


def test_parent_lists_every_contract_of_the_root(market, instruments, daily) -> None:
    result, _ = run(instruments, daily, ["ES.FUT"], "parent", "raw_symbol")
    defs = market.records(DATASET, "definition", None, utc_ns(START), utc_ns(END))
    defined = {r.decode() for r in defs["raw_symbol"] if r.startswith(b"ES")}
    assert {e["s"] for e in result["ES.FUT"]} == defined == {"ESM4", "ESU4", "ESZ4", "ESH5", "ESM5"}
    by_symbol = {e["s"]: e for e in result["ES.FUT"]}
    assert by_symbol["ESM4"] == {"d0": "2024-06-10", "d1": "2024-06-22", "s": "ESM4"}
    assert by_symbol["ESM5"] == {"d0": "2024-06-21", "d1": "2024-06-27", "s": "ESM5"}


def test_raw_symbol_and_instrument_id_round_trip(instruments, daily) -> None:
    raws = [i.raw_symbol for i in instruments]
    to_id, nf1 = run(instruments, daily, raws, "raw_symbol", "instrument_id")
    ids = sorted({e["s"] for entries in to_id.values() for e in entries})
    back, nf2 = run(instruments, daily, ids, "instrument_id", "raw_symbol")
    assert nf1 == nf2 == []
    for raw, entries in to_id.items():
        assert len({e["s"] for e in entries}) == 1
        assert back[entries[0]["s"]] == [{**e, "s": raw} for e in entries]
    assert to_id["ESM4"] == [{"d0": "2024-06-10", "d1": "2024-06-22", "s": str(ESM4)}]


def test_unknown_symbols_are_not_found(instruments, daily) -> None:
    result, not_found = run(instruments, daily, ["ESM4", "ZZZ9", "ESZ9"], "raw_symbol")
    assert list(result) == ["ESM4"] and not_found == ["ZZZ9", "ESZ9"]
    bad = ["XX.c.0", "ES.v.9", "ES.x.0"]
    assert run(instruments, daily, bad, "continuous")[1] == bad
    assert run(instruments, daily, ["99999", "abc"], "instrument_id")[1] == ["99999", "abc"]
    with pytest.raises(HdiError, match="stype_in"):
        run(instruments, daily, ["ESM4"], "smart")


def test_all_symbols_and_missing_statistics(instruments, daily) -> None:
    result, _ = run(instruments, daily, [ALL_SYMBOLS], "raw_symbol")
    assert set(result) == {i.raw_symbol for i in instruments}
    # without any statistics the volume rule falls back to calendar order
    no_stats = daily.iloc[0:0]
    by_volume = run(instruments, no_stats, ["ES.v.0"], "continuous")[0]["ES.v.0"]
    assert by_volume == run(instruments, daily, ["ES.c.0"], "continuous")[0]["ES.c.0"]


def test_record_mask_selects_the_mapped_instrument_each_day(market, instruments, daily) -> None:
    result, _ = run(instruments, daily, ["ES.v.0"], "continuous")
    trades = market.records(DATASET, "trades", None, utc_ns(START), utc_ns(END))
    mask = record_mask(trades["instrument_id"], trades["ts_recv"], intervals_ns(result["ES.v.0"]))
    mapped = per_day(result["ES.v.0"])
    days = pd.to_datetime(trades["ts_recv"].astype(np.int64), utc=True).date
    expected = np.array([str(iid) == mapped[d] for iid, d in zip(trades["instrument_id"], days, strict=True)])
    assert mask.any() and np.array_equal(mask, expected)
    raw_result, _ = run(instruments, daily, ["ES.v.0"], "continuous", "raw_symbol")
    assert intervals_ns(raw_result["ES.v.0"], instruments) == intervals_ns(result["ES.v.0"])


def test_mappings_go_into_dbn_metadata_like_a_real_response(market, instruments, daily) -> None:
    result, _ = run(instruments, daily, ["ES.v.0"], "continuous")
    start, end = utc_ns(dt.date(2024, 6, 17)), utc_ns(dt.date(2024, 6, 19))
    trades = market.records(DATASET, "trades", None, start, end)
    trades = trades[record_mask(trades["instrument_id"], trades["ts_recv"], intervals_ns(result["ES.v.0"]))]
    meta = dbn.Metadata(dataset=DATASET, start=start, end=end, stype_in=dbn.SType.CONTINUOUS,
                        stype_out=dbn.SType.INSTRUMENT_ID, schema=dbn.Schema.TRADES, symbols=["ES.v.0"],
                        mappings=to_dbn_mappings(result))
    store = db.DBNStore.from_bytes(bytes(meta) + trades.tobytes())
    assert store.metadata.mappings["ES.v.0"][1] == {"start_date": dt.date(2024, 6, 18),
                                                     "end_date": dt.date(2024, 6, 27), "symbol": str(ESU4)}
    df = store.to_df(map_symbols=True)
    assert len(df) == len(trades) > 0
    assert set(df["symbol"]) == {"ES.v.0"}
    assert set(df["instrument_id"]) == {ESM4, ESU4}
