"""The live domain's Definitions (merged by the root hdi_assets/definitions.py)."""

from dagster import Definitions

from hdi_assets.live.assets import live_history_comparison, live_partition_replaced
from hdi_assets.live.orderflow import live_orderflow_comparison, live_orderflow_replaced

LIVE_ASSETS = [live_history_comparison, live_partition_replaced, live_orderflow_comparison, live_orderflow_replaced]
defs = Definitions(assets=LIVE_ASSETS)
