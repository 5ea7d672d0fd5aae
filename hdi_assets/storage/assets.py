"""The database end of the graph: each symbol x window's bars and rolls, replaced in one transaction."""

import datetime as dt

import pyarrow as pa
import pyarrow.compute as pc
from dagster import AssetExecutionContext, Backoff, Jitter, MaterializeResult, MetadataValue, RetryPolicy, asset

from hdi_assets import lake_io
from hdi_assets.continuous.assets import BAR_INTERVALS, ohlcv_1s, ohlcv_bars, roll_events
from hdi_assets.lake_io import bar_table
from hdi_assets.partitions import product_window, symbol_windows
from hdi_resources.db.resource import DatabaseResource

UTC_NS = pa.timestamp("ns", tz="UTC")
# A load that waited too long for a month another load held raises LoadBusyError having changed nothing: run it
# again a little later (jittered, so loads that collided do not collide again in step).
LOAD_RETRY = RetryPolicy(max_retries=4, delay=15, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS)


def _bars_for_load(table: pa.Table, granularity: str, root: str) -> pa.Table:
    """Lake bars (int64 fixed-point prices) in the continuous_bars column layout; prices stay int64 here and
    the storage layer turns them into exact NUMERIC."""
    n = table.num_rows
    return pa.table(
        {
            "root_symbol": pa.array([root] * n, pa.string()),
            "granularity": pa.array([granularity] * n, pa.string()),
            "ts": table["ts_event"].cast(pa.int64()).cast(UTC_NS),
            "trade_date": table["trade_date"].cast(pa.date32()),
            **{c: table[c] for c in ("open", "high", "low", "close", "volume", "trade_count", "vwap")},
        }
    )


@asset(
    partitions_def=symbol_windows,
    group_name="storage",
    retry_policy=LOAD_RETRY,
    deps=[ohlcv_1s, ohlcv_bars],
    description="continuous_bars rows of the symbol x window, every granularity (1s..1d), replaced in ONE "
    "transaction through COPY: a re-run never duplicates and no reader sees half a partition.",
)
def continuous_bars_table(context: AssetExecutionContext, database: DatabaseResource) -> MaterializeResult:
    product, window = product_window(context.partition_key)
    granularities = ("1s", *BAR_INTERVALS)
    data = pa.concat_tables(
        [
            _bars_for_load(lake_io.read(bar_table(g), context.partition_key), g, product.symbol)
            for g in granularities
        ]
    )
    context.log.info(f"loading {data.num_rows:,} bars of {product.continuous_symbol} {window}")
    result = database.replace_partition(
        "continuous_bars",
        {
            "continuous_symbol": product.continuous_symbol,
            "window": dt.date.fromisoformat(window),
            "adjustment_method": product.adjustment,
        },
        data,
        source="ohlcv_1s",
        run_id=None,
    )
    counts = {g: int(pc.sum(pc.equal(data["granularity"], g)).as_py()) for g in granularities}
    return MaterializeResult(
        metadata={
            "rows_inserted": result.inserted,
            "rows_replaced": result.deleted,
            "quarantined": result.quarantined,
            "seconds": round(result.seconds, 2),
            "rows_per_granularity": MetadataValue.json(counts),
        }
    )


@asset(
    partitions_def=symbol_windows,
    group_name="storage",
    retry_policy=LOAD_RETRY,
    deps=[roll_events],
    description="roll_events rows of the symbol x window (gap, both same-moment prices, method), replaced "
    "in one transaction.",
)
def roll_events_table(context: AssetExecutionContext, database: DatabaseResource) -> MaterializeResult:
    product, window = product_window(context.partition_key)
    events = lake_io.read(roll_events, context.partition_key)
    data = pa.table(
        {
            "switch_ts": events["switch_ns"].cast(UTC_NS),
            **{
                c: events[c]
                for c in (
                    "old_instrument_id",
                    "new_instrument_id",
                    "old_raw_symbol",
                    "new_raw_symbol",
                    "old_price",
                    "new_price",
                    "roll_gap",
                    "method",
                )
            },
            "reference_ts": events["reference_ns"].cast(UTC_NS),
        }
    )
    result = database.replace_partition(
        "roll_events",
        {"continuous_symbol": product.continuous_symbol, "window": dt.date.fromisoformat(window)},
        data,
        source="roll_events",
    )
    return MaterializeResult(metadata={"rows_inserted": result.inserted, "rows_replaced": result.deleted})
