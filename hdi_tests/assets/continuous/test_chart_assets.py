"""The pictures on the materializations: one ES window of the continuous graph through Dagster (local gateway),
then the chart of panama_adjusted_ticks and the ohlcv_1s coverage strip are in the lake and in the metadata."""

from __future__ import annotations

import base64

import pytest
from dagster import AssetKey, DagsterInstance, materialize

from hdi_assets.continuous.assets import ohlcv_1s, ohlcv_bars, panama_adjusted_ticks, raw_ticks, roll_events
from hdi_assets.definitions import build_resources
from hdi_assets.partitions import partition_key
from hdi_resources import lake

WINDOW = "2024-07-01"  # the newest window: its adjustment needs only its own rolls
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def materialized(synthetic_gateway_env, tmp_path_factory):
    home = tmp_path_factory.mktemp("hdi_home")
    with pytest.MonkeyPatch.context() as env:
        for name, value in {"HDI_HOME": str(home), **synthetic_gateway_env}.items():
            env.setenv(name, value)
        instance = DagsterInstance.ephemeral()
        result = materialize([raw_ticks, roll_events, panama_adjusted_ticks, ohlcv_1s, ohlcv_bars],
                             partition_key=partition_key("ES", WINDOW), instance=instance,
                             resources=build_resources())
        assert result.success
        yield instance


def _metadata(instance: DagsterInstance, asset: str) -> dict:
    return instance.get_latest_materialization_event(AssetKey(asset)).asset_materialization.metadata


@pytest.mark.parametrize(("asset", "key", "table", "sidecar"), [
    ("panama_adjusted_ticks", "chart", "panama_adjusted_ticks", "_chart.png"),
    ("ohlcv_bars", "coverage", "ohlcv_1s", "_coverage.png"),
])
def test_materialization_shows_its_picture_and_the_lake_keeps_it(materialized, asset, key, table, sidecar):
    metadata = _metadata(materialized, asset)
    markdown = metadata[key].md_str
    prefix = markdown.index("data:image/png;base64,") + len("data:image/png;base64,")
    inline = base64.b64decode(markdown[prefix:markdown.index(")", prefix)])
    assert inline.startswith(PNG_MAGIC) and len(inline) < 150_000
    path = metadata[f"{key}_path"].path
    assert path.endswith(f"{table}/symbol=ES/window={WINDOW}/{sidecar}")
    assert open(path, "rb").read() == inline
    assert lake.has_partition(table, symbol="ES", window=WINDOW)  # the sidecar left the dataset readable
