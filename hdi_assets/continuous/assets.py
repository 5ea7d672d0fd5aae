"""raw_ticks -> roll_events -> panama_adjusted_ticks -> ohlcv_1s -> ohlcv_bars: thin assets over pure functions.

Each asset reads its inputs from the Parquet lake (or the Databento resource), calls the math in rolls.py,
adjust.py and bars.py, writes its partition atomically, and reports what it did as metadata.
"""

import datetime as dt
import json

import numpy as np
import pyarrow as pa
from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetDep,
    AssetExecutionContext,
    DataVersion,
    MaterializeResult,
    MetadataValue,
    RetryPolicy,
    asset,
)

from hdi_assets import lake_io
from hdi_assets.continuous import charts, roll_inputs
from hdi_assets.continuous import checks as chain_checks
from hdi_assets.continuous.checks import ADJUSTMENT_CHECKS, DERIVED_BAR_CHECKS, ONE_SECOND_CHECKS, check_result
from hdi_assets.continuous.second_bars import as_ticks, in_event_order, one_second_bars
from hdi_assets.lake_io import bar_table
from hdi_assets.partitions import (
    ROLL_HASH_METADATA,
    ROLL_WINDOWS,
    ProductConfig,
    adjusts_with,
    half_year_windows,
    partition_key,
    product_window,
    symbol_windows,
)
from hdi_core import checks
from hdi_core.calendar import split_sessions
from hdi_core.continuous import adjust, bars, rolls
from hdi_core.digest import table_digest
from hdi_core.units import NS
from hdi_resources.databento import DatabentoResource

BAR_INTERVALS = ("1m", "5m", "15m", "1h", "1d")
CHECKPOINTS = ONE_SECOND_CHECKS  # every check ohlcv_1s declares: the five checkpoints and the reconciliations
# A transient failure of the whole step (after the resource's own HTTP retries) is retried by Dagster.
STEP_RETRY = RetryPolicy(max_retries=2, delay=5)
# Final settlements are published after the trade date; fetch past the switch so the last ones are final.
def _partition(context: AssetExecutionContext) -> tuple[ProductConfig, str, int, int]:
    """The product, the window key and the window's time range in ns.

    A window owns whole trading sessions: those whose CME trade date falls in it. Its range therefore runs
    from the open of its first session (17:00 CT the evening before) to the close of its last one, so no
    session, and no daily bar, is ever split between two windows.
    """
    product, window = product_window(context.partition_key)
    span = context.partition_time_window
    window_ns = int(span.start.timestamp()) * NS, int(span.end.timestamp()) * NS
    start_ns, end_ns = roll_inputs.session_range(product, *window_ns)
    return product, window, start_ns, end_ns


# Reach far enough past a window edge for the segments of its first/last trade dates (Christmas + weekend).
def _roll_windows(product: ProductConfig, window: str) -> list[str]:
    """The windows whose rolls move this window's prices (this and every later window for a backward method,
    this and every earlier one for a forward one) that have roll events in the lake."""
    return [
        w
        for w in half_year_windows.get_partition_keys()
        if adjusts_with(product, window, w) and lake_io.exists(roll_events, partition_key(product.symbol, w))
    ]


