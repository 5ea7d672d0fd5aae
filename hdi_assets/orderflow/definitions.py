"""The order-flow domain: its assets (their checks are declared on them) and its database loads."""

from dagster import Definitions

from hdi_assets.orderflow.assets import (
    absorption_zones_asset,
    iceberg_candidates_asset,
    orderflow_delta,
    orderflow_footprint,
    volume_profile_asset,
)
from hdi_assets.orderflow.tables import orderflow_book_tables, orderflow_trade_tables

TRADE_ASSETS = [orderflow_delta, orderflow_footprint, volume_profile_asset, orderflow_trade_tables]
BOOK_ASSETS = [absorption_zones_asset, iceberg_candidates_asset, orderflow_book_tables]
ORDERFLOW_ASSETS = [*TRADE_ASSETS, *BOOK_ASSETS]
defs = Definitions(assets=ORDERFLOW_ASSETS)
