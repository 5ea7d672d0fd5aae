"""ts_out on the live gateway: with the client's ts_out=True every record carries the gateway's wall-clock send
time, and the records themselves are unchanged."""

from __future__ import annotations

import time

import databento as db
import databento_dbn as dbn
import numpy as np
from live_client import DATASET, KEY, Collector

from hdi_gateway.live import make_state, start_live_thread

NS = 1_000_000_000
AT = int(np.datetime64("2024-03-05T19:00", "ns").astype(np.int64))


def _collect(port: int, ts_out: bool) -> Collector:
    client = db.Live(KEY, gateway="127.0.0.1", port=port, ts_out=ts_out)
    got = Collector()
    client.add_callback(got)
    client.subscribe(DATASET, "trades", "ES.v.0", stype_in="continuous", start=AT - 600 * NS)
    client.start()
    try:
        got.wait_until(lambda rs: sum(1 for r in rs if isinstance(r, dbn.TradeMsg)) >= 50)
    finally:
        client.terminate()
    return got


def test_every_record_carries_the_send_time_and_is_otherwise_unchanged(synthetic_market) -> None:
    gateway = start_live_thread(make_state(synthetic_market, AT, None, [KEY], None))
    try:
        before = time.time_ns()
        stamped = _collect(gateway.port, ts_out=True)
        after = time.time_ns()
        plain = _collect(gateway.port, ts_out=False)
    finally:
        gateway.stop()
    trades = stamped.of(dbn.TradeMsg)
    assert all(before <= r.ts_out <= after for r in trades)
    assert all(before <= r.ts_out <= after for r in stamped.of(dbn.SymbolMappingMsg))
    n = min(len(trades), len(plain.of(dbn.TradeMsg)))
    assert [(r.ts_recv, r.sequence, r.price) for r in trades[:n]] == \
        [(r.ts_recv, r.sequence, r.price) for r in plain.of(dbn.TradeMsg)[:n]]
