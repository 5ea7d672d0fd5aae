"""1 s bars and coarser bars against pandas, per session, on a small generated market."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from hdi_core.calendar import CHICAGO, NS, Sessions, calendar_sessions
from hdi_core.continuous.bars import ohlcv_1s, resample, ticks_outside_sessions
from hdi_core.errors import HdiError

TICK = 250_000_000  # 0.25 in fixed point


def ct(y: int, m: int, d: int, hh: int, mm: int = 0, ss: float = 0.0) -> int:
    base = dt.datetime(y, m, d, hh, mm, tzinfo=CHICAGO)
    return int(base.timestamp()) * NS + int(round(ss * NS))


def market(seed: int = 7, n: int = 20_000) -> tuple[pa.Table, Sessions]:
    """Random ticks in the sessions of 2024-03-05..2024-03-12 (a Sunday open on the DST day), plus ticks in
    the last second before the daily halt and the first second after it."""
    sessions = calendar_sessions("CME Globex Equity", ct(2024, 3, 5, 0), ct(2024, 3, 12, 16))
    rng = np.random.default_rng(seed)
    k = rng.integers(0, len(sessions), n)
    # trades cluster in a few minutes of each session so seconds hold several ticks
    minute = rng.integers(0, 40, n) * 1800 * NS
    ts = sessions.open_ns[k] + minute + rng.integers(0, 90 * NS, n)
    ts = np.minimum(ts, sessions.close_ns[k] - 1)
    edge = [ct(2024, 3, 6, 15, 59, 59.5), ct(2024, 3, 6, 15, 59, 59.9), ct(2024, 3, 6, 17, 0, 0.2),
            ct(2024, 3, 10, 17, 0, 0.0), ct(2024, 3, 10, 17, 0, 0.7)]
    ts = np.sort(np.concatenate([ts, edge]))
    price = (5000 * NS + np.cumsum(rng.integers(-2, 3, len(ts))) * TICK).astype(np.int64)
    size = rng.integers(1, 30, len(ts))
    return pa.table({"ts_event": ts, "price": price, "size": size,
                     "instrument_id": np.full(len(ts), 42, np.int64),
                     "raw_symbol": pa.array(["ESH4"] * len(ts))}), sessions


def _session_loop(ts: int, sessions: Sessions) -> int:
    for i, (o, c) in enumerate(zip(sessions.open_ns, sessions.close_ns, strict=True)):
        if o <= ts < c:
            return i
    return -1


def reference_1s(ticks: pa.Table, sessions: Sessions) -> pd.DataFrame:
    """Plain pandas: group by (session, second) with first/max/min/last/sum, as the seed's resample."""
    df = ticks.to_pandas()
    df["session_id"] = [_session_loop(t, sessions) for t in df.ts_event]
    df["sec"] = df.ts_event // NS * NS
    df["pv"] = df.price.astype(float) * df["size"]
    g = df.groupby(["session_id", "sec"], sort=True)
    out = g.agg(open=("price", "first"), high=("price", "max"), low=("price", "min"), close=("price", "last"),
                volume=("size", "sum"), trade_count=("price", "size"), pv=("pv", "sum")).reset_index()
    out["vwap"] = out.pv / out.volume / 1e9
    return out.rename(columns={"sec": "ts_event"})


def test_1s_bars_match_pandas() -> None:
    ticks, sessions = market()
    bars = ohlcv_1s(ticks, sessions).to_pandas()
    ref = reference_1s(ticks, sessions)
    assert len(bars) == len(ref)
    for col in ("ts_event", "open", "high", "low", "close", "volume", "trade_count", "session_id"):
        assert bars[col].tolist() == ref[col].tolist(), col
    np.testing.assert_allclose(bars.vwap, ref.vwap, rtol=1e-12)
    assert [str(d) for d in bars.trade_date] == [str(sessions.trade_date[s]) for s in ref.session_id]


