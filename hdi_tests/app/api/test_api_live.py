"""GET /live/bars: server-sent events of each bar update, fed by NOTIFY from PostgreSQL (both backends)."""

from __future__ import annotations

import http.client
import json
import threading
import time

import numpy as np

from hdi_app.api.live import PATH
from hdi_app.api.server import start_api_thread
from hdi_core.live.bars import BAR_DTYPE
from hdi_resources.db.live import LiveBarPublisher, LiveBars

T0 = 1_709_650_800_000_000_000


def _bars(close: int, volume: int) -> np.ndarray:
    bar = np.zeros(1, BAR_DTYPE)
    bar["ts_event"], bar["trade_date"] = T0, 19787
    bar["open"] = bar["low"] = 5_000 * 10**9
    bar["high"] = bar["close"] = close
    bar["volume"], bar["trade_count"], bar["vwap"] = volume, volume, 5000.1
    return bar


def _events(port: int, path: str, want: int, into: list, timeout: float = 30) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.request("GET", path)
    answer = conn.getresponse()
    into.append(answer.getheader("Content-Type"))
    data, events = b"", 0
    while events < want:
        line = answer.fp.readline()
        if not line:
            break
        data += line
        events += line.startswith(b"data: ")
    into.append(data.decode())
    conn.close()


def test_bar_updates_arrive_as_server_sent_events(storage_db) -> None:
    api = start_api_thread(storage_db)
    port = api.server.server_address[1]
    try:
        publisher = LiveBarPublisher(storage_db)
        publisher.publish([LiveBars("ES.v.0", 10291, "ESH4", _bars(5_000 * 10**9, 1), False)])  # the newest stored
        got: list = []
        reader = threading.Thread(target=_events, args=(port, f"{PATH}?symbol=ES.v.0&timeout=20", 2, got))
        reader.start()
        time.sleep(1.0)  # the client is listening
        publisher.publish([LiveBars("NQ.v.0", 1, "NQH4", _bars(5_001 * 10**9, 2), False)])  # another symbol
        publisher.publish([LiveBars("ES.v.0", 10291, "ESH4", _bars(5_002 * 10**9, 3), True, sent_ns=42)])
        reader.join(timeout=30)
        publisher.close()
    finally:
        api.stop()
    assert got[0].startswith("text/event-stream")
    events = [json.loads(line[len("data: "):]) for line in got[1].splitlines() if line.startswith("data: ")]
    assert [e["close"] for e in events] == ["5000", "5002"]  # the stored state first, then the update; no NQ
    assert events[1]["is_closed"] and events[1]["sent_ns"] == 42 and events[1]["raw_symbol"] == "ESH4"
    assert events[1]["close_fixed"] == 5_002 * 10**9 and events[1]["volume"] == 3


def test_a_bad_push_request_is_a_json_400(storage_db) -> None:
    api = start_api_thread(storage_db)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", api.server.server_address[1], timeout=10)
        conn.request("GET", "/live/bars?symbol=ES.v.0&timeout=-3")
        answer = conn.getresponse()
        assert answer.status == 400 and "timeout" in json.loads(answer.read())["error"]
    finally:
        api.stop()
