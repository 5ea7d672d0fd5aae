"""The five checkpoints pass on clean bars and each corruption fails the right checkpoint."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pyarrow as pa
import pytest

from hdi_core.calendar import CHICAGO, NS, Sessions, calendar_sessions
from hdi_core.continuous.bars import ohlcv_1s, resample
from hdi_core.continuous.validation import (
    no_nan_or_inf,
    ohlc_integrity,
    run_checkpoints,
    session_alignment,
    timestamp_continuity,
    validation_report,
    within_contract_changes,
)


def ct(y: int, m: int, d: int, hh: int, mm: int = 0, ss: float = 0.0) -> int:
    return int(dt.datetime(y, m, d, hh, mm, tzinfo=CHICAGO).timestamp()) * NS + int(round(ss * NS))


def market() -> tuple[pa.Table, Sessions]:
    sessions = calendar_sessions("CME Globex Equity", ct(2024, 3, 5, 0), ct(2024, 3, 12, 16))
    rng = np.random.default_rng(11)
    n = 6000
    k = rng.integers(0, len(sessions), n)
    ts = np.sort(sessions.open_ns[k] + rng.integers(0, 40, n) * 1800 * NS + rng.integers(0, 120 * NS, n))
    ts = np.sort(np.concatenate([ts, [ct(2024, 3, 6, 15, 59, 59.5), ct(2024, 3, 6, 17, 0, 0.1)]]))
    price = 5000 * NS + np.cumsum(rng.integers(-2, 3, len(ts))) * 250_000_000
    return pa.table({"ts_event": ts, "price": price, "size": rng.integers(1, 9, len(ts))}), sessions


def replace(table: pa.Table, name: str, values: np.ndarray | pa.Array) -> pa.Table:
    return table.set_column(table.column_names.index(name), name, values)


def failing(outcomes: list) -> set[str]:
    return {o.name for o in outcomes if not o.passed}


@pytest.mark.parametrize("dense", [False, True])
def test_clean_bars_pass_every_checkpoint(dense: bool) -> None:
    ticks, sessions = market()
    one = ohlcv_1s(ticks, sessions, dense=dense)
    assert failing(run_checkpoints(one, sessions, NS, dense)) == set()
    for rule, step in (("1m", 60 * NS), ("5m", 300 * NS), ("15m", 900 * NS), ("1h", 3600 * NS), ("1d", "1d")):
        coarse = resample(one, rule, sessions, dense=dense)
        assert failing(run_checkpoints(coarse, sessions, step, dense)) == set(), rule
    report = validation_report(run_checkpoints(one, sessions, NS, dense))
    assert json.loads(json.dumps(report))["passed"] is True
    assert [c["checkpoint"] for c in report["checkpoints"]][0] == "session_alignment"


def test_high_below_low_fails_ohlc_integrity() -> None:
    ticks, sessions = market()
    bars = ohlcv_1s(ticks, sessions)
    high = bars["high"].to_numpy().copy()
    high[5] = bars["low"][5].as_py() - 250_000_000
    outcomes = run_checkpoints(replace(bars, "high", pa.array(high)), sessions)
    assert "ohlc_integrity" in failing(outcomes)
    bad = next(o for o in outcomes if o.name == "ohlc_integrity")
    assert bad.violations == 1 and bad.first_violations[0]["row"] == 5
    assert bad.first_violations[0]["ts_event"].endswith("Z")


def test_zero_volume_only_allowed_for_flat_fillers() -> None:
    ticks, sessions = market()
    bars = ohlcv_1s(ticks, sessions)
    vol = bars["volume"].to_numpy().copy()
    vol[3] = 0
    assert not ohlc_integrity(replace(bars, "volume", pa.array(vol))).passed
    assert ohlc_integrity(ohlcv_1s(ticks, sessions, dense=True)).passed


def test_nan_vwap_fails_no_nan_or_inf() -> None:
    ticks, sessions = market()
    bars = ohlcv_1s(ticks, sessions)
    vwap = bars["vwap"].to_numpy().copy()
    vwap[7] = np.nan
    vwap[9] = np.inf
    out = no_nan_or_inf(replace(bars, "vwap", pa.array(vwap)))
    assert not out.passed and out.violations == 2 and out.details["bad_values_per_column"] == {"vwap": 2}
    nulls = replace(bars, "close", pa.array([None] + bars["close"].to_pylist()[1:], pa.int64()))
    assert no_nan_or_inf(nulls).violations == 1


def test_duplicated_second_fails_continuity() -> None:
    ticks, sessions = market()
    bars = ohlcv_1s(ticks, sessions)
    dup = pa.concat_tables([bars.slice(0, 11), bars.slice(10)])
    out = timestamp_continuity(dup, sessions, NS)
    assert not out.passed and out.details["duplicates"] == 1
    assert "timestamp_continuity" in failing(run_checkpoints(dup, sessions))


def test_non_aligned_timestamp_fails_continuity() -> None:
    ticks, sessions = market()
    minute = resample(ohlcv_1s(ticks, sessions), "1m", sessions)
    ts = minute["ts_event"].to_numpy().copy()
    ts[4] += NS  # one second off the minute grid
    out = timestamp_continuity(replace(minute, "ts_event", pa.array(ts)), sessions, 60 * NS)
    assert not out.passed and out.details["misaligned"] == 1


def test_bar_across_the_halt_fails_session_alignment() -> None:
    ticks, sessions = market()
    hourly = resample(ohlcv_1s(ticks, sessions), "1h", sessions)
    ts = hourly["ts_event"].to_numpy().copy()
    k = int(np.flatnonzero(ts == ct(2024, 3, 6, 15))[0])
    ts[k] = ct(2024, 3, 6, 15, 30)  # 15:30-16:30 CT runs into the daily halt
    out = session_alignment(replace(hourly, "ts_event", pa.array(ts)), sessions, 3600 * NS)
    assert not out.passed and out.details["spanning_close"] == 1
    assert out.first_violations[0]["reason"] == "ends after its session closes"
    one = ohlcv_1s(ticks, sessions)
    halt = replace(one, "ts_event", pa.array(np.where(np.arange(one.num_rows) == 0, ct(2024, 3, 6, 16, 30),
                                                      one["ts_event"].to_numpy())))
    assert session_alignment(halt, sessions).details["outside_session"] == 1
    assert session_alignment(halt, sessions).first_violations[0]["reason"] == "outside every session: inside a halt"


@pytest.mark.parametrize(("calendar", "when", "reason"), [
    ("CME Globex Equity", (2024, 12, 25, 10), "closed day"),  # Christmas
    ("CME Globex Equity", (2024, 3, 9, 12), "closed day"),  # Saturday
    ("CME Globex Equity", (2024, 3, 8, 16, 30), "inside a halt"),  # Friday after the regular close
    ("CME Globex Equity", (2024, 1, 15, 13), "after an early close"),  # MLK: halt at 12:00 CT
    ("CME Globex Equity", (2024, 7, 3, 12, 20), "after an early close"),  # early close 12:15 CT
    ("CMEGlobex_GC", (2024, 1, 15, 14), "after an early close"),  # COMEX MLK halt 13:30 CT
    ("CMEGlobex_Grains", (2024, 3, 6, 8, 0), "inside a halt"),  # the 07:45-08:30 CT break
    ("CMEGlobex_Grains", (2024, 1, 15, 10), "closed day"),  # grains closed on MLK day
    ("CBOT_Bond", (2024, 3, 29, 10), "closed day"),  # Good Friday
])
def test_session_alignment_names_why_a_bar_is_outside(calendar: str, when: tuple, reason: str) -> None:
    t = ct(*when)
    sessions = calendar_sessions(calendar, t - 5 * 86_400 * NS, t + 5 * 86_400 * NS)
    inside = int(sessions.open_ns[0])
    bars = pa.table({"ts_event": pa.array([inside, t], pa.int64()), "open": [1, 1], "high": [1, 1], "low": [1, 1],
                     "close": [1, 1], "volume": [1, 1]})
    out = session_alignment(bars, sessions)
    assert out.violations == 1 and out.first_violations[0]["reason"] == f"outside every session: {reason}"
    assert out.details[f"outside_{reason.replace(' ', '_')}"] == 1


def test_dense_gap_inside_session_fails_only_in_dense_mode() -> None:
    ticks, sessions = market()
    dense = ohlcv_1s(ticks, sessions, dense=True)
    holed = pa.concat_tables([dense.slice(0, 100), dense.slice(101)])
    assert not timestamp_continuity(holed, sessions, NS, dense=True).passed
    assert timestamp_continuity(holed, sessions, NS, dense=False).passed
    # across the halt a dense series may jump: the clean dense table passes (checked above)


def test_indicator_sanity_catches_an_absurd_close() -> None:
    ticks, sessions = market()
    bars = ohlcv_1s(ticks, sessions)
    close = bars["close"].to_numpy().copy()
    close[200] = 10**18  # far above every high: SMA leaves [min low, max high]
    outcomes = run_checkpoints(replace(bars, "close", pa.array(close)), sessions)
    assert {"indicator_sanity", "ohlc_integrity"} <= failing(outcomes)
    sanity = next(o for o in outcomes if o.name == "indicator_sanity")
    assert sanity.details["sma_out_of_range"] > 0


def test_within_contract_changes_exact() -> None:
    raw = np.array([10, 11, 12, 50, 51, 49], dtype=np.int64)
    iid = np.array([1, 1, 1, 2, 2, 2])
    good = raw + np.array([38, 38, 38, 0, 0, 0])
    assert within_contract_changes(raw, good, iid).passed
    bad = good.copy()
    bad[1] += 1
    out = within_contract_changes(raw, bad, iid, ts_ns=np.arange(6) * NS)
    assert out.violations == 2 and out.first_violations[0]["row"] == 1
