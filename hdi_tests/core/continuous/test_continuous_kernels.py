"""The compiled single-pass kernels against independent plain-Python loops: random ticks across sessions,
the daily halt, an intraday pause that splits a session, and rolls (adjustment, bars, checks)."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pyarrow as pa
import pytest

from hdi_core.calendar import CHICAGO, NS, Sessions, calendar_sessions, split_sessions
from hdi_core.continuous import indicators
from hdi_core.continuous.adjust import adjust_ticks, panama_backward, panama_forward
from hdi_core.continuous.bars import ohlcv_1s
from hdi_core.continuous.validation import (
    indicator_sanity,
    ohlc_integrity,
    run_checkpoints,
    session_alignment,
    timestamp_continuity,
    within_contract_changes,
)

TICK = 250_000_000


def ct(y: int, m: int, d: int, hh: int, mm: int = 0, ss: float = 0.0) -> int:
    return int(dt.datetime(y, m, d, hh, mm, tzinfo=CHICAGO).timestamp()) * NS + int(round(ss * NS))


def market(seed: int, n: int = 4000) -> tuple[pa.Table, pa.Table, Sessions]:
    """Ticks over 2024-03-05..03-12 (DST Sunday) with a 20-minute pause, the halt's edges and two rolls."""
    calendar = calendar_sessions("CME Globex Equity", ct(2024, 3, 5, 0), ct(2024, 3, 12, 16))
    rng = np.random.default_rng(seed)
    k = rng.integers(0, len(calendar), n)
    ts = calendar.open_ns[k] + rng.integers(0, 30, n) * 1800 * NS + rng.integers(0, 40 * NS, n)
    ts = np.minimum(ts, calendar.close_ns[k] - 1)
    ts = ts[(ts < ct(2024, 3, 7, 10)) | (ts >= ct(2024, 3, 7, 10, 20))]  # a pause: split into two sessions
    edges = [ct(2024, 3, 6, 15, 59, 59.5), ct(2024, 3, 6, 15, 59, 59.9), ct(2024, 3, 6, 17, 0, 0.0),
             ct(2024, 3, 6, 17, 0, 0.3), ct(2024, 3, 7, 9, 59, 59.2), ct(2024, 3, 7, 10, 20, 0.8)]
    ts = np.sort(np.concatenate([ts, edges]))
    sessions = split_sessions(ts, calendar, 10 * 60 * NS)
    switch = np.array([ct(2024, 3, 7, 3), int(ts[len(ts) // 2 + 1])])  # one exactly on a tick
    contract = np.searchsorted(switch, ts, side="right")
    price = 5000 * NS + np.cumsum(rng.integers(-3, 4, len(ts))) * TICK + contract * 40 * TICK
    ticks = pa.table({"ts_event": ts, "price": price, "size": rng.integers(0, 6, len(ts)),  # 0: no weight
                      "instrument_id": np.array([11, 22, 33])[contract]})
    events = pa.table({"switch_ns": switch, "roll_gap": np.array([40 * TICK, 40 * TICK]),
                       "old_price": np.array([5000 * NS] * 2), "new_price": np.array([5010 * NS] * 2)})
    return ticks, events, sessions


def plain_bars(ts: list[int], price: list[int], size: list[int], sessions: Sessions) -> list[tuple]:
    """Group ticks by (session holding the tick, whole second) in time order, with plain Python."""
    out: dict[tuple[int, int], list] = {}
    for t, p, q in zip(ts, price, size, strict=True):
        s = next(i for i, (o, c) in enumerate(zip(sessions.open_ns, sessions.close_ns, strict=True))
                 if o <= t < c)
        bar = out.setdefault((s, t // NS), [t // NS * NS, p, p, p, p, 0, 0, 0.0, s])
        bar[2], bar[3], bar[4] = max(bar[2], p), min(bar[3], p), p
        bar[5] += q
        bar[6] += 1
        bar[7] += float(p) * float(q)
    rows = []
    for bar in out.values():
        vwap = bar[7] / (float(bar[5]) * 1e9) if bar[5] else bar[4] / 1e9
        rows.append((*bar[:7], vwap, bar[8]))
    return rows


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_adjustment_and_bars_match_plain_loops(seed: int) -> None:
    ticks, events, sessions = market(seed)
    ts, raw = ticks["ts_event"].to_pylist(), ticks["price"].to_pylist()
    switch, gap = events["switch_ns"].to_pylist(), events["roll_gap"].to_pylist()
    expected = [p + sum(g for s, g in zip(switch, gap, strict=True) if s > t)
                for t, p in zip(ts, raw, strict=True)]
    adjusted = adjust_ticks(ticks, events)
    assert adjusted["adjusted_price"].to_pylist() == expected
    order = np.random.default_rng(seed).permutation(len(ts))  # unsorted ticks walk the segments backwards
    assert panama_backward(np.array(ts)[order], np.array(raw)[order], switch, gap).tolist() == \
        np.array(expected)[order].tolist()
    forward = [p - sum(g for s, g in zip(switch, gap, strict=True) if s <= t)
               for t, p in zip(ts, raw, strict=True)]
    assert panama_forward(ts, raw, switch, gap).tolist() == forward
    assert within_contract_changes(raw, expected, ticks["instrument_id"].to_numpy()).passed

    price_ticks = pa.table({"ts_event": ts, "price": expected, "size": ticks["size"]})
    got = ohlcv_1s(price_ticks, sessions)
    ref = plain_bars(ts, expected, ticks["size"].to_pylist(), sessions)
    names = ("ts_event", "open", "high", "low", "close", "volume", "trade_count", "vwap", "session_id")
    assert got.num_rows == len(ref)
    for j, name in enumerate(names):
        assert got[name].to_pylist() == [r[j] for r in ref], name  # vwap too: the same float sum, bit for bit
    assert got["trade_date"].to_pylist() == [sessions.trade_date[r[8]].astype(dt.date) for r in ref]
    assert len({r[8] for r in ref}) > 8  # the pause and the halt produced separate sessions
    zero_volume = {"ohlc_integrity"} if 0 in got["volume"].to_pylist() else set()  # size-0 trades only
    assert {o.name for o in run_checkpoints(got, sessions) if not o.passed} == zero_volume


def test_checks_count_like_plain_loops() -> None:
    ticks, _, sessions = market(5)
    good = ohlcv_1s(ticks, sessions)
    rng = np.random.default_rng(9)
    cols = {name: good[name].to_numpy().copy() for name in good.column_names if name != "trade_date"}
    rows = rng.choice(good.num_rows, 40, replace=False)
    cols["high"][rows[:10]] -= 3 * TICK
    cols["low"][rows[10:20]] += 3 * TICK
    cols["volume"][rows[20:25]] = 0
    cols["ts_event"][rows[25:30]] += 7
    cols["session_id"][rows[30:35]] += 1
    bad = pa.table({**cols, "trade_date": good["trade_date"]})
    ts, o, h, lo, c = (cols[k].tolist() for k in ("ts_event", "open", "high", "low", "close"))
    vol, cnt, sid = cols["volume"].tolist(), cols["trade_count"].tolist(), cols["session_id"].tolist()

    def session_of(t: int) -> int:
        return next((i for i, (a, b) in enumerate(zip(sessions.open_ns, sessions.close_ns, strict=True))
                     if a <= t < b), -1)

    own = [session_of(t) for t in ts]
    high_bad = sum(h[i] < max(o[i], c[i], lo[i]) for i in range(len(ts)))
    low_bad = sum(lo[i] > min(o[i], c[i]) for i in range(len(ts)))
    outcome = ohlc_integrity(bad)
    assert (outcome.details["high_violations"], outcome.details["low_violations"]) == (high_bad, low_bad)
    assert outcome.details["volume_violations"] == sum(v == 0 for v in vol) and not any(x == 0 for x in cnt)
    first = sorted({i for i in range(len(ts)) if h[i] < max(o[i], c[i], lo[i]) or lo[i] > min(o[i], c[i])
                    or vol[i] == 0})[:10]
    assert [r["row"] for r in outcome.first_violations] == first

    align = session_alignment(bad, sessions)
    wrong = [i for i in range(len(ts)) if own[i] >= 0 and sid[i] != own[i]]
    assert align.details["wrong_session_id"] == len(wrong) and align.violations == len(wrong)
    assert align.details["sessions_with_bars"] == len({s for s in own if s >= 0})

    cont = timestamp_continuity(bad, sessions, NS)
    misaligned = [i for i in range(len(ts))
                  if own[i] < 0 or (ts[i] - sessions.open_ns[own[i]]) % NS]
    assert cont.details["misaligned"] == len(misaligned) == 5
    assert [r["row"] for r in cont.first_violations] == misaligned  # the only violations: all shown
    minute = timestamp_continuity(good, sessions, 60 * NS)
    good_ts = good["ts_event"].to_pylist()
    off_minute = sum((t - sessions.open_ns[session_of(t)]) % (60 * NS) != 0 for t in good_ts)
    assert minute.details["misaligned"] == off_minute > 0


def test_indicator_sanity_agrees_with_the_indicator_arrays() -> None:
    ticks, _, sessions = market(6)
    bars = ohlcv_1s(ticks, sessions)
    close = bars["close"].to_numpy().copy()
    close[100] = 10**15
    bars = bars.set_column(bars.column_names.index("close"), "close", pa.array(close))
    high, low = bars["high"].to_numpy() / 1e9, bars["low"].to_numpy() / 1e9
    c = close / 1e9
    sma = indicators.sma(c, 14)
    lo_b, hi_b = low.min(), high.max()
    slack = 1e-9 * max(abs(lo_b), abs(hi_b), 1.0)
    out = indicator_sanity(bars)
    assert out.details["sma_out_of_range"] == int(np.sum((sma < lo_b - slack) | (sma > hi_b + slack))) == 14
    rsi, atr = indicators.rsi(c, 14), indicators.atr(high, low, c, 14)
    assert math.isclose(out.details["rsi_min"], np.nanmin(rsi), rel_tol=1e-9, abs_tol=1e-9)
    assert math.isclose(out.details["rsi_max"], np.nanmax(rsi), rel_tol=1e-9)
    assert math.isclose(out.details["atr_max"], np.nanmax(atr), rel_tol=1e-9)
    assert [r["row"] for r in out.first_violations] == list(range(100, 110))
