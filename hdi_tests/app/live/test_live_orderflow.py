"""Order flow in `hdi live capture` (hdi_app.live.orderflow) against `hdi replay live` (child processes, the
unmodified databento.Live inside): over an accelerated session with a dropped connection, every live result
(delta 1s and 1m, footprint 1m, the session's profile, absorption zones, iceberg candidates) equals the historical
functions run on the historical get_range of the same records, exactly; the live rows in PostgreSQL equal them.

The synthetic book plants no icebergs; the test's configs/orderflow.yaml makes the iceberg rule take the refills
the synthetic book does make (a new order at an exhausted level within 1 s, any size, one refill), so the live
iceberg path runs end to end on non-empty results.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import databento as db
import numpy as np
import pyarrow as pa
import pytest
import yaml
from conftest import GATEWAY_CERT_DIR, TEST_API_KEY, backend_database, database_env
from live_fixtures import NS, capture_env, finish, live_gateway, ns_of, start_capture
from repo_paths import REPO_ROOT

from hdi_app.live.orderflow import lake_kind
from hdi_core.calendar import calendar_sessions, session_index
from hdi_core.config.orderflow import orderflow_params
from hdi_core.config.symbols import load_symbols
from hdi_core.orderflow import (
    Trades,
    absorption_zones,
    aggressor_flow,
    footprint,
    iceberg_candidates,
    order_events,
    side_bytes,
    top_of_book,
    volume_profile,
)
from hdi_gateway.server import start_gateway_thread
from hdi_gateway.synthetic import SyntheticMarket
from hdi_resources.db.orderflow import read_orderflow_rows
from hdi_resources.lake.live import read_live

AT = "2024-03-05T15:00"  # 09:00 CT, an ES Tuesday
SPAN_NS = 30 * 60 * NS  # half an hour of market time in six seconds of wall time
SPEED = "300"
DROP_AFTER_NS = 20 * 60 * NS
DAY = "2024-03-05"
ICEBERGS = {"refill_window_ms": 1000, "size_tolerance": 1.0, "min_refills": 1}


@pytest.fixture(scope="module")
def historical():
    gateway = start_gateway_thread(SyntheticMarket(seed=7), cert_dir=GATEWAY_CERT_DIR)
    try:
        yield db.Historical(TEST_API_KEY, gateway=gateway.url)
    finally:
        gateway.stop()


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """The repository's configs with ES's iceberg rule loosened to the synthetic book's refills."""
    folder = tmp_path / "configs"
    shutil.copytree(REPO_ROOT / "configs", folder)
    doc = yaml.safe_load((folder / "orderflow.yaml").read_text())
    doc["products"] = {"ES": {"icebergs": ICEBERGS}}
    (folder / "orderflow.yaml").write_text(yaml.safe_dump(doc))
    return folder


def _captured_prefix(client: db.Historical, schema: str, start: int, count: int) -> np.ndarray:
    """The historical records the capture took: from `start` on, as many as it stored (the capture stops at its
    end time, possibly inside one instant), checked record for record against the live lake."""
    live = read_live(schema, "ES", DAY)
    last = int(live["ts_recv"].cast(pa.int64()).to_numpy().max())  # a capture catching up overshoots its end
    store = client.timeseries.get_range(dataset="GLBX.MDP3", schema=schema, symbols=["ES.v.0"],
                                        stype_in="continuous", start=start - NS, end=last + NS)
    records = store.to_ndarray()
    records = records[records["ts_recv"].astype(np.int64) >= start][:count]
    for name in ("ts_recv", "sequence", "price", "size"):
        assert np.array_equal(live[name].cast(pa.int64()).to_numpy(), records[name].astype(np.int64)), \
            (schema, name)  # the live tape is exactly this prefix of history (the replay deduplicated)
    return records


def _sorted(table: pa.Table, keys: list[str]) -> pa.Table:
    return table.sort_by([(k, "ascending") for k in keys])


def _live(kind: str, columns: list[str]) -> pa.Table:
    return read_live(lake_kind(kind), "ES", DAY).select(columns)


def _assert_equal(kind: str, live: pa.Table, want: pa.Table, keys: list[str]) -> None:
    live, want = _sorted(live, keys), _sorted(want.select(live.column_names), keys)
    assert live.num_rows == want.num_rows, (kind, live.num_rows, want.num_rows)
    for name in live.column_names:
        assert live[name].equals(want[name].cast(live[name].type)), (kind, name)


