"""Bars built in stream equal the historical ohlcv_1s on the same trades, for any split into batches."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from hdi_core.calendar import calendar_sessions
from hdi_core.continuous import bars as history_bars
from hdi_core.live.bars import SecondBars
from hdi_core.units import NS

DAY_START = int(np.datetime64("2024-03-05T00:00", "ns").astype(np.int64))


@pytest.fixture(scope="module")
def session_trades(synthetic_market) -> np.ndarray:
    """One ES trade date of the synthetic market, the front contract only, in delivery (ts_recv) order."""
    span = (DAY_START - 7 * 3600 * NS, DAY_START + 22 * 3600 * NS)
    trades = synthetic_market.records("GLBX.MDP3", "trades", None, *span)
    es = trades[trades["instrument_id"] // 1000 == trades["instrument_id"][0] // 1000]
    ids, counts = np.unique(es["instrument_id"], return_counts=True)
    return es[es["instrument_id"] == ids[np.argmax(counts)]]


def _history(trades: np.ndarray, sessions) -> pa.Table:
    table = pa.table({"ts_event": trades["ts_event"].astype(np.int64), "price": trades["price"],
                      "size": trades["size"].astype(np.int64)})
    order = np.argsort(table["ts_event"].to_numpy(), kind="stable")  # what ohlcv_1s does: in_event_order
    return history_bars.ohlcv_1s(table.take(pa.array(order)), sessions)


def _stream(trades: np.ndarray, sessions, cuts: np.ndarray) -> np.ndarray:
    builder = SecondBars(sessions)
    closed = []
    for part in np.split(trades, cuts):
        if len(part):
            update = builder.push(part["ts_event"], part["price"], part["size"], int(part["ts_recv"].max()))
            closed.append(update.closed)
    closed.append(builder.flush().closed)
    return np.concatenate(closed)


@pytest.mark.parametrize("split", ["one", "every", "random", "tiny"])
def test_any_split_gives_the_historical_bars(session_trades: np.ndarray, split: str) -> None:
    trades = session_trades
    assert len(trades) > 500
    sessions = calendar_sessions("CME Globex Equity", DAY_START - 86400 * NS, DAY_START + 2 * 86400 * NS)
    rng = np.random.default_rng(3)
    cuts = {"one": np.array([], int), "every": np.arange(1, len(trades)),
            "random": np.sort(rng.choice(np.arange(1, len(trades)), 40, replace=False)),
            "tiny": np.arange(3, len(trades), 3)}[split]
    got = _stream(trades, sessions, cuts)
    want = _history(trades, sessions)
    assert len(got) == want.num_rows
    for name in ("ts_event", "open", "high", "low", "close", "volume", "trade_count", "vwap"):
        assert np.array_equal(got[name], want[name].to_numpy()), name
    assert np.array_equal(got["trade_date"], want["trade_date"].cast(pa.int32()).to_numpy())


def test_provisional_bar_shows_a_trade_at_once_and_closes_after_the_grace() -> None:
    sessions = calendar_sessions("CME Globex Equity", DAY_START - 86400 * NS, DAY_START + 86400 * NS)
    t0 = DAY_START + 15 * 3600 * NS  # 09:00 CT, inside the session
    builder = SecondBars(sessions, grace_ns=100_000_000)
    first = builder.push(np.array([t0]), np.array([5_000 * 10**9]), np.array([2]), t0 + 1000)
    assert len(first.closed) == 0 and first.provisional["close"].tolist() == [5_000 * 10**9]
    second = builder.push(np.array([t0 + 10]), np.array([5_001 * 10**9]), np.array([1]), t0 + 2000)
    assert second.provisional["high"].tolist() == [5_001 * 10**9]
    assert second.provisional["volume"].tolist() == [3]
    assert len(builder.advance(t0 + NS + 50_000_000).closed) == 0  # within the grace: still open
    done = builder.advance(t0 + NS + 100_000_000)
    assert done.closed["ts_event"].tolist() == [t0] and done.closed["trade_count"].tolist() == [2]


def test_trades_outside_every_session_get_session_minus_one() -> None:
    sessions = calendar_sessions("CME Globex Equity", DAY_START - 86400 * NS, DAY_START + 86400 * NS)
    halt = DAY_START + 22 * 3600 * NS + 30 * 60 * NS  # 16:30 CT (CST): the daily maintenance halt
    builder = SecondBars(sessions)
    builder.push(np.array([halt]), np.array([1]), np.array([1]), halt)
    assert builder.flush().closed["session_id"].tolist() == [-1]