def test_halt_seconds_are_separate_bars_of_different_sessions() -> None:
    ticks, sessions = market()
    bars = ohlcv_1s(ticks, sessions).to_pandas().set_index("ts_event")
    before, after = bars.loc[ct(2024, 3, 6, 15, 59, 59)], bars.loc[ct(2024, 3, 6, 17, 0, 0)]
    assert before.trade_count >= 2 and after.trade_count >= 1
    assert after.session_id == before.session_id + 1
    assert str(before.trade_date) == "2024-03-06" and str(after.trade_date) == "2024-03-07"
    sunday = bars.loc[ct(2024, 3, 10, 17)]
    assert str(sunday.trade_date) == "2024-03-11" and sunday.trade_count >= 2


def test_ticks_outside_sessions_are_an_error_not_dropped() -> None:
    ticks, sessions = market()
    halt = ct(2024, 3, 6, 16, 30)
    ts = np.sort(np.append(ticks["ts_event"].to_numpy(), halt))
    bad = pa.table({"ts_event": ts, "price": np.full(len(ts), 5000 * NS), "size": np.ones(len(ts), np.int64)})
    with pytest.raises(HdiError, match="1 ticks lie outside every trading session, first at 2024-03-06T22:30"
                       ):
        ohlcv_1s(bad, sessions)
    assert ticks_outside_sessions(bad, sessions)["ts_event"].to_pylist() == [halt]


def test_unsorted_ticks_are_an_error() -> None:
    ticks, sessions = market()
    with pytest.raises(HdiError, match="not sorted"):
        ohlcv_1s(ticks.take(np.arange(ticks.num_rows)[::-1]), sessions)


def test_dense_fills_each_session_between_first_and_last_trade_only() -> None:
    ticks, sessions = market()
    sparse = ohlcv_1s(ticks, sessions).to_pandas()
    dense = ohlcv_1s(ticks, sessions, dense=True).to_pandas()
    parts = []
    for sid, g in sparse.groupby("session_id"):  # reference: pandas reindex + forward fill, per session
        full = np.arange(g.ts_event.min(), g.ts_event.max() + 1, NS)
        r = g.set_index("ts_event").reindex(full)
        filler = r.close.isna()
        r["close"] = r.close.ffill()
        for col in ("open", "high", "low"):
            r[col] = r[col].fillna(r.close)
        r["vwap"] = r.vwap.fillna(r.close / 1e9)
        r[["volume", "trade_count"]] = r[["volume", "trade_count"]].fillna(0)
        r["session_id"] = sid
        assert filler.sum() > 0
        parts.append(r.rename_axis("ts_event").reset_index())
    ref = pd.concat(parts, ignore_index=True)
    assert len(dense) == len(ref)
    for col in ("ts_event", "open", "high", "low", "close", "volume", "trade_count", "session_id"):
        assert dense[col].tolist() == ref[col].astype(np.int64).tolist(), col
    np.testing.assert_allclose(dense.vwap, ref.vwap, rtol=1e-12)
    halt = dense[(dense.ts_event >= ct(2024, 3, 6, 16)) & (dense.ts_event < ct(2024, 3, 6, 17))]
    assert halt.empty


def reference_resample(sparse_1s: pd.DataFrame, rule: str, sessions: Sessions) -> pd.DataFrame:
    """pandas resample per session with origin at the session open."""
    parts = []
    for sid, g in sparse_1s.groupby("session_id"):
        idx = pd.to_datetime(g.ts_event, utc=True)
        frame = g.set_index(idx)
        frame = frame.assign(pv=frame.vwap * frame.volume)
        if rule == "1d":
            r = frame.groupby(np.zeros(len(frame)))
        else:
            r = frame.resample(pd.Timedelta(rule), origin=pd.Timestamp(int(sessions.open_ns[sid]), tz="UTC"),
                               label="left", closed="left")
        agg = r.agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum",
                     "trade_count": "sum", "pv": "sum"}).dropna()
        agg = agg[agg.trade_count > 0]
        if rule == "1d":
            agg.index = pd.to_datetime([int(sessions.open_ns[sid])], utc=True)
        agg["ts_event"] = agg.index.as_unit("ns").asi8
        agg["session_id"] = sid
        parts.append(agg)
    out = pd.concat(parts).reset_index(drop=True)
    out["vwap"] = out.pv / out.volume
    return out


