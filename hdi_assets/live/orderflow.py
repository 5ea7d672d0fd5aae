"""Live order flow against history, per product x trade date: after the session, the historical records of the
day (trades, mbp-10, mbo of the continuous symbol, fetched through the Databento resource as the comparison of
the records fetches them: cache hits) are run through the historical order-flow functions (those the order-flow
assets call, with configs/orderflow.yaml) and compared with what `hdi live capture` built in stream (the live lake's
orderflow-* partitions). The blocking check `orderflow_history_equals_live` names the first difference; when it
passes, `live_orderflow_replaced` replaces the day's live rows in the order-flow tables (and the live lake's
order-flow partitions) by the historical results.

Comparison basis: live prices are the front contract's own, unadjusted; the day's historical records of the
continuous symbol are that contract's too (hdi_core.live.flow), so prices compare exactly. The window's order-flow
assets (hdi_assets/orderflow), run on the adjusted series, replace the whole window later as they always do; in
the newest window the backward-adjusted prices are the front contract's own. `session_id` (an index into the
calendar a run loaded) is not compared.
"""

import numpy as np
import pyarrow as pa
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    MaterializeResult,
    asset,
)

from hdi_assets.live.assets import LiveDayConfig, _span, live_days, live_history_comparison
from hdi_assets.live.checks import Comparison, compare_tables
from hdi_assets.partitions import ProductConfig
from hdi_core.calendar import Sessions, session_index
from hdi_core.config.orderflow import orderflow_params
from hdi_core.orderflow import (
    Trades,
    absorption_zones,
    aggressor_flow,
    footprint,
    iceberg_candidates,
    order_events,
    side_bytes,
    top_of_book,
    volume_profile,
)
from hdi_core.units import DAY_NS, NS
from hdi_resources.databento import DatabentoResource
from hdi_resources.db import orderflow as rows
from hdi_resources.db.resource import DatabaseResource
from hdi_resources.lake.live import read_live, replace_with_history

ORDERFLOW_CHECK = "orderflow_history_equals_live"
LAKE_PREFIX = "orderflow-"  # as hdi_app/live/orderflow.py writes them
KEYS = {"delta-1s": ["ts_event"], "delta-1m": ["ts_event"], "footprint-1m": ["ts_event", "price"],
        "profile": ["ts_event", "price"], "profile-summary": ["ts_event"], "absorption": ["first_index", "side"],
        "icebergs": ["rule", "first_index"]}


def _fetch(databento: DatabentoResource, product: ProductConfig, schema: str, lo: int, hi: int,
           context: AssetExecutionContext) -> pa.Table:
    """The day's records of the continuous symbol received in [lo, hi) (trades are ranged on ts_event: a second
    earlier covers those received after lo)."""
    table = databento.get_range(dataset=product.dataset, schema=schema, symbols=[product.continuous_symbol],
                                stype_in="continuous", start=lo - NS, end=hi, context=context).table
    recv = table.column("ts_recv").cast(pa.int64()).to_numpy()
    return table.filter(pa.array((recv >= lo) & (recv < hi)))


def _trades(table: pa.Table, sessions: Sessions) -> Trades:
    """As the order-flow assets read them: ts_event order (stable), inside the sessions."""
    ts = table.column("ts_event").cast(pa.int64()).to_numpy()
    order = np.argsort(ts, kind="stable")
    ts = ts[order]
    inside = session_index(ts, sessions) >= 0
    take = order[inside]
    return Trades(ts[inside], table.column("price").cast(pa.int64()).to_numpy()[take],
                  table.column("size").cast(pa.int64()).to_numpy()[take], side_bytes(table.column("side"))[take])


def historical_orderflow(product: ProductConfig, records: dict[str, pa.Table], sessions: Sessions
                         ) -> dict[str, pa.Table]:
    """The historical functions on the day's records: every kind the live capture builds (hdi_core.live.flow)."""
    params = orderflow_params(product.symbol)
    tick = product.tick_size
    out: dict[str, pa.Table] = {}
    if "trades" in records:
        trades = _trades(records["trades"], sessions)
        fp, pr = params.footprint, params.profile
        for interval in ("1s", "1m"):
            out[f"delta-{interval}"] = aggressor_flow(trades, sessions, interval)
        out["footprint-1m"] = footprint(trades, sessions, "1m", tick, fp.imbalance_ratio, fp.imbalance_min_volume)
        out["profile"], out["profile-summary"] = volume_profile(trades, sessions, tick, pr.value_area_share,
                                                                pr.node_window_ticks, pr.hvn_factor, pr.lvn_factor)
    if "mbp-10" in records:
        ab = params.absorption
        out["absorption"] = absorption_zones(top_of_book(records["mbp-10"]), ab.min_volume, ab.min_absorbed_ratio,
                                             ab.max_idle_ms)
    if "mbo" in records:
        ic = params.icebergs
        out["icebergs"] = iceberg_candidates(order_events(records["mbo"]), ic.refill_window_ms, ic.size_tolerance,
                                             ic.min_refills)
    return out


BOOK_KINDS = {"mbp-10": ("absorption",), "mbo": ("icebergs",)}
TRADE_KINDS = ("delta-1s", "delta-1m", "footprint-1m", "profile", "profile-summary")


