"""raw_ticks -> roll_events -> panama_adjusted_ticks -> ohlcv_1s -> ohlcv_bars: thin assets over pure functions.

Each asset reads its inputs from the Parquet lake (or the Databento resource), calls the math in rolls.py,
adjust.py and bars.py, writes its partition atomically, and reports what it did as metadata.
"""

import datetime as dt
import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
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
from hdi_assets.continuous import charts
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
from hdi_core.calendar import Sessions, split_sessions
from hdi_core.continuous import adjust, bars, rolls, splice
from hdi_core.digest import table_digest
from hdi_core.units import DAY_NS, NS
from hdi_resources.databento import DatabentoResource, FetchResult

BAR_INTERVALS = ("1m", "5m", "15m", "1h", "1d")
CHECKPOINTS = ONE_SECOND_CHECKS  # every check ohlcv_1s declares: the five checkpoints and the reconciliations
# A transient failure of the whole step (after the resource's own HTTP retries) is retried by Dagster.
STEP_RETRY = RetryPolicy(max_retries=2, delay=5)
# Final settlements are published after the trade date; fetch past the switch so the last ones are final.
SETTLEMENT_REACH_NS = 4 * DAY_NS


def _partition(context: AssetExecutionContext) -> tuple[ProductConfig, str, int, int]:
    """The product, the window key and the window's time range in ns.

    A window owns whole trading sessions: those whose CME trade date falls in it. Its range therefore runs
    from the open of its first session (17:00 CT the evening before) to the close of its last one, so no
    session, and no daily bar, is ever split between two windows.
    """
    product, window = product_window(context.partition_key)
    span = context.partition_time_window
    start_ns, end_ns = session_range(product, int(span.start.timestamp()) * NS, int(span.end.timestamp()) * NS)
    return product, window, start_ns, end_ns


# Reach far enough past a window edge for the segments of its first/last trade dates (Christmas + weekend).
EDGE_REACH_NS = 7 * DAY_NS


def session_range(product: ProductConfig, window_start_ns: int, window_end_ns: int) -> tuple[int, int]:
    """[open of the first segment, close of the last segment) of the product's CME trade dates in the window."""
    sessions = product.sessions(window_start_ns - EDGE_REACH_NS, window_end_ns + EDGE_REACH_NS)
    first_day = np.datetime64(window_start_ns, "ns").astype("datetime64[D]")
    last_day = np.datetime64(window_end_ns, "ns").astype("datetime64[D]")
    owned = (sessions.trade_date >= first_day) & (sessions.trade_date < last_day)
    return int(sessions.open_ns[owned].min()), int(sessions.close_ns[owned].max())


def switch_trade_dates(switch_ns: np.ndarray, sessions: Sessions) -> np.ndarray:
    """The trade date each switch takes effect in: that of the first segment closing after it (a switch on a
    weekend or holiday belongs to the next trade date, hence to the window owning that date)."""
    k = np.searchsorted(sessions.close_ns, switch_ns, side="right")
    return sessions.trade_date[np.minimum(k, len(sessions) - 1)]


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
    ticks = _switch_at_trade_date_open(databento, product, fetched, start_ns, end_ns, context)
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


def _switch_at_trade_date_open(databento: DatabentoResource, product: ProductConfig, fetched: FetchResult,
                               start_ns: int, end_ns: int, context: AssetExecutionContext) -> pa.Table:
    """The continuous symbol's trades with each contract change moved to the open of its trade date: the new
    contract's trades from that open to Databento's 00:00 UTC switch are fetched by raw symbol (splice.py)."""
    intervals = [(str(i.start_date), str(i.end_date), int(i.symbol))
                 for i in fetched.mappings.get(product.continuous_symbol, [])]
    sessions = product.sessions(start_ns - EDGE_REACH_NS, end_ns + EDGE_REACH_NS)
    switches = rolls.switch_at(rolls.switches_from_mappings(intervals), sessions, product.switch_at)
    spans = [s for s in splice.stretches(switches) if s[0] < end_ns and s[1] > start_ns]
    if not spans:
        return fetched.table
    raw = databento.raw_symbols(product.dataset, [new for *_, new in spans], start_ns, end_ns)
    fresh = [
        databento.get_range(dataset=product.dataset, schema="trades", symbols=[raw[new]], stype_in="raw_symbol",
                            start=max(lo, start_ns), end=min(hi, end_ns), context=context).table
        for lo, hi, _, new in spans
    ]
    kept = switches.filter(pa.array(np.isin(switches["switch_ns"].to_numpy(), [s[0] for s in spans])))
    return splice.splice(fetched.table, kept, fresh)


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
    sessions = product.sessions(start_ns - EDGE_REACH_NS - lookback_ns, end_ns + EDGE_REACH_NS)
    switches = rolls.switch_at(switches, sessions, product.switch_at)
    switches = switches.filter(_owned_switches(product, switches, start_ns, end_ns))
    ids = sorted(set(switches["old_instrument_id"].to_pylist()) | set(switches["new_instrument_id"].to_pylist()))
    raw = databento.raw_symbols(product.dataset, ids, start_ns - 30 * 86_400 * NS, end_ns)
    events = measure_roll_gaps(databento, product, switches, raw)
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