@pytest.mark.parametrize("rule", ["1m", "5m", "15m", "1h", "1d"])
def test_resample_matches_pandas_per_session(rule: str) -> None:
    ticks, sessions = market()
    one = ohlcv_1s(ticks, sessions)
    got = resample(one, rule, sessions).to_pandas()
    ref = reference_resample(one.to_pandas(), {"1m": "1min", "1h": "1h", "5m": "5min", "15m": "15min",
                                               "1d": "1d"}[rule], sessions)
    assert len(got) == len(ref)
    for col in ("ts_event", "open", "high", "low", "close", "volume", "trade_count", "session_id"):
        assert got[col].astype(np.int64).tolist() == ref[col].astype(np.int64).tolist(), col
    np.testing.assert_allclose(got.vwap, ref.vwap, rtol=1e-12)
    opens = sessions.open_ns[got.session_id.to_numpy()]
    if rule == "1d":
        assert (got.ts_event == opens).all()
    else:
        step = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600}[rule] * NS
        assert ((got.ts_event.to_numpy() - opens) % step == 0).all()


def test_hourly_bars_anchor_to_17_ct_and_daily_bar_is_the_session() -> None:
    ticks, sessions = market()
    one = ohlcv_1s(ticks, sessions)
    hourly = resample(one, "1h", sessions).to_pandas()
    local = pd.to_datetime(hourly.ts_event, utc=True).dt.tz_convert("America/Chicago")
    assert (local.dt.minute == 0).all()
    assert 17 in set(local.dt.hour)
    daily = resample(one, "1d", sessions).to_pandas()
    # the Monday session spans two UTC days (Sunday evening and Monday) and gives exactly one daily bar
    monday = daily[daily.trade_date.astype(str) == "2024-03-11"]
    assert len(monday) == 1 and monday.ts_event.iloc[0] == ct(2024, 3, 10, 17)
    in_session = one.to_pandas().query("session_id == @monday.session_id.iloc[0]")
    assert monday.volume.iloc[0] == in_session.volume.sum()
    assert monday.high.iloc[0] == in_session.high.max() and monday.close.iloc[0] == in_session.close.iloc[-1]


def test_resample_dense_has_no_filler_across_the_halt() -> None:
    ticks, sessions = market()
    one = ohlcv_1s(ticks, sessions, dense=True)
    got = resample(one, "1m", sessions, dense=True).to_pandas()
    sparse = resample(ohlcv_1s(ticks, sessions), "1m", sessions).to_pandas()
    assert got[got.trade_count > 0].reset_index(drop=True).equals(sparse)
    for _, g in got.groupby("session_id"):
        assert (np.diff(g.ts_event) == 60 * NS).all()
    assert got[(got.ts_event >= ct(2024, 3, 6, 16)) & (got.ts_event < ct(2024, 3, 6, 17))].empty


def test_corn_daily_bar_spans_both_segments_of_its_trade_date() -> None:
    """ZC trades 19:00-07:45 and 08:30-13:20 CT: two segments, one trade date, one daily bar."""
    sessions = calendar_sessions("CMEGlobex_Grains", ct(2024, 3, 4, 0), ct(2024, 3, 7, 0))
    ts = np.array([ct(2024, 3, 4, 19, 5), ct(2024, 3, 5, 7, 44), ct(2024, 3, 5, 8, 31), ct(2024, 3, 5, 13, 19),
                   ct(2024, 3, 5, 19, 1), ct(2024, 3, 6, 9)], dtype=np.int64)
    price = np.array([440, 442, 439, 445, 446, 447], dtype=np.int64) * TICK
    ticks = pa.table({"ts_event": ts, "price": price, "size": np.ones(len(ts), np.int64)})
    daily = resample(ohlcv_1s(ticks, sessions), "1d", sessions)
    assert daily["trade_date"].to_pylist() == [dt.date(2024, 3, 5), dt.date(2024, 3, 6)]
    assert daily["ts_event"].to_pylist() == [ct(2024, 3, 4, 19), ct(2024, 3, 5, 19)]
    first = daily.slice(0, 1).to_pylist()[0]
    assert (first["open"], first["high"], first["low"], first["close"], first["volume"]) == (
        440 * TICK, 445 * TICK, 439 * TICK, 445 * TICK, 4)