def _day_results(context: AssetExecutionContext, config: LiveDayConfig, databento: DatabentoResource
                 ) -> tuple[ProductConfig, str, int, int, dict[str, pa.Table], dict[str, pa.Table]]:
    """(product, trade date, span, historical results, live results) of every kind the captured schemas give
    (a kind the capture has no result of compares as empty: a missing result is a difference)."""
    product, trade_date, lo, hi = _span(context, config)
    captured = [s for s in ("trades", "mbp-10", "mbo")
                if read_live(s, product.symbol, trade_date, columns=["ts_recv"]).num_rows]
    records = {s: _fetch(databento, product, s, lo, hi, context) for s in captured}
    sessions = product.sessions(lo - 3 * DAY_NS, hi + 3 * DAY_NS)
    history = historical_orderflow(product, records, sessions)
    live = {}
    for kind, want in history.items():
        got = read_live(f"{LAKE_PREFIX}{kind}", product.symbol, trade_date)
        live[kind] = got if got.num_rows else want.schema.empty_table()
    return product, trade_date, lo, hi, history, live


@asset(
    partitions_def=live_days,
    group_name="live",
    deps=[live_history_comparison],
    tags={"hdi/databento": "fetch"},
    pool="databento",
    check_specs=[AssetCheckSpec(ORDERFLOW_CHECK, asset="live_orderflow_comparison", blocking=True,
                                partitions_def=live_days,
                                description="After the session, the order flow built live (delta 1s/1m, footprint "
                                            "1m, profile, absorption zones, iceberg candidates) equals the "
                                            "historical functions on the day's historical records")],
    description="The historical order-flow functions run on the day's historical records (the front contract, "
                "unadjusted, as live) and compared with the live capture's order-flow results.",
)
def live_orderflow_comparison(context: AssetExecutionContext, config: LiveDayConfig,
                              databento: DatabentoResource) -> MaterializeResult:
    product, trade_date, _lo, _hi, history, live = _day_results(context, config, databento)
    results: list[Comparison] = []
    for kind, got in live.items():
        want = history[kind]
        columns = [c for c in want.column_names if c != "session_id"]
        results.append(compare_tables(kind, want.select(columns), got, KEYS[kind]))
    problems = [p for r in results for p in r.problems]
    if not live:
        problems.append(f"no live capture of {product.symbol} on {trade_date} in the lake (an outage?)")
    metadata = {f"{r.what}_rows": f"{r.history_rows} historical / {r.live_rows} live" for r in results}
    check = AssetCheckResult(check_name=ORDERFLOW_CHECK, passed=not problems, severity=AssetCheckSeverity.ERROR,
                             metadata={"compared": ", ".join(r.what for r in results) or "nothing",
                                       "problems": "\n".join(problems[:20]) or "none", **metadata})
    return MaterializeResult(metadata={"kinds": ", ".join(live) or "none"}, check_results=[check])


@asset(
    partitions_def=live_days,
    group_name="live",
    deps=[live_orderflow_comparison],
    tags={"hdi/databento": "fetch"},
    description="The day's live order-flow rows in the order-flow tables and the live lake replaced by the "
                "historical results (after orderflow_history_equals_live passed; a failed check blocks this).",
)
def live_orderflow_replaced(context: AssetExecutionContext, config: LiveDayConfig, databento: DatabentoResource,
                            database: DatabaseResource) -> MaterializeResult:
    product, trade_date, lo, hi, history, live = _day_results(context, config, databento)
    db = database.database()
    day = np.datetime64(trade_date, "D")
    removed = rows.delete_live_orderflow(db, product.continuous_symbol, day.astype(object), lo, hi)
    written = {}
    for kind, table in history.items():
        if "trade_date" not in table.column_names:  # footprint rows: the day's own (one trade date)
            dates = np.full(table.num_rows, day)
        else:
            dates = table["trade_date"].to_numpy().astype("datetime64[D]")
        if kind in ("absorption", "icebergs"):
            table = _with_contract(table, live.get(kind), day)
        replace_with_history(f"{LAKE_PREFIX}{kind}", product.symbol, trade_date, table)
        if kind == "profile-summary":
            continue
        name, data = rows.result_rows(kind, table)
        written[name] = written.get(name, 0) + rows.upsert_orderflow(db, name, product.continuous_symbol, data,
                                                                     dates, source=rows.HISTORY)
    return MaterializeResult(metadata={"live_rows_removed": sum(removed.values()),
                                       **{f"{k}_rows": v for k, v in written.items()}})


def _with_contract(table: pa.Table, live: pa.Table | None, day: np.datetime64) -> pa.Table:
    """Book rows with the contract the live rows name (the check proved both the same records) and the date."""
    n = table.num_rows
    instrument, symbol = (int(live["instrument_id"][0].as_py()), str(live["raw_symbol"][0].as_py())) \
        if live is not None and live.num_rows else (0, "")
    date = pa.array(np.full(n, day.astype(np.int64), np.int32)).view(pa.date32())
    return table.append_column("instrument_id", pa.array(np.full(n, instrument, np.int64))) \
        .append_column("raw_symbol", pa.array([symbol] * n, pa.string())).append_column("trade_date", date)
