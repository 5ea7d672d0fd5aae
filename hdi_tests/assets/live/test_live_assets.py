"""history_equals_live on a captured stretch of a session: live capture (the unmodified databento.Live against
the live gateway) and the historical gateway agree, the check passes and history replaces the live partition;
one wrong live bar fails the check and blocks the replacement."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import TEST_API_KEY, backend_database, database_env
from dagster import MultiPartitionKey, instance_for_test, materialize

from hdi_app.live.service import CaptureConfig, CaptureService
from hdi_assets.live.assets import CHECK, live_history_comparison, live_partition_replaced
from hdi_assets.live.checks import compare_records
from hdi_gateway.live import make_state, start_live_thread
from hdi_resources.databento import DatabentoResource
from hdi_resources.db.resource import DatabaseResource
from hdi_resources.lake.live import read_live

NS = 1_000_000_000
AT = int(np.datetime64("2024-03-05T14:00", "ns").astype(np.int64))
DAY = "2024-03-05"
KEY = MultiPartitionKey({"symbol": "ES", "trade_date": DAY})


@pytest.fixture(scope="module")
def captured(synthetic_market, synthetic_gateway_env):
    """Three hours of ES trades and tbbo captured live into a fresh database and lake; yields (env, db, end)."""
    gateway = start_live_thread(make_state(synthetic_market, AT, None, [TEST_API_KEY], None))
    with backend_database("native", "live_assets") as database, pytest.MonkeyPatch.context() as env:
        for name, value in {**database_env(database), **synthetic_gateway_env}.items():
            env.setenv(name, value) if value is not None else env.delenv(name, raising=False)
        try:
            service = CaptureService(CaptureConfig(products=["ES"], schemas=["trades", "tbbo"],
                                                   gateway=f"127.0.0.1:{gateway.port}", start_ns=AT,
                                                   end_ns=AT + 3 * 3600 * NS), database)
            service.run()
        finally:
            gateway.stop()
        end = int(read_live("trades", "ES", DAY)["ts_recv"].to_numpy().max()) + 1
        yield env, database, end


def _materialize(end: int):
    span = {"config": {"start": str(AT), "end": str(end)}}
    with instance_for_test() as instance:
        return materialize([live_history_comparison, live_partition_replaced], partition_key=KEY,
                           resources={"databento": DatabentoResource.from_env(), "database": DatabaseResource()},
                           run_config={"ops": {"live_history_comparison": span, "live_partition_replaced": span}},
                           instance=instance, raise_on_error=False)


def test_one_wrong_live_bar_fails_the_check_and_blocks_the_replacement(captured) -> None:
    _, database, end = captured
    with database.raw() as conn, conn.cursor() as cur:
        cur.execute("UPDATE live_bars SET volume = volume + 1 WHERE ts = (SELECT min(ts) FROM live_bars) "
                    "RETURNING volume")
        assert cur.fetchone()
    result = _materialize(end)
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.check_name == CHECK and not evaluation.passed
    assert "volume differs first at bar 0" in evaluation.metadata["problems"].value
    assert not any(e.asset_key.to_user_string() == "live_partition_replaced"
                   for e in result.get_asset_materialization_events() if e.asset_key)
    with database.raw() as conn, conn.cursor() as cur:
        cur.execute("UPDATE live_bars SET volume = volume - 1 WHERE ts = (SELECT min(ts) FROM live_bars)")


def test_history_equals_live_then_history_replaces_it(captured) -> None:
    _, _, end = captured
    live_before = read_live("trades", "ES", DAY)
    assert live_before.num_rows > 100
    result = _materialize(end)
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.passed, evaluation.metadata["problems"].value
    assert evaluation.metadata["compared"].value == "trades, tbbo, 1s bars"
    assert result.success
    after = read_live("trades", "ES", DAY)
    assert compare_records("trades", live_before.select(after.column_names), after).equal


def test_the_live_domain_is_in_the_root_definitions() -> None:
    from dagster import AssetCheckKey, AssetKey

    from hdi_assets.definitions import defs
    from hdi_assets.live.definitions import LIVE_ASSETS

    graph = defs.resolve_asset_graph()
    for asset in LIVE_ASSETS:
        assert graph.get(asset.key).partitions_def.get_partition_keys()[0] == "ES|2024-01-01"
    spec = graph.get_check_spec(AssetCheckKey(AssetKey("live_history_comparison"), CHECK))
    assert spec.blocking