@asset(
    partitions_def=symbol_windows,
    group_name="continuous",
    retry_policy=STEP_RETRY,
    tags={"hdi/databento": "fetch"},
    pool="databento",  # op concurrency pool: caps parallel Databento fetches, backfills included
    description="Trades of the continuous symbol (e.g. ES.v.0) for the window, fetched once through the "
    "Databento resource (cache-first, budget-guarded); instrument id and raw symbol kept per tick.",
)
def raw_ticks(context: AssetExecutionContext, databento: DatabentoResource) -> MaterializeResult:
    product, window, start_ns, end_ns = _partition(context)
    end_ns = databento.clamp_end(product.dataset, "trades", end_ns, context)
    fetched = databento.get_range(
        dataset=product.dataset,
        schema="trades",
        symbols=[product.continuous_symbol],
        stype_in="continuous",
        start=start_ns,
        end=end_ns,
        context=context,
    )
    ticks = roll_inputs.switch_at_trade_date_open(databento, product, fetched, start_ns, end_ns, context)
    instrument_ids = np.unique(ticks.column("instrument_id").to_numpy()) if ticks.num_rows else np.array([], int)
    symbols_by_id = databento.raw_symbols(product.dataset, instrument_ids.tolist(), start_ns, end_ns)
    raw_symbol = pa.array([symbols_by_id[int(i)] for i in instrument_ids], pa.string())
    codes = np.searchsorted(instrument_ids, ticks.column("instrument_id").to_numpy())
    table = pa.table(
        {
            "ts_event": ticks.column("ts_event").cast(pa.int64()),
            "price": ticks.column("price").cast(pa.int64()),
            "size": ticks.column("size").cast(pa.int64()),
            "instrument_id": ticks.column("instrument_id").cast(pa.int64()),
            "raw_symbol": pa.DictionaryArray.from_arrays(pa.array(codes, pa.int32()), raw_symbol),
            # index time and sequence: what tells a record delivered twice from several trades at one ts_event
            "ts_recv": ticks.column("ts_recv").cast(pa.int64()),
            "sequence": ticks.column("sequence").cast(pa.int64()),
            "side": ticks.column("side"),  # the aggressor ('B' buy, 'A' sell, 'N' none): order flow reads it
        }
    )
    path = lake_io.write(context.asset_key, context.partition_key, table)
    mappings = {
        symbol: [
            {"start_date": str(i.start_date), "end_date": str(i.end_date), "instrument_id": i.symbol} for i in intervals
        ]
        for symbol, intervals in fetched.mappings.items()
    }
    lake_io.write_sidecar(context.asset_key, context.partition_key, "mappings.json", json.dumps(mappings))
    return MaterializeResult(
        metadata={
            "rows": table.num_rows,
            "bytes": fetched.bytes,
            "cost_usd": fetched.cost_usd,
            "chunks_from_cache": fetched.from_cache,
            "contracts": ", ".join(sorted(symbols_by_id.values())),
            "path": MetadataValue.path(str(path)),
        }
    )


@asset(
    partitions_def=symbol_windows,
    group_name="continuous",
    deps=[raw_ticks],
    retry_policy=STEP_RETRY,
    tags={"hdi/databento": "fetch"},
    pool="databento",  # op concurrency pool: caps parallel Databento fetches, backfills included
    description="Every roll of the continuous symbol in the window: when it switches contract, the old and new "
    "contract, both prices at the SAME moment (settlements of the last session before the roll, or both "
    "contracts' last trades in the final minutes), and the gap new - old.",
)
def roll_events(context: AssetExecutionContext, databento: DatabentoResource) -> MaterializeResult:
    product, window, start_ns, end_ns = _partition(context)
    # Look a week back so a switch on the window's first day is seen against the previous contract.
    lookback = dt.timedelta(days=7)
    lookback_ns = int(lookback.total_seconds()) * NS
    start_date = dt.datetime.fromtimestamp(start_ns / NS, dt.UTC).date()
    end_ns = databento.clamp_end(product.dataset, "trades", end_ns, context)
    end_date = dt.datetime.fromtimestamp(end_ns / NS, dt.UTC).date() + dt.timedelta(days=1)
    intervals = databento.mapping_intervals(product.dataset, product.continuous_symbol, start_date - lookback, end_date)
    switches = rolls.switches_from_mappings(intervals)
    reach = roll_inputs.EDGE_REACH_NS
    sessions = product.sessions(start_ns - reach - lookback_ns, end_ns + reach)
    switches = rolls.switch_at(switches, sessions, product.switch_at)
    switches = switches.filter(roll_inputs.owned_switches(product, switches, start_ns, end_ns))
    ids = sorted(set(switches["old_instrument_id"].to_pylist()) | set(switches["new_instrument_id"].to_pylist()))
    raw = databento.raw_symbols(product.dataset, ids, start_ns - 30 * 86_400 * NS, end_ns)
    events = roll_inputs.measure_roll_gaps(databento, product, switches, raw)
    lake_io.write(context.asset_key, context.partition_key, events)
    rows = events.to_pylist()
    table_md = "| switch (UTC) | old | new | old price | new price | gap | method |\n|---|---|---|---|---|---|---|\n"
    table_md += "".join(
        f"| {dt.datetime.fromtimestamp(r['switch_ns'] / NS, dt.UTC):%Y-%m-%d %H:%M} | {r['old_raw_symbol']} | "
        f"{r['new_raw_symbol']} | {r['old_price'] / NS:.2f} | {r['new_price'] / NS:.2f} | {r['roll_gap'] / NS:+.2f} "
        f"| {r['method']} |\n"
        for r in rows
    )
    digest = table_digest(events)
    return MaterializeResult(
        metadata={"rolls": len(rows), "roll_table": MetadataValue.md(table_md), ROLL_HASH_METADATA: digest},
        data_version=DataVersion(digest),  # the same rolls again leave downstream windows fresh
    )


