"""Lake locations come from the asset key and the partition key, never from names typed in asset bodies."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from dagster import AssetKey

from hdi_assets import lake_io
from hdi_assets.continuous.assets import raw_ticks
from hdi_assets.partitions import partition_key
from hdi_resources import lake


def test_an_asset_partition_lives_where_its_keys_say(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HDI_HOME", str(tmp_path))
    monkeypatch.delenv("HDI_LAKE_URL", raising=False)
    key = partition_key("ES", "2024-07-01")
    table = pa.table({"ts_event": [1, 2], "price": [5_000_000_000_000, 5_000_250_000_000]})
    lake_io.write(raw_ticks, key, table)
    assert lake_io.exists(raw_ticks, key) and not lake_io.exists(raw_ticks, partition_key("NQ", "2024-07-01"))
    assert lake_io.read(AssetKey("raw_ticks"), key).equals(table)  # by key or by definition: one place
    assert lake.read_table("raw_ticks", symbol="ES", window="2024-07-01").equals(table)
    assert lake_io.lake_name(AssetKey(["vendor", "es_trades"])) == "vendor/es_trades"
    assert lake_io.bar_table("1m") == "ohlcv_1m"
