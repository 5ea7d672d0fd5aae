"""The whole Definitions loads, as `dagster dev` and the daemon load it."""

import subprocess
import sys

from dagster import AssetKey, Definitions

from hdi_assets.definitions import PIPELINE_ASSETS, defs
from hdi_assets.partitions import symbol_windows

GRAPH = ["raw_ticks", "roll_events", "panama_adjusted_ticks", "ohlcv_1s", "ohlcv_bars", "roll_events_table",
         "continuous_bars_table"]
CHECKPOINTS = {"session_alignment", "ohlc_integrity", "indicator_sanity", "timestamp_continuity", "no_nan_or_inf",
               "volume_reconciliation", "ohlcv_1m_reconciliation"}


def test_definitions_load_with_the_whole_graph() -> None:
    Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} >= set(GRAPH)
    assert [a.key.to_user_string() for a in PIPELINE_ASSETS] == [*GRAPH[:5], *GRAPH[5:]]
    for name in GRAPH:
        assert graph.get(AssetKey(name)).partitions_def == symbol_windows
    checks = {k.name for k in graph.asset_check_keys if k.asset_key == AssetKey("ohlcv_1s")}
    assert checks == CHECKPOINTS
    assert all(graph.get_check_spec(k).blocking for k in graph.asset_check_keys)
    assert set(defs.resources) >= {"databento", "database"}


def test_partitions_are_symbols_by_half_year_windows() -> None:
    keys = symbol_windows.get_partition_keys()
    assert "ES|2024-01-01" in keys and "NQ|2024-07-01" in keys and "GC|2025-01-01" in keys
    windows = sorted({k.split("|")[1] for k in keys})
    assert windows[0] == "2024-01-01" and all(w[5:] in ("01-01", "07-01") for w in windows)


def test_dagster_cli_validates_the_code_location() -> None:
    done = subprocess.run([sys.executable, "-m", "dagster", "definitions", "validate", "-m", "hdi_assets.definitions"],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