def test_live_order_flow_equals_the_historical_functions(historical, config_dir: Path) -> None:
    start, end = ns_of(AT), ns_of(AT) + SPAN_NS
    with backend_database("native", "live_orderflow") as database:
        env_base = {**database_env(database), "HDI_CONFIG_DIR": str(config_dir)}
        with live_gateway(AT, SPEED, faults=f"drop_at={start + DROP_AFTER_NS}") as gateway:
            env = capture_env(env_base, gateway)
            proc = start_capture(env, "--products", "ES", "--schemas", "trades,mbp-10,mbo", "--start", str(start),
                                 "--end", str(end), "--flush-interval", "0.5", "--stall-after", "20")
            code, err = finish(proc, timeout=120)
        assert code == 0, err[-3000:]
        assert "1 reconnects" in err, err[-2000:]  # the fault dropped the connection once...
        dropped = re.search(r"(\d+) replayed duplicates dropped", err)
        assert dropped and int(dropped[1]) >= 1, err[-6000:]  # ...and its replay repeated records held: dropped
        assert "0 late trades left out, 0 publishing errors" in err, err[-3000:]
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("HDI_HOME", env["HDI_HOME"])
            mp.setenv("HDI_CONFIG_DIR", str(config_dir))
            params = orderflow_params("ES")
            assert params.icebergs.min_refills == 1
            tick = load_symbols().symbols["ES"].tick_size_fixed
            tapes = {s: _captured_prefix(historical, s, start, read_live(s, "ES", DAY).num_rows)
                     for s in ("trades", "mbp-10", "mbo")}
            sessions = calendar_sessions("CME Globex Equity", start - 3 * 86400 * NS, end + 3 * 86400 * NS)
            raw = tapes["trades"]
            order = np.argsort(raw["ts_event"], kind="stable")  # history's event order (in_event_order)
            ts = raw["ts_event"][order].astype(np.int64)
            inside = session_index(ts, sessions) >= 0
            trades = Trades(ts[inside], raw["price"][order][inside].astype(np.int64),
                            raw["size"][order][inside].astype(np.int64), side_bytes(raw["side"][order][inside]))
            fp, pr, ab, ic = params.footprint, params.profile, params.absorption, params.icebergs
            flow_cols = [c for c in aggressor_flow(trades, sessions, "1m").column_names if c != "session_id"]
            for interval in ("1s", "1m"):  # session_id is an index into the run's own calendar: not compared
                want = aggressor_flow(trades, sessions, interval)
                _assert_equal(f"delta-{interval}", _live(f"delta-{interval}", flow_cols), want, ["ts_event"])
            want_fp = footprint(trades, sessions, "1m", tick, fp.imbalance_ratio, fp.imbalance_min_volume)
            _assert_equal("footprint-1m", _live("footprint-1m", want_fp.column_names), want_fp,
                          ["ts_event", "price"])
            levels, summary = volume_profile(trades, sessions, tick, pr.value_area_share, pr.node_window_ticks,
                                             pr.hvn_factor, pr.lvn_factor)
            _assert_equal("profile", _live("profile", levels.column_names), levels, ["ts_event", "price"])
            _assert_equal("profile-summary", _live("profile-summary", summary.column_names), summary, ["ts_event"])
            zones = absorption_zones(top_of_book(tapes["mbp-10"]), ab.min_volume, ab.min_absorbed_ratio,
                                     ab.max_idle_ms)
            assert zones.num_rows > 0
            _assert_equal("absorption", _live("absorption", zones.column_names), zones, ["first_index", "side"])
            icebergs = iceberg_candidates(order_events(tapes["mbo"]), ic.refill_window_ms, ic.size_tolerance,
                                          ic.min_refills)
            assert icebergs.num_rows > 0  # the live iceberg path ran on real candidates
            _assert_equal("icebergs", _live("icebergs", icebergs.column_names), icebergs, ["rule", "first_index"])

            # PostgreSQL: the same results as source 'live' (the final profile over its provisional states)
            stored = read_orderflow_rows(database, "orderflow_delta", "ES.v.0", source="live")
            for interval in ("1s", "1m"):
                mine = stored.filter(pa.array(stored["granularity"].to_numpy(zero_copy_only=False) == interval))
                want = aggressor_flow(trades, sessions, interval)
                assert mine["delta"].to_pylist() == want["delta"].to_pylist(), interval
                assert mine["cum_delta"].to_pylist() == want["cum_delta"].to_pylist(), interval
            stored_fp = read_orderflow_rows(database, "orderflow_footprint", "ES.v.0", source="live")
            assert stored_fp["price"].cast(pa.int64()).to_pylist() == want_fp["price"].to_pylist()
            assert stored_fp["buy_volume"].to_pylist() == want_fp["buy_volume"].to_pylist()
            stored_profile = read_orderflow_rows(database, "orderflow_profile", "ES.v.0", source="live")
            assert stored_profile["volume"].to_pylist() == levels["volume"].to_pylist()
            assert stored_profile["is_poc"].to_pylist() == levels["is_poc"].to_pylist()
            assert read_orderflow_rows(database, "orderflow_absorption", "ES.v.0").num_rows == zones.num_rows
            assert read_orderflow_rows(database, "orderflow_icebergs", "ES.v.0").num_rows == icebergs.num_rows
