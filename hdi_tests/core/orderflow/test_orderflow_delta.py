"""Aggressor flow: a hand-built tape with known answers, a plain-loop oracle on random tapes, the real sample."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
from orderflow_tapes import TICK, A, B, N, ct, random_trades, week_sessions
from repo_paths import DBN_SAMPLES

from hdi_core.calendar import NS, calendar_sessions, session_index
from hdi_core.dbn.arrow import records_to_table
from hdi_core.dbn.decode import decode_file
from hdi_core.orderflow import Trades, aggressor_flow, trades_from_table

SAMPLE_TRADES = DBN_SAMPLES / "dbn" / "test_data.trades.v3.dbn.zst"


def test_known_answers_one_minute() -> None:
    sessions = week_sessions()
    t0 = ct(2024, 3, 6, 9, 30)
    ts = np.array([t0, t0 + 1, t0 + 10 * NS, t0 + 61 * NS, t0 + 62 * NS, ct(2024, 3, 7, 9, 30)], np.int64)
    trades = Trades(ts, np.full(6, 5000 * NS), np.array([5, 3, 2, 7, 1, 4]), np.array([B, A, N, A, A, B], np.uint8))
    flow = aggressor_flow(trades, sessions, "1m").to_pylist()
    assert [r["ts_event"] for r in flow] == [t0, t0 + 60 * NS, ct(2024, 3, 7, 9, 30)]
    first, second, third = flow
    assert (first["buy_volume"], first["sell_volume"], first["no_side_volume"]) == (5, 3, 2)
    assert (first["buy_count"], first["sell_count"], first["no_side_count"]) == (1, 1, 1)
    assert (first["volume"], first["trade_count"], first["delta"], first["cum_delta"]) == (10, 3, 2, 2)
    assert (second["delta"], second["cum_delta"]) == (-8, -6)
    assert (third["delta"], third["cum_delta"]) == (4, 4)  # a new trade date restarts the cumulative delta


def _oracle(trades: Trades, sessions, step: int | None) -> dict[int, list[int]]:
    """Per bar timestamp: [buy, sell, none volume, buy, sell, none count], by plain loops over the trades."""
    sid = session_index(trades.ts, sessions)
    out: dict[int, list[int]] = defaultdict(lambda: [0] * 6)
    days = sessions.trade_date
    for i in range(len(trades)):
        s = int(sid[i])
        t = int(trades.ts[i])
        if step is None:
            first = next(j for j in range(len(days)) if days[j] == days[s])
            key = int(sessions.open_ns[first])
        else:
            opened = int(sessions.open_ns[s])
            key = opened + (t - opened) // step * step
        col = {B: 0, A: 1, N: 2}[int(trades.side[i])]
        out[key][col] += int(trades.size[i])
        out[key][col + 3] += 1
    return out


@pytest.mark.parametrize(("interval", "step"), [("1s", NS), ("1m", 60 * NS), ("15m", 900 * NS), ("1d", None)])
@pytest.mark.parametrize("seed", [1, 2])
def test_matches_a_plain_loop_oracle(interval: str, step: int | None, seed: int) -> None:
    sessions = week_sessions()
    trades = random_trades(seed, 3_000)
    flow = aggressor_flow(trades, sessions, interval)
    expected = _oracle(trades, sessions, step)
    got = {r["ts_event"]: [r[c] for c in ("buy_volume", "sell_volume", "no_side_volume", "buy_count",
                                          "sell_count", "no_side_count")] for r in flow.to_pylist()}
    assert got == dict(expected)
    rows = flow.to_pylist()
    running: dict = defaultdict(int)
    for r in rows:
        running[r["trade_date"]] += r["buy_volume"] - r["sell_volume"]
        assert r["cum_delta"] == running[r["trade_date"]]
        assert r["volume"] == r["buy_volume"] + r["sell_volume"] + r["no_side_volume"]
    assert sum(r["volume"] for r in rows) == int(trades.size.sum())


def test_real_sample_trades() -> None:
    decoded = decode_file(SAMPLE_TRADES)
    table = records_to_table(decoded.records_of())
    trades = trades_from_table(table)
    # checked by hand: two sell-aggressor trades of 5 and 21 at 3720.25 on 2020-12-28, 13:00:00 UTC
    assert trades.side.tolist() == [A, A] and trades.size.tolist() == [5, 21]
    sessions = calendar_sessions("CME Globex Equity", int(trades.ts[0]) - 86_400 * NS, int(trades.ts[0]) + 86_400 * NS)
    flow = aggressor_flow(trades, sessions, "1m").to_pylist()
    assert len(flow) == 1
    assert (flow[0]["sell_volume"], flow[0]["buy_volume"], flow[0]["delta"], flow[0]["volume"]) == (26, 0, -26, 26)
    assert int(trades.price[0]) == 3720 * NS + TICK
