"""Side codes and bar cutting: the flow's bars are the ohlcv bars (same timestamps, same trades in each)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from orderflow_tapes import random_trades, week_sessions

from hdi_core.continuous.bars import ohlcv_1s, resample
from hdi_core.errors import HdiError
from hdi_core.orderflow.tape import bar_index, side_bytes, trades_from_table


def test_side_bytes_from_text_dbn_bytes_and_codes() -> None:
    assert side_bytes(pa.array(["B", "A", "N"])).tolist() == [66, 65, 78]
    assert side_bytes(pa.array(["B", "A"]).dictionary_encode()).tolist() == [66, 65]
    assert side_bytes(np.array([b"A", b"N"], "S1")).tolist() == [65, 78]
    assert side_bytes(np.array([66], np.uint8)).tolist() == [66]


def test_side_bytes_names_a_bad_row() -> None:
    with pytest.raises(HdiError, match="row 1: side X is not A, B or N"):
        side_bytes(pa.array(["B", "X"]))
    with pytest.raises(HdiError, match="null"):
        side_bytes(pa.array(["B", None]))


@pytest.mark.parametrize("interval", ["1s", "1m", "5m", "15m", "1h", "1d"])
def test_bars_line_up_with_the_ohlcv_bars(interval: str) -> None:
    sessions = week_sessions()
    trades = random_trades()
    table = pa.table({"ts_event": trades.ts, "price": trades.price, "size": trades.size})
    ohlcv = ohlcv_1s(table, sessions)
    if interval != "1s":
        ohlcv = resample(ohlcv, interval, sessions)
    bars = bar_index(trades.ts, sessions, interval)
    assert bars.bar_ts.tolist() == ohlcv["ts_event"].to_pylist()
    assert bars.session_id.tolist() == ohlcv["session_id"].to_pylist()
    volume = np.add.reduceat(trades.size, bars.starts[:-1])
    assert volume.tolist() == ohlcv["volume"].to_pylist()


def test_unsorted_or_outside_trades_are_refused_naming_the_row() -> None:
    sessions = week_sessions()
    ts = np.array([sessions.open_ns[0] + 5, sessions.open_ns[0] + 1], np.int64)
    with pytest.raises(HdiError, match="row 1 .* goes back in time"):
        bar_index(ts, sessions, "1m")
    with pytest.raises(HdiError, match="1 trades lie outside every trading session, first at row 0"):
        bar_index(np.array([sessions.close_ns[0]], np.int64), sessions, "1m")


def test_trades_from_table_reads_the_adjusted_price() -> None:
    table = pa.table({"ts_event": [1, 2], "price": [10, 20], "adjusted_price": [11, 21], "size": [1, 2],
                      "side": ["A", "B"]})
    assert trades_from_table(table, "adjusted_price").price.tolist() == [11, 21]
    with pytest.raises(HdiError, match="no column 'side'"):
        trades_from_table(table.drop(["side"]))
