"""The order-flow assets through Dagster on the synthetic market: ES for one window, after the continuous chain;
every check passes, the lake tables agree with the ohlcv bars, the database serves them (both backends)."""

from __future__ import annotations

import numpy as np
import pyarrow.compute as pc
import pytest
from dagster import AssetKey, DagsterInstance, materialize

from hdi_assets.continuous.definitions import PIPELINE_ASSETS as CHAIN
from hdi_assets.definitions import build_resources
from hdi_assets.orderflow.assets import flow_table, footprint_table
from hdi_assets.orderflow.definitions import TRADE_ASSETS
from hdi_assets.partitions import partition_key
from hdi_resources import lake
from hdi_resources.db import Database
from hdi_resources.db.orderflow import query_orderflow

WINDOW = "2024-07-01"
CHECKS = {"flow_volume_matches_bars", "footprint_volume_matches_bars", "profile_volume_matches_sessions"}


@pytest.fixture(scope="module")
def built(storage_db: Database, synthetic_gateway_env, tmp_path_factory):
    home = tmp_path_factory.mktemp("hdi_home")
    with pytest.MonkeyPatch.context() as env:
        for name, value in {"HDI_HOME": str(home), **synthetic_gateway_env}.items():
            env.setenv(name, value)
        if storage_db.mode == "embedded":  # the chain's resource finds this module's server through HDI_HOME
            env.setenv("HDI_HOME", str(storage_db.home))
        result = materialize([*CHAIN, *TRADE_ASSETS], partition_key=partition_key("ES", WINDOW),
                             instance=DagsterInstance.ephemeral(), resources=build_resources(),
                             selection=[*(a.key for a in CHAIN), *(a.key for a in TRADE_ASSETS)])
        yield result, storage_db


def test_every_order_flow_check_passes(built) -> None:
    result, _ = built
    assert result.success
    evaluations = [e for e in result.get_asset_check_evaluations() if e.check_name in CHECKS]
    assert {e.check_name for e in evaluations} == CHECKS
    assert all(e.passed for e in evaluations), [(e.check_name, e.metadata) for e in evaluations if not e.passed]


def test_lake_tables_agree_with_the_bars(built) -> None:
    keys = {"symbol": "ES", "window": WINDOW}
    bars = lake.read_table("ohlcv_1m", **keys)
    flow = lake.read_table(flow_table("1m"), **keys)
    traded = bars.filter(pc.greater(bars["trade_count"], 0))
    assert flow["ts_event"].to_pylist() == traded["ts_event"].to_pylist()
    assert flow["volume"].to_pylist() == traded["volume"].to_pylist()
    sides = flow["buy_volume"].to_numpy() + flow["sell_volume"].to_numpy()
    assert int(sides.sum()) > 0 and int(flow["no_side_volume"].to_numpy().sum()) == 0  # the market gives sides
    foot = lake.read_table(footprint_table(), **keys)
    assert int(pc.sum(foot["buy_volume"]).as_py() + pc.sum(foot["sell_volume"]).as_py()) == int(sides.sum())
    tick = 250_000_000
    assert bool(np.all(foot["price"].to_numpy() % tick == 0))


def test_database_serves_them(built) -> None:
    _, db = built
    delta = query_orderflow(db, "ES", "delta-1d", max_rows=None)
    daily = lake.read_table("ohlcv_1d", symbol="ES", window=WINDOW)
    assert delta["volume"].to_pylist() == daily["volume"].to_pylist()
    profile = query_orderflow(db, "ES.v.0", "profile", max_rows=None)
    assert sum(profile["is_poc"].to_pylist()) == daily.num_rows
    assert query_orderflow(db, "ES", "footprint-1m", limit=10).num_rows == 10
    assert AssetKey("orderflow_trade_tables") in {a.key for a in TRADE_ASSETS}
