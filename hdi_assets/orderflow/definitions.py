"""The order-flow domain: its assets (their checks are declared on them), its database loads, and one job that
builds a symbol x window of them (after the continuous chain has built its adjusted ticks and bars)."""

from dagster import AssetSelection, Definitions, define_asset_job

from hdi_assets.orderflow.assets import (
    absorption_zones_asset,
    iceberg_candidates_asset,
    orderflow_delta,
    orderflow_footprint,
    volume_profile_asset,
)
from hdi_assets.orderflow.tables import orderflow_book_tables, orderflow_trade_tables
from hdi_assets.partitions import symbol_windows

TRADE_ASSETS = [orderflow_delta, orderflow_footprint, volume_profile_asset, orderflow_trade_tables]
BOOK_ASSETS = [absorption_zones_asset, iceberg_candidates_asset, orderflow_book_tables]
ORDERFLOW_ASSETS = [*TRADE_ASSETS, *BOOK_ASSETS]
orderflow_job = define_asset_job("orderflow_job", selection=AssetSelection.assets(*ORDERFLOW_ASSETS),
                                 partitions_def=symbol_windows,
                                 description="Order flow of one symbol x window: delta, footprint, volume profile, "
                                 "absorption zones, iceberg candidates, and their database tables.")
defs = Definitions(assets=ORDERFLOW_ASSETS, jobs=[orderflow_job])
