"""live_bars (migration 0016) on both backends: idempotent upserts, a closed bar never reopened, NOTIFY with
the bar as JSON in the same transaction."""

from __future__ import annotations

import json
import select

import numpy as np
import psycopg2

from hdi_core.live.bars import BAR_DTYPE
from hdi_resources.db.core import url_string
from hdi_resources.db.live import (
    CHANNEL,
    LiveBarPublisher,
    LiveBars,
    delete_live_day,
    latest_bar_json,
    read_live_bars,
)

T0 = 1_709_650_800_000_000_000


def _bar(close: int, volume: int, second: int = 0) -> np.ndarray:
    bar = np.zeros(1, BAR_DTYPE)
    bar["ts_event"], bar["trade_date"] = T0 + second * 10**9, 19787  # 2024-03-05
    bar["open"] = bar["low"] = 100 * 10**9
    bar["high"] = bar["close"] = close
    bar["volume"], bar["trade_count"], bar["vwap"] = volume, volume, 100.5
    return bar


def test_upserts_are_idempotent_and_closed_bars_final(storage_db) -> None:
    listen = psycopg2.connect(url_string(storage_db.app_url.set(drivername="postgresql")))
    listen.autocommit = True
    listen.cursor().execute(f"LISTEN {CHANNEL}")
    publisher = LiveBarPublisher(storage_db)
    try:
        publisher.publish([LiveBars("ES.v.0", 7, "ESH4", _bar(101 * 10**9, 1), False)])
        closed = LiveBars("ES.v.0", 7, "ESH4", _bar(102 * 10**9, 2), True, sent_ns=5)
        publisher.publish([closed])
        publisher.publish([closed])  # again: same row
        publisher.publish([LiveBars("ES.v.0", 7, "ESH4", _bar(109 * 10**9, 9), False)])  # late provisional
        rows = read_live_bars(storage_db, "ES.v.0", "2024-03-05")
        assert len(rows) == 1 and rows[0]["close_fixed"] == 102 * 10**9 and rows[0]["volume"] == 2
        assert rows[0]["is_closed"] and rows[0]["ts_ns"] == T0
        select.select([listen], [], [], 5)
        listen.poll()
        payloads = [json.loads(n.payload) for n in listen.notifies]
        assert [p["close"] for p in payloads] == ["101", "102", "102", "109"]
        assert payloads[1]["sent_ns"] == 5 and payloads[1]["ts"].startswith("2024-03-05T15:00:00")
        # the payload PostgreSQL builds equals the one bar_json builds from the stored row (a new client's first)
        stored = json.loads(latest_bar_json(storage_db, "ES.v.0"))
        for name in ("continuous_symbol", "ts", "ts_ns", "trade_date", "session_id", "instrument_id", "raw_symbol",
                     "open", "high", "low", "close", "close_fixed", "volume", "trade_count", "vwap", "is_closed"):
            assert payloads[2][name] == stored[name], name
        assert delete_live_day(storage_db, "ES.v.0", "2024-03-05") == 1
    finally:
        publisher.close()
        listen.close()


def test_one_statement_takes_each_bar_once_closed_state_first(storage_db) -> None:
    """Updates queued while a publish ran go out together: a bar met twice is written once, its closed state
    winning over any open one, the latest open state otherwise."""
    publisher = LiveBarPublisher(storage_db)
    try:
        count = publisher.publish([
            LiveBars("NQ.v.0", 8, "NQH4", _bar(101 * 10**9, 1), False),
            LiveBars("NQ.v.0", 8, "NQH4", _bar(102 * 10**9, 2), True),
            LiveBars("NQ.v.0", 8, "NQH4", np.concatenate([_bar(103 * 10**9, 3), _bar(104 * 10**9, 4, 1)]), False),
            LiveBars("NQ.v.0", 8, "NQH4", _bar(105 * 10**9, 5, 1), False),
        ])
        rows = read_live_bars(storage_db, "NQ.v.0", "2024-03-05", closed_only=False)
    finally:
        publisher.close()
    assert count == 2
    assert [(r["close_fixed"], r["is_closed"]) for r in rows] == [(102 * 10**9, True), (105 * 10**9, False)]
