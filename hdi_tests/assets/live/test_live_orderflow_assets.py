"""orderflow_history_equals_live on a captured end of a session (through its close, so the profile is final):
live capture with its order flow (the unmodified databento.Live against the live gateway) and the historical
functions on the historical records agree, the check passes and history replaces the live order-flow rows; one
wrong live result fails the check and blocks the replacement."""

from __future__ import annotations

import datetime as dt
import shutil

import numpy as np
import pyarrow as pa
import pytest
import yaml
from conftest import GATEWAY_CERT_DIR, TEST_API_KEY, backend_database, database_env
from dagster import MultiPartitionKey, instance_for_test, materialize
from repo_paths import REPO_ROOT

from hdi_app.live.orderflow import attach, lake_kind
from hdi_app.live.service import CaptureConfig, CaptureService
from hdi_assets.live.orderflow import ORDERFLOW_CHECK, live_orderflow_comparison, live_orderflow_replaced
from hdi_gateway.live import make_state, start_live_thread
from hdi_gateway.server import start_gateway_thread
from hdi_gateway.synthetic import SyntheticMarket
from hdi_resources.databento import DatabentoResource
from hdi_resources.db.orderflow import read_orderflow_rows
from hdi_resources.db.resource import DatabaseResource
from hdi_resources.lake.live import LiveLake, read_live

NS = 1_000_000_000
AT = int(np.datetime64("2024-03-05T21:30", "ns").astype(np.int64))  # 15:30 CT: the last half hour of the day
END = int(np.datetime64("2024-03-05T23:00:30", "ns").astype(np.int64))  # past the next open: the day is closed
DAY = "2024-03-05"
KEY = MultiPartitionKey({"symbol": "ES", "trade_date": DAY})


@pytest.fixture(scope="module")
def captured(tmp_path_factory):
    """The end of an ES session (trades, mbp-10, mbo) captured live with its order flow; yields the database."""
    configs = tmp_path_factory.mktemp("configs") / "configs"
    shutil.copytree(REPO_ROOT / "configs", configs)
    doc = yaml.safe_load((configs / "orderflow.yaml").read_text())
    doc["products"] = {"ES": {"icebergs": {"refill_window_ms": 1000, "size_tolerance": 1.0, "min_refills": 1}}}
    (configs / "orderflow.yaml").write_text(yaml.safe_dump(doc))
    market = SyntheticMarket(seed=7)  # default volume: the book has absorption zones and refills to find
    historical = start_gateway_thread(market, cert_dir=GATEWAY_CERT_DIR)
    gateway = start_live_thread(make_state(market, AT, None, [TEST_API_KEY], None))
    history_env = {"DATABENTO_API_KEY": TEST_API_KEY, **historical.client_env()}
    with backend_database("native", "live_orderflow_assets") as database, pytest.MonkeyPatch.context() as env:
        for name, value in {**database_env(database), **history_env,
                            "HDI_CONFIG_DIR": str(configs)}.items():
            env.setenv(name, value) if value is not None else env.delenv(name, raising=False)
        try:
            service = CaptureService(CaptureConfig(products=["ES"], schemas=["trades", "mbp-10", "mbo"],
                                                   gateway=f"127.0.0.1:{gateway.port}", start_ns=AT, end_ns=END),
                                     database)
            attach(service, database)
            service.run()
        finally:
            gateway.stop()
        try:
            yield database
        finally:
            historical.stop()


def _materialize():
    span = {"config": {"start": str(AT)}}  # to the session's close
    with instance_for_test() as instance:
        return materialize([live_orderflow_comparison, live_orderflow_replaced], partition_key=KEY,
                           resources={"databento": DatabentoResource.from_env(), "database": DatabaseResource()},
                           run_config={"ops": {"live_orderflow_comparison": span, "live_orderflow_replaced": span}},
                           instance=instance, raise_on_error=False)


def test_one_wrong_live_result_fails_the_check_and_blocks_the_replacement(captured) -> None:
    lake = LiveLake()
    kind = lake_kind("delta-1m")
    good = read_live(kind, "ES", DAY)
    assert good.num_rows > 20
    extra = good.slice(0, 1)
    lake.append(kind, "ES", DAY, extra.set_column(extra.schema.get_field_index("delta"), "delta",
                                                  pa.array([extra["delta"][0].as_py() + 1])))
    result = _materialize()
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.check_name == ORDERFLOW_CHECK and not evaluation.passed
    assert "delta-1m" in evaluation.metadata["problems"].value
    assert not any(e.asset_key.to_user_string() == "live_orderflow_replaced"
                   for e in result.get_asset_materialization_events() if e.asset_key)
    lake.compact(kind, "ES", DAY)  # back to the captured results: drop the extra chunk
    from hdi_resources.lake.live import replace_with_history
    replace_with_history(kind, "ES", DAY, good)


def test_history_equals_live_then_history_replaces_the_live_rows(captured) -> None:
    database = captured
    live_rows = read_orderflow_rows(database, "orderflow_delta", "ES.v.0", source="live")
    assert set(live_rows["trade_date"].to_pylist()) >= {dt.date(2024, 3, 5)}
    result = _materialize()
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.passed, evaluation.metadata["problems"].value
    compared = evaluation.metadata["compared"].value.split(", ")
    assert set(compared) == {"delta-1s", "delta-1m", "footprint-1m", "profile", "profile-summary", "absorption",
                             "icebergs"}
    assert result.success
    stored = read_orderflow_rows(database, "orderflow_delta", "ES.v.0")
    day = stored.filter(pa.array(np.array(stored["trade_date"].to_pylist()) == dt.date(2024, 3, 5)))
    assert day.num_rows == live_rows.filter(pa.array(np.array(live_rows["trade_date"].to_pylist())
                                                     == dt.date(2024, 3, 5))).num_rows
    assert set(day["source"].to_pylist()) == {"history"}
    for table in ("orderflow_absorption", "orderflow_icebergs"):
        rows = read_orderflow_rows(database, table, "ES.v.0").to_pylist()
        mine = [r["source"] for r in rows if r["trade_date"] == dt.date(2024, 3, 5)]
        assert mine and set(mine) == {"history"}, table
        assert {r["source"] for r in rows if r["trade_date"] > dt.date(2024, 3, 5)} <= {"live"}  # the next day


def test_the_live_orderflow_assets_are_in_the_root_definitions() -> None:
    from dagster import AssetCheckKey, AssetKey

    from hdi_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    spec = graph.get_check_spec(AssetCheckKey(AssetKey("live_orderflow_comparison"), ORDERFLOW_CHECK))
    assert spec.blocking
    assert graph.get(AssetKey("live_orderflow_replaced")).partitions_def is not None
