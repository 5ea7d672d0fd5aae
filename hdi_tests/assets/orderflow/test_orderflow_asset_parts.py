"""The parts of the order-flow assets on their own: the front contract of each trade date, a check that finds a
bar whose flow does not add up (written into a scratch lake), and the load assets' inputs."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from orderflow_tapes import TICK, ct, random_trades, week_sessions

from hdi_assets.orderflow import checks, inputs, tables
from hdi_assets.orderflow.assets import flow_table, orderflow_delta
from hdi_assets.partitions import partition_key
from hdi_core.continuous.bars import ohlcv_1s, resample
from hdi_core.orderflow import aggressor_flow
from hdi_resources import lake


def test_front_contract_of_each_trade_date() -> None:
    sessions = week_sessions()
    ts = np.array([ct(2024, 3, 5, 18), ct(2024, 3, 6, 9), ct(2024, 3, 6, 18), ct(2024, 3, 7, 9)], np.int64)
    ticks = pa.table({"ts_event": ts, "instrument_id": [1, 1, 2, 2],
                      "raw_symbol": pa.array(["ESH4", "ESH4", "ESM4", "ESM4"]).dictionary_encode()})
    days = inputs.front_contracts(ticks, sessions)
    assert [(str(d.trade_date), d.raw_symbol, d.instrument_id) for d in days] == [
        ("2024-03-06", "ESH4", 1), ("2024-03-07", "ESM4", 2)]
    assert all(d.open_ns < d.close_ns and d.open_ns <= t for d, t in zip(days, ts[[0, 2]], strict=True))
    assert inputs.front_contracts(ticks.slice(0, 0), sessions) == []


@pytest.fixture
def scratch_lake(tmp_path, monkeypatch):
    monkeypatch.setenv("HDI_HOME", str(tmp_path))
    monkeypatch.delenv("HDI_LAKE_URL", raising=False)
    return tmp_path


def test_flow_check_finds_a_bar_that_does_not_add_up(scratch_lake) -> None:
    sessions, trades = week_sessions(), random_trades(31, 1_000)
    key = partition_key("ES", "2024-01-01")
    table = pa.table({"ts_event": trades.ts, "price": trades.price, "size": trades.size})
    one_second = ohlcv_1s(table, sessions)
    lake.write_table(one_second, "ohlcv_1s", symbol="ES", window="2024-01-01")
    lake.write_table(resample(one_second, "1m", sessions), "ohlcv_1m", symbol="ES", window="2024-01-01")
    flows = {g: aggressor_flow(trades, sessions, g) for g in ("1s", "1m")}
    assert checks.flow_outcome(flows, key).passed
    broken = flows["1m"].set_column(3, "buy_volume", pa.array(flows["1m"]["buy_volume"].to_numpy() + np.eye(
        1, flows["1m"].num_rows, 4, dtype=np.int64)[0]))
    outcome = checks.flow_outcome({**flows, "1m": broken}, key)
    assert not outcome.passed and outcome.violations == 1
    assert outcome.first_violations[0]["volume"] == outcome.first_violations[0]["bar_volume"] + 1
    assert checks.spec(checks.FLOW_CHECK, "orderflow_delta").blocking
    assert flow_table("1m") == "orderflow_delta_1m" and TICK > 0


def test_load_assets_read_what_the_assets_write() -> None:
    assert {k.to_user_string() for k in tables.orderflow_trade_tables.dependency_keys} == {
        "orderflow_delta", "orderflow_footprint", "volume_profile"}
    assert {k.to_user_string() for k in tables.orderflow_book_tables.dependency_keys} == {
        "absorption_zones", "iceberg_candidates"}
    assert orderflow_delta.check_keys


def test_the_domain_merges_into_the_root_definitions() -> None:
    from hdi_assets.definitions import defs
    from hdi_assets.orderflow.definitions import ORDERFLOW_ASSETS

    graph = defs.resolve_asset_graph()
    keys = {a.key for a in ORDERFLOW_ASSETS}
    assert keys <= graph.get_all_asset_keys()
    assert all(graph.get(k).partitions_def is not None for k in keys)
    assert defs.resolve_job_def("orderflow_job").partitions_def is not None
    names = {k.name for k in graph.asset_check_keys if k.asset_key in keys}
    assert names == {"flow_volume_matches_bars", "footprint_volume_matches_bars", "profile_volume_matches_sessions",
                     "absorption_evidence_exists", "iceberg_evidence_exists"}
