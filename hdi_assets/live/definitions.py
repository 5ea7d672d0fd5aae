"""The live domain's Definitions (merged by the root hdi_assets/definitions.py)."""

from dagster import Definitions

from hdi_assets.live.assets import live_history_comparison, live_partition_replaced

LIVE_ASSETS = [live_history_comparison, live_partition_replaced]
defs = Definitions(assets=LIVE_ASSETS)