@asset(
    partitions_def=symbol_windows,
    group_name="continuous",
    deps=[raw_ticks, AssetDep("roll_events", partition_mapping=ROLL_WINDOWS)],
    check_specs=[
        AssetCheckSpec(name, asset="panama_adjusted_ticks", blocking=True, partitions_def=symbol_windows)
        for name in ADJUSTMENT_CHECKS
    ],
    description="Back-adjusted continuous ticks: each tick plus the gaps of every later roll (this window's and "
    "every later window's), exact int64 arithmetic; the newest contract is unchanged.",
)
def panama_adjusted_ticks(context: AssetExecutionContext):
    product, window, start_ns, end_ns = _partition(context)
    ticks = lake_io.read(raw_ticks, context.partition_key)
    roll_windows = _roll_windows(product, window)
    events = _roll_events_from(product, window)
    method = product.adjustment
    adjusted = adjust.adjust(
        method,
        ticks["ts_event"].to_numpy(),
        ticks["price"].to_numpy(),
        events["switch_ns"].to_numpy(),
        events["roll_gap"].to_numpy(),
        events["old_price"].to_numpy(),
        events["new_price"].to_numpy(),
    )
    table = ticks.append_column("adjusted_price", pa.array(adjusted, pa.int64()))
    lake_io.write(context.asset_key, context.partition_key, table)
    yield MaterializeResult(
        metadata={
            "rows": table.num_rows,
            "method": method,
            "rolls_applied": events.num_rows,
            "windows_of_rolls": ", ".join(roll_windows) or "none",
            **charts.adjusted_chart(context.asset_key, context.partition_key, method, table, events),
        }
    )
    limits = chain_checks.thresholds(product)
    roll_outcome = checks.roll_continuity(table, ticks, events, method, limits.rolls.ratio_tolerance)
    yield check_result(chain_checks.with_severity(roll_outcome, limits), "panama_adjusted_ticks")
    if method.startswith("panama"):
        within = checks.within_contract_changes(ticks["price"].to_numpy(), adjusted, ticks["instrument_id"].to_numpy())
        yield check_result(chain_checks.with_severity(within, limits), "panama_adjusted_ticks")
    else:  # a ratio adjustment scales every change by design: nothing to compare exactly
        yield AssetCheckResult(
            check_name="within_contract_changes",
            asset_key="panama_adjusted_ticks",
            passed=True,
            metadata={"not_applicable": f"{method} scales price changes"},
        )


