"""Order flow: thin assets over hdi_core.orderflow. Delta, footprint and volume profile from the adjusted
continuous ticks (bars cut exactly as the ohlcv bars); absorption zones and iceberg candidates from the front
contract's mbp-10 and mbo, fetched one trade date at a time through the Databento resource and judged per
session (a zone or chain never spans two sessions). Parameters: configs/orderflow.yaml."""

from collections.abc import Callable, Iterator

import numpy as np
import pyarrow as pa
from dagster import AssetExecutionContext, MaterializeResult, asset

from hdi_assets import lake_io
from hdi_assets.continuous.assets import STEP_RETRY, ohlcv_1s, ohlcv_bars, panama_adjusted_ticks
from hdi_assets.orderflow import checks
from hdi_assets.orderflow.inputs import Window, adjusted_ticks, adjusted_trades, front_contracts, window_of
from hdi_assets.partitions import symbol_windows
from hdi_core.config.orderflow import orderflow_params
from hdi_core.orderflow import (
    ICEBERG_SCHEMA,
    ZONE_SCHEMA,
    absorption_zones,
    bar_index,
    iceberg_candidates,
    order_events,
    top_of_book,
    volume_profile,
)
from hdi_core.orderflow.checks import evidence_exists, merge
from hdi_core.orderflow.delta import flow_of_bars
from hdi_core.orderflow.footprint import footprint_of_bars
from hdi_resources.databento import DatabentoResource

FLOW_INTERVALS = ("1s", "1m", "5m", "15m", "1h", "1d")
FOOTPRINT_INTERVAL = "1m"
PROFILE_SUMMARY = "volume_profile_summary"
BOOK_COLUMNS = (("instrument_id", pa.int64()), ("raw_symbol", pa.string()), ("trade_date", pa.date32()))


def flow_table(interval: str) -> str:
    """The lake table orderflow_delta writes for one bar interval."""
    return f"orderflow_delta_{interval}"


def footprint_table(interval: str = FOOTPRINT_INTERVAL) -> str:
    return f"orderflow_footprint_{interval}"


@asset(
    partitions_def=symbol_windows,
    group_name="orderflow",
    deps=[panama_adjusted_ticks, ohlcv_1s, ohlcv_bars],
    check_specs=[checks.spec(checks.FLOW_CHECK, "orderflow_delta")],
    description="Aggressor flow per bar (1s, 1m, 5m, 15m, 1h, 1d: the ohlcv bars' own buckets): buy/sell aggressor "
    "volume and trade count ('B'/'A' on Databento trades), no-side trades apart, delta, cumulative delta per "
    "trade date. Checked: buy + sell + no-side volume equals each ohlcv bar's volume.",
)
def orderflow_delta(context: AssetExecutionContext):
    w = window_of(context)
    trades = adjusted_trades(context, w)
    flows = {}
    for interval in FLOW_INTERVALS:
        flows[interval] = flow_of_bars(trades, bar_index(trades.ts, w.sessions, interval))
        lake_io.write(flow_table(interval), context.partition_key, flows[interval])
    yield MaterializeResult(metadata={"trades": len(trades), **{f"bars_{k}": v.num_rows for k, v in flows.items()}})
    yield checks.result(checks.flow_outcome(flows, context.partition_key), "orderflow_delta")


@asset(
    partitions_def=symbol_windows,
    group_name="orderflow",
    deps=[panama_adjusted_ticks, ohlcv_bars],
    check_specs=[checks.spec(checks.FOOTPRINT_CHECK, "orderflow_footprint")],
    description="1-minute footprint: volume at each tick-aligned adjusted price by aggressor side, one row per "
    "traded level, diagonal imbalances flagged (configs/orderflow.yaml). Checked: volume per bar equals the bar's.",
)
def orderflow_footprint(context: AssetExecutionContext):
    w = window_of(context)
    trades = adjusted_trades(context, w)
    spec = orderflow_params(w.product.symbol).footprint
    table = footprint_of_bars(trades, bar_index(trades.ts, w.sessions, FOOTPRINT_INTERVAL), w.product.tick_size,
                              spec.imbalance_ratio, spec.imbalance_min_volume)
    lake_io.write(footprint_table(), context.partition_key, table)
    yield MaterializeResult(metadata={
        "rows": table.num_rows, "trades": len(trades),
        "buy_imbalances": int(table["buy_imbalance"].to_numpy(zero_copy_only=False).sum()),
        "sell_imbalances": int(table["sell_imbalance"].to_numpy(zero_copy_only=False).sum())})
    yield checks.result(checks.footprint_outcome(table, FOOTPRINT_INTERVAL, context.partition_key),
                        "orderflow_footprint")


@asset(
    partitions_def=symbol_windows,
    group_name="orderflow",
    deps=[panama_adjusted_ticks, ohlcv_bars],
    name="volume_profile",
    check_specs=[checks.spec(checks.PROFILE_CHECK, "volume_profile")],
    description="Volume profile per session (CME trade date) of the adjusted ticks: volume at every tick of the "
    "range, POC, value area (70% by default), high/low volume nodes; a summary row per session beside it. "
    "Checked: the profile's volume equals the daily bar's.",
)
def volume_profile_asset(context: AssetExecutionContext):
    w = window_of(context)
    trades = adjusted_trades(context, w)
    spec = orderflow_params(w.product.symbol).profile
    levels, summary = volume_profile(trades, w.sessions, w.product.tick_size, spec.value_area_share,
                                     spec.node_window_ticks, spec.hvn_factor, spec.lvn_factor)
    lake_io.write("volume_profile", context.partition_key, levels)
    lake_io.write(PROFILE_SUMMARY, context.partition_key, summary)
    yield MaterializeResult(metadata={"sessions": summary.num_rows, "levels": levels.num_rows})
    yield checks.result(checks.profile_outcome(summary, context.partition_key), "volume_profile")


