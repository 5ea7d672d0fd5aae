"""The database end of order flow: each symbol x window's tables replaced in one transaction per table
(hdi_resources/db/orderflow.py shapes the rows; the storage layer loads them)."""

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from hdi_assets import lake_io
from hdi_assets.orderflow.assets import (
    FLOW_INTERVALS,
    FOOTPRINT_INTERVAL,
    absorption_zones_asset,
    flow_table,
    footprint_table,
    iceberg_candidates_asset,
    orderflow_delta,
    orderflow_footprint,
    volume_profile_asset,
)
from hdi_assets.partitions import product_window, symbol_windows
from hdi_assets.storage.assets import LOAD_RETRY
from hdi_resources.db import orderflow as rows
from hdi_resources.db.resource import DatabaseResource


def _load(context: AssetExecutionContext, database: DatabaseResource, loads: dict) -> MaterializeResult:
    product, window = product_window(context.partition_key)
    done = {}
    for table, data in loads.items():
        result = rows.load_orderflow(database.database(), table, product.continuous_symbol, window, data,
                                     source=context.asset_key.to_user_string())
        done[table] = {"inserted": result.inserted, "replaced": result.deleted, "quarantined": result.quarantined}
    return MaterializeResult(metadata={"tables": MetadataValue.json(done),
                                       "rows_inserted": sum(d["inserted"] for d in done.values()),
                                       "quarantined": sum(d["quarantined"] for d in done.values())})


@asset(
    partitions_def=symbol_windows,
    group_name="orderflow",
    retry_policy=LOAD_RETRY,
    deps=[orderflow_delta, orderflow_footprint, volume_profile_asset],
    description="orderflow_delta (every interval), orderflow_footprint (1m) and orderflow_profile rows of the "
    "symbol x window, each table replaced in one transaction (readers never see half a window).",
)
def orderflow_trade_tables(context: AssetExecutionContext, database: DatabaseResource) -> MaterializeResult:
    product, _ = product_window(context.partition_key)
    pk = context.partition_key
    flows = {interval: lake_io.read(flow_table(interval), pk) for interval in FLOW_INTERVALS}
    return _load(context, database, {
        "orderflow_delta": rows.delta_rows(flows),
        "orderflow_footprint": rows.footprint_rows(lake_io.read(footprint_table(), pk), FOOTPRINT_INTERVAL,
                                                   product.adjustment),
        "orderflow_profile": rows.profile_rows(lake_io.read(volume_profile_asset, pk), product.adjustment),
    })


@asset(
    partitions_def=symbol_windows,
    group_name="orderflow",
    retry_policy=LOAD_RETRY,
    deps=[absorption_zones_asset, iceberg_candidates_asset],
    description="orderflow_absorption and orderflow_icebergs rows of the symbol x window (front contract, raw "
    "prices, evidence as ts_recv + sequence), each table replaced in one transaction.",
)
def orderflow_book_tables(context: AssetExecutionContext, database: DatabaseResource) -> MaterializeResult:
    pk = context.partition_key
    return _load(context, database, {
        "orderflow_absorption": rows.absorption_rows(lake_io.read(absorption_zones_asset, pk)),
        "orderflow_icebergs": rows.iceberg_rows(lake_io.read(iceberg_candidates_asset, pk)),
    })