@asset(
    partitions_def=symbol_windows,
    group_name="continuous",
    deps=[panama_adjusted_ticks],
    check_specs=[
        AssetCheckSpec(name, asset="ohlcv_1s", blocking=True, partitions_def=symbol_windows)
        for name in ONE_SECOND_CHECKS
    ],
    tags={"hdi/databento": "fetch"},
    description="Session-aware 1-second bars of the adjusted ticks (bar time = interval start, as Databento's "
    "OHLCV); no bar mixes two Globex sessions. The five validation checkpoints run on every partition, and the "
    "ticks are reconciled with the exchange's cleared volume and Databento's own ohlcv-1m (thresholds: "
    "configs/checks.yaml).",
)
def ohlcv_1s(context: AssetExecutionContext, databento: DatabentoResource):
    product, window, start_ns, end_ns = _partition(context)
    delivered = lake_io.read(panama_adjusted_ticks, context.partition_key)  # index-time order, as fetched
    ticks = in_event_order(delivered)
    calendar = product.sessions(start_ns, end_ns)
    sessions = calendar
    if product.dense_bars:
        # Dense bars fill seconds only between trades of one piece: a long pause is an unexpected halt.
        sessions = split_sessions(ticks["ts_event"].to_numpy(), sessions, product.max_gap_ns)
    second_bars = one_second_bars(as_ticks(ticks), sessions, start_ns, end_ns, product.dense_bars)
    lake_io.write(context.asset_key, context.partition_key, second_bars)
    data_end_ns = databento.clamp_end(product.dataset, "trades", end_ns, context)
    events = _roll_events_from(product, window)
    outcomes = chain_checks.one_second_outcomes(
        product, ticks, delivered, second_bars, sessions, calendar, events, start_ns, data_end_ns
    )
    outcomes += chain_checks.reconciliation_outcomes(
        context, databento, product, delivered, calendar, data_end_ns, outcomes
    )
    lake_io.write_sidecar(
        context.asset_key, context.partition_key, "validation_report.json", chain_checks.report_json(outcomes)
    )
    yield MaterializeResult(metadata={"bars": second_bars.num_rows, "ticks": ticks.num_rows, "sessions": len(sessions)})
    for outcome in outcomes:
        yield check_result(outcome, "ohlcv_1s")


@asset(
    partitions_def=symbol_windows,
    group_name="continuous",
    deps=[ohlcv_1s],
    check_specs=[
        AssetCheckSpec(name, asset="ohlcv_bars", blocking=True, partitions_def=symbol_windows)
        for name in DERIVED_BAR_CHECKS
    ],
    description="1m, 5m, 15m, 1h and 1d bars from ohlcv_1s, anchored to session opens; 1d is the trading session. "
    "Checked before the load reads them: no bar spans a session edge, no NaN/inf in any column (VWAP included).",
)
def ohlcv_bars(context: AssetExecutionContext):
    product, window, start_ns, end_ns = _partition(context)
    one_second = lake_io.read(ohlcv_1s, context.partition_key)
    sessions = product.sessions(start_ns, end_ns)
    counts = {}
    derived = {}
    for interval in BAR_INTERVALS:
        table = bars.resample(one_second, interval, sessions)
        lake_io.write(bar_table(interval), context.partition_key, table)
        counts[f"bars_{interval}"] = table.num_rows
        derived[interval] = table
    counts.update(charts.coverage_chart(ohlcv_1s.key, context.partition_key, one_second, sessions))  # ohlcv_1s strip
    yield MaterializeResult(metadata=counts)
    limits = chain_checks.thresholds(product)
    # The tables written above are what the database load reads: they are checked, not recomputed values.
    # A coarse bar is cut at its segment's close (an early close ends the last 1h bar early): it must start inside
    # its labelled segment; its 1 s input must lie wholly inside one, so no coarse bar can take in another's trades.
    spans = {"1s": (one_second, NS), **{k: (t, "1d" if k == "1d" else 1) for k, t in derived.items()}}
    alignment = [checks.session_alignment(table, sessions, step) for table, step in spans.values()]
    outcomes = [chain_checks.with_severity(o, limits) for o in
                (chain_checks.merged_outcome(alignment, list(spans)), checks.no_nan_or_inf_tables(derived))]
    report = chain_checks.report_json(outcomes)
    lake_io.write_sidecar(bar_table("1m"), context.partition_key, "validation_report.json", report)
    for outcome in outcomes:
        yield check_result(outcome, "ohlcv_bars")


def _roll_events_from(product: ProductConfig, window: str) -> pa.Table:
    """The roll events that move this window's prices, from the lake (what the adjustment applied)."""
    found = [lake_io.read(roll_events, partition_key(product.symbol, w)) for w in _roll_windows(product, window)]
    return pa.concat_tables(found).sort_by("switch_ns") if found else rolls.empty_roll_events()