def _book_days(context: AssetExecutionContext, databento: DatabentoResource, w: Window,
               schema: str) -> Iterator[tuple[object, pa.Table]]:
    """(trade date, its records) of the front contract, one trade date at a time (bounded memory)."""
    for day in front_contracts(adjusted_ticks(context, w), w.sessions):
        end = databento.clamp_end(w.product.dataset, schema, day.close_ns, context)
        if end <= day.open_ns:
            continue
        fetched = databento.get_range(dataset=w.product.dataset, schema=schema, symbols=[day.raw_symbol],
                                      stype_in="raw_symbol", start=day.open_ns, end=end, context=context)
        yield day, fetched.table


def _detect(context: AssetExecutionContext, databento: DatabentoResource, w: Window, schema: str,
            detect: Callable[[pa.Table], tuple[pa.Table, np.ndarray, np.ndarray]], empty: pa.Schema,
            pairs: tuple[tuple[str, str, str], ...], check_name: str) -> tuple[pa.Table, dict, object]:
    """Run one session detector over every trade date; rows carry their contract and trade date."""
    parts, outcomes, events = [], [], 0
    for day, records in _book_days(context, databento, w, schema):
        found, ts, sequence = detect(records)
        events += len(ts)
        outcomes.append(evidence_exists(check_name, found, ts, sequence, pairs))
        values = (day.instrument_id, day.raw_symbol, day.trade_date.astype("datetime64[D]").astype(object))
        for (name, kind), value in zip(BOOK_COLUMNS, values, strict=True):
            found = found.append_column(name, pa.repeat(pa.scalar(value, kind), found.num_rows))
        parts.append(found)
    full = pa.schema([*empty, *(pa.field(name, kind) for name, kind in BOOK_COLUMNS)])
    table = pa.concat_tables(parts) if parts else full.empty_table()
    return table, {"events": events, "trade_dates": len(parts)}, merge(check_name, outcomes)


@asset(
    partitions_def=symbol_windows,
    group_name="orderflow",
    deps=[panama_adjusted_ticks],
    retry_policy=STEP_RETRY,
    tags={"hdi/databento": "fetch"},
    pool="databento",
    name="absorption_zones",
    check_specs=[checks.spec(checks.ABSORPTION_CHECK, "absorption_zones")],
    description="Absorption zones of the front contract from its mbp-10, session by session: a best bid/ask that "
    "aggressors keep hitting while it holds or refills (rule and thresholds: configs/orderflow.yaml); outcome "
    "held/broke/open, the first and last absorbed trades as evidence. Checked: the evidence exists in the tape.",
)
def absorption_zones_asset(context: AssetExecutionContext, databento: DatabentoResource):
    w = window_of(context)
    spec = orderflow_params(w.product.symbol).absorption

    def detect(records: pa.Table) -> tuple[pa.Table, np.ndarray, np.ndarray]:
        book = top_of_book(records)
        return absorption_zones(book, spec.min_volume, spec.min_absorbed_ratio, spec.max_idle_ms), book.ts, \
            book.sequence

    pairs = (("first_index", "first_ts_recv", "first_sequence"), ("last_index", "last_ts_recv", "last_sequence"))
    table, meta, outcome = _detect(context, databento, w, "mbp-10", detect, ZONE_SCHEMA, pairs,
                                   checks.ABSORPTION_CHECK)
    lake_io.write("absorption_zones", context.partition_key, table)
    yield MaterializeResult(metadata={"zones": table.num_rows, **meta})
    yield checks.result(outcome, "absorption_zones")


@asset(
    partitions_def=symbol_windows,
    group_name="orderflow",
    deps=[panama_adjusted_ticks],
    retry_policy=STEP_RETRY,
    tags={"hdi/databento": "fetch"},
    pool="databento",
    name="iceberg_candidates",
    check_specs=[checks.spec(checks.ICEBERG_CHECK, "iceberg_candidates")],
    description="Iceberg candidates of the front contract from its mbo, session by session: executed volume beyond "
    "the displayed size through repeated refills at one price (rules price_level_refill and order_refill; "
    "configs/orderflow.yaml), labelled inference, with the evidence. Checked: the evidence exists in the tape.",
)
def iceberg_candidates_asset(context: AssetExecutionContext, databento: DatabentoResource):
    w = window_of(context)
    spec = orderflow_params(w.product.symbol).icebergs

    def detect(records: pa.Table) -> tuple[pa.Table, np.ndarray, np.ndarray]:
        events = order_events(records)
        return iceberg_candidates(events, spec.refill_window_ms, spec.size_tolerance, spec.min_refills), \
            events.ts, events.sequence

    pairs = (("first_index", "first_ts", "first_sequence"), ("last_index", "last_ts", "last_sequence"))
    table, meta, outcome = _detect(context, databento, w, "mbo", detect, ICEBERG_SCHEMA, pairs,
                                   checks.ICEBERG_CHECK)
    lake_io.write("iceberg_candidates", context.partition_key, table)
    yield MaterializeResult(metadata={"candidates": table.num_rows, **meta})
    yield checks.result(outcome, "iceberg_candidates")