def _owned_switches(product: ProductConfig, switches: pa.Table, start_ns: int, end_ns: int) -> pa.Array:
    """Mask of the switches this window owns: those taking effect in one of its trade dates. Its segments
    run [start_ns, end_ns); a switch between windows (weekend, holiday) goes to the one owning the next date."""
    ts = switches["switch_ns"].to_numpy()
    sessions = product.sessions(start_ns - EDGE_REACH_NS, end_ns + EDGE_REACH_NS)
    first_day = switch_trade_dates(np.array([start_ns]), sessions)[0]
    return pa.array((switch_trade_dates(ts, sessions) >= first_day) & (ts < end_ns))


def measure_roll_gaps(
    databento: DatabentoResource, product: ProductConfig, switches: pa.Table, raw: dict[int, str]
) -> pa.Table:
    """Both contracts at the same moment: settlements of the last session before each switch by default,
    falling back per roll to both contracts' last trades in the final minutes before that session's close."""
    if switches.num_rows == 0:
        return rolls.empty_roll_events()
    first_ns = int(pc.min(switches["switch_ns"]).as_py()) - (rolls.SETTLEMENT_LOOKBACK_DAYS + 1) * DAY_NS
    last_ns = int(pc.max(switches["switch_ns"]).as_py())
    # Settlements from well before the switch to a few days past it, so final ones exist for every trade date
    # back over a long weekend or holiday; the roll logic picks the last date before the switch that has both.
    sessions = product.sessions(first_ns, last_ns + SETTLEMENT_REACH_NS)
    settlements = None
    if product.roll_gap_source == "settlement":
        stats = databento.get_range(
            dataset=product.dataset,
            schema="statistics",
            symbols=sorted(raw.values()),
            stype_in="raw_symbol",
            start=first_ns,
            end=databento.clamp_end(product.dataset, "statistics", last_ns + SETTLEMENT_REACH_NS),
        ).table
        settlements = rolls.settlements_from_statistics(stats)
        try:
            return rolls.roll_events(switches, sessions, settlements, raw_symbols=raw)
        except rolls.MissingPriceError:
            pass  # some roll lacks a settlement pair: fetch the trades evidence and fall back per roll
    trades = _trades_before_switches(databento, product, switches, raw)
    return rolls.roll_events(switches, sessions, settlements, trades, trades, raw_symbols=raw)


def _trades_before_switches(
    databento: DatabentoResource, product: ProductConfig, switches: pa.Table, raw: dict[int, str]
) -> pa.Table:
    """Both contracts' trades in the final minutes of each segment in the week before each switch (the
    fallback walks back over holiday segments and long weekends), fetched by raw symbol."""
    switch_ns = switches["switch_ns"].to_numpy()
    sessions = product.sessions(int(switch_ns.min()) - rolls.TRADES_LOOKBACK_NS, int(switch_ns.max()) + 1)
    pieces = []
    for switch, old, new in zip(  # one iteration per roll
        switch_ns.tolist(), switches["old_instrument_id"].to_pylist(), switches["new_instrument_id"].to_pylist(),
        strict=True,
    ):
        recent = (sessions.close_ns <= switch) & (sessions.close_ns > switch - rolls.TRADES_LOOKBACK_NS)
        closes = sessions.close_ns[recent]
        pieces += [
            databento.get_range(
                dataset=product.dataset,
                schema="trades",
                symbols=[raw[old], raw[new]],
                stype_in="raw_symbol",
                start=int(close) - rolls.DEFAULT_WINDOW_NS,
                end=int(close),
            ).table
            for close in closes  # one request per segment: only its final minutes are evidence
        ]
    if not pieces:
        return pa.table({"ts_event": pa.array([], pa.int64()), "price": pa.array([], pa.int64()),
                         "instrument_id": pa.array([], pa.int64())})
    return pa.concat_tables(pieces, promote_options="default").sort_by("ts_event")


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
