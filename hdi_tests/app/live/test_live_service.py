"""`hdi live capture` against `hdi replay live` (child processes, the unmodified databento.Live inside): an
accelerated session (trades, tbbo, mbp-10 and mbo) with a dropped connection is captured with nothing lost and
nothing duplicated (every field equals the historical get_range of the same span), and the live bars equal the
historical bars."""

from __future__ import annotations

import re

import databento as db
import numpy as np
import pyarrow as pa
import pytest
from conftest import GATEWAY_CERT_DIR, TEST_API_KEY, backend_database, database_env
from live_fixtures import NS, capture_env, finish, live_gateway, ns_of, start_capture

from hdi_app.live import service  # noqa: F401 - the module under test, run as `hdi live capture`
from hdi_core.calendar import calendar_sessions
from hdi_core.continuous import bars as history_bars
from hdi_gateway.server import start_gateway_thread
from hdi_gateway.synthetic import SyntheticMarket
from hdi_resources.db.live import read_live_bars
from hdi_resources.lake.live import read_live

AT = "2024-03-05T15:00"  # 09:00 CT, an ES Tuesday: a busy stretch of one session
SPAN_NS = 60 * 60 * NS  # an hour of market time...
SPEED = "300"  # ... in twelve seconds of wall time
DROP_AFTER_NS = 40 * 60 * NS


@pytest.fixture(scope="module")
def historical():
    """The historical gateway over the same synthetic market (seed 7, default volume) as `hdi replay live`."""
    gateway = start_gateway_thread(SyntheticMarket(seed=7), cert_dir=GATEWAY_CERT_DIR)
    try:
        yield db.Historical(TEST_API_KEY, gateway=gateway.url)
    finally:
        gateway.stop()


def _history(client: db.Historical, schema: str, start: int, end: int) -> np.ndarray:
    store = client.timeseries.get_range(dataset="GLBX.MDP3", schema=schema, symbols=["ES.v.0"],
                                        stype_in="continuous", start=start, end=end)
    return store.to_ndarray()


def test_accelerated_session_with_a_dropped_connection_equals_history(historical) -> None:
    start, end = ns_of(AT), ns_of(AT) + SPAN_NS
    with backend_database("native", "live_capture") as database:
        env_base = database_env(database)
        # a TCP reset once the stream is past its catch-up and paced by the replay clock (unread bytes are lost)
        with live_gateway(AT, SPEED, faults=f"drop_at={start + DROP_AFTER_NS}") as gateway:
            env = capture_env(env_base, gateway)
            proc = start_capture(env, "--products", "ES", "--schemas", "trades,tbbo,mbp-10,mbo", "--start", str(start),
                                 "--end", str(end), "--flush-interval", "0.5", "--stall-after", "20")
            code, err = finish(proc, timeout=120)
        assert code == 0, err[-3000:]
        assert "1 reconnects" in err, err[-2000:]  # the fault dropped the connection once
        dropped = re.search(r"(\d+) replayed duplicates dropped", err)
        assert dropped and int(dropped[1]) >= 1, err[-6000:]  # the replay repeated what was held: dropped
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("HDI_HOME", env["HDI_HOME"])
            day = "2024-03-05"
            for schema in ("trades", "tbbo", "mbp-10", "mbo"):
                live = read_live(schema, "ES", day)
                recv = live["ts_recv"].to_numpy()
                assert len(recv) > 1000
                # up to the last instant captured, exclusive: the capture stops at --end, possibly between two
                # records of one instant (a book change sends several)
                live = live.filter(pa.array(recv < recv.max()))
                hist = _history(historical, schema, start - NS, int(recv.max()))
                hist_recv = hist["ts_recv"].astype(np.int64)  # the same instants (the gateway's range is on
                hist = hist[(hist_recv >= start) & (hist_recv < recv.max())]  # ts_event for trades)
                assert live.num_rows == len(hist), schema  # nothing lost, nothing twice
                for name in hist.dtype.names:  # every field of the record, in delivery order
                    if name.startswith("_") or name == "length":
                        continue
                    want = hist[name]
                    want = want.astype(str) if want.dtype.kind == "S" else want
                    got = live[name].to_numpy(zero_copy_only=False)
                    assert np.array_equal(got.astype(want.dtype), want), (schema, name)
            last = int(read_live("trades", "ES", day)["ts_recv"].to_numpy().max())
            trades = _history(historical, "trades", start - NS, last + NS)
            trades = trades[(trades["ts_recv"] >= start) & (trades["ts_recv"] <= last)]  # exactly those captured
            stored = read_live_bars(database, "ES.v.0", day)
        sessions = calendar_sessions("CME Globex Equity", start - NS * 86400, end + NS * 86400)
        order = np.argsort(trades["ts_event"], kind="stable")
        ticks = pa.table({"ts_event": trades["ts_event"][order].astype(np.int64), "price": trades["price"][order],
                          "size": trades["size"][order].astype(np.int64)})
        want_bars = history_bars.ohlcv_1s(ticks, sessions)
        assert [r["ts_ns"] for r in stored] == want_bars["ts_event"].to_pylist(), err[-3000:]
        for name in ("open", "high", "low", "close"):
            assert [r[f"{name}_fixed"] for r in stored] == want_bars[name].to_pylist(), name
        assert [r["volume"] for r in stored] == want_bars["volume"].to_pylist()
        assert [r["vwap"] for r in stored] == want_bars["vwap"].to_pylist()
