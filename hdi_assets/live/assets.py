"""History equals live, per product x trade date: after the session the historical records of the day are
fetched through the Databento resource (cache-first, budget-guarded, the path history takes) and compared with
what live capture stored (lake records, 1 s bars in PostgreSQL); the blocking check `history_equals_live` gates
`live_partition_replaced`, which makes the day's live lake partitions the historical ones.

The historical 1 s bars are built as ohlcv_1s builds them (hdi_assets.continuous.second_bars) from the front
contract's raw trades: live bars are unadjusted (hdi_core.live.stream says why), so they are compared with the
unadjusted history of the same contract.
"""


import datetime as dt

import numpy as np
import pyarrow as pa
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    Config,
    MaterializeResult,
    MultiPartitionsDefinition,
    StaticPartitionsDefinition,
    TimeWindowPartitionsDefinition,
    asset,
)

from hdi_assets.continuous.second_bars import in_event_order, one_second_bars
from hdi_assets.live.checks import Comparison, compare_bars, compare_records
from hdi_assets.partitions import FIRST_WINDOW, ProductConfig, products
from hdi_core.units import DAY_NS, NS
from hdi_resources.databento import DatabentoResource
from hdi_resources.db.live import read_live_bars
from hdi_resources.db.resource import DatabaseResource
from hdi_resources.lake.live import read_live, replace_with_history

LIVE_SCHEMAS = ("trades", "tbbo", "mbp-10", "mbo")
CHECK = "history_equals_live"

live_days = MultiPartitionsDefinition({
    "symbol": StaticPartitionsDefinition(sorted(products())),
    "trade_date": TimeWindowPartitionsDefinition(cron_schedule="0 0 * * *", start=FIRST_WINDOW, fmt="%Y-%m-%d"),
})


class LiveDayConfig(Config):
    """Compare only [start, end) (ISO UTC or ns) instead of the whole trade date, e.g. a capture of part of it."""

    start: str | None = None
    end: str | None = None


def _ns(text: str | None) -> int | None:
    if not text:
        return None
    return int(text) if text.isdigit() else int(np.datetime64(text.rstrip("Z"), "ns").astype(np.int64))


def _day(context: AssetExecutionContext) -> tuple[ProductConfig, str]:
    keys = context.partition_key.keys_by_dimension  # type: ignore[attr-defined]
    return products()[keys["symbol"]], keys["trade_date"]


def session_span(product: ProductConfig, trade_date: str) -> tuple[int, int]:
    """[first open, last close) of the trade date's trading segments."""
    day = np.datetime64(trade_date, "D")
    noon = int(day.astype("datetime64[ns]").astype(np.int64))
    sessions = product.sessions(noon - 3 * DAY_NS, noon + 3 * DAY_NS)
    mine = sessions.trade_date == day
    if not mine.any():
        raise ValueError(f"{product.symbol} does not trade on {trade_date} (no session of {product.calendar})")
    return int(sessions.open_ns[mine].min()), int(sessions.close_ns[mine].max())


def _span(context: AssetExecutionContext, config: LiveDayConfig) -> tuple[ProductConfig, str, int, int]:
    product, trade_date = _day(context)
    lo, hi = session_span(product, trade_date)
    return product, trade_date, _ns(config.start) or lo, _ns(config.end) or hi


def _captured_schemas(product: ProductConfig, trade_date: str) -> dict[str, pa.Table]:
    found = {}
    for schema in LIVE_SCHEMAS:
        table = read_live(schema, product.symbol, trade_date)
        if table.num_rows:
            found[schema] = table
    return found


def _history(databento: DatabentoResource, product: ProductConfig, schema: str, lo: int, hi: int,
             context: AssetExecutionContext) -> pa.Table:
    return databento.get_range(dataset=product.dataset, schema=schema, symbols=[product.continuous_symbol],
                               stype_in="continuous", start=lo, end=hi, context=context).table


def _in_span(table: pa.Table, lo: int, hi: int) -> pa.Table:
    recv = table.column("ts_recv").cast(pa.int64()).to_numpy()
    return table.filter(pa.array((recv >= lo) & (recv < hi)))


@asset(
    partitions_def=live_days,
    group_name="live",
    tags={"hdi/databento": "fetch"},
    pool="databento",
    check_specs=[AssetCheckSpec(CHECK, asset="live_history_comparison", blocking=True, partitions_def=live_days,
                                description="After the session, the historical records and 1 s bars of the "
                                            "day equal what live capture stored")],
    description="The day's historical records (every schema live capture stored) fetched through the Databento "
                "resource and compared with the live lake partitions and the live 1 s bars.",
)
def live_history_comparison(context: AssetExecutionContext, config: LiveDayConfig, databento: DatabentoResource,
                            database: DatabaseResource) -> MaterializeResult:
    product, trade_date, lo, hi = _span(context, config)
    captured = _captured_schemas(product, trade_date)
    results: list[Comparison] = []
    history_trades = None
    for schema, live in captured.items():
        history = _history(databento, product, schema, lo, hi, context)
        if schema == "trades":
            history_trades = history
        results.append(compare_records(schema, history, _in_span(live, lo, hi).select(history.column_names)))
    if history_trades is not None:
        ticks = in_event_order(pa.table({"ts_event": history_trades["ts_event"].cast(pa.int64()),
                                         "price": history_trades["price"].cast(pa.int64()),
                                         "size": history_trades["size"].cast(pa.int64())}))
        sessions = product.sessions(lo - DAY_NS, hi + DAY_NS)
        want = one_second_bars(ticks, sessions, lo, hi, dense=False)
        bar_ts = want.column("ts_event").to_numpy()
        want = want.filter(pa.array((bar_ts >= lo) & (bar_ts < hi)))  # as the stored bars are selected below
        stored = [r for r in read_live_bars(database.database(), product.continuous_symbol, trade_date)
                  if lo <= r["ts_ns"] < hi]
        results.append(compare_bars(want, stored))
    problems = [p for r in results for p in r.problems]
    if not captured:
        problems.append(f"no live capture of {product.symbol} on {trade_date} in the lake (an outage?)")
    metadata = {f"{r.what}_rows": f"{r.history_rows} historical / {r.live_rows} live" for r in results}
    span = f"{dt.datetime.fromtimestamp(lo / NS, dt.UTC):%Y-%m-%d %H:%M:%S} - " \
           f"{dt.datetime.fromtimestamp(hi / NS, dt.UTC):%Y-%m-%d %H:%M:%S} UTC"
    check = AssetCheckResult(check_name=CHECK, passed=not problems, severity=AssetCheckSeverity.ERROR,
                             metadata={"span": span, "compared": ", ".join(r.what for r in results) or "nothing",
                                       "problems": "\n".join(problems[:20]) or "none", **metadata})
    return MaterializeResult(metadata={"span": span, "schemas": ", ".join(captured) or "none"},
                             check_results=[check])


@asset(
    partitions_def=live_days,
    group_name="live",
    deps=[live_history_comparison],
    tags={"hdi/databento": "fetch"},
    description="The day's live lake partitions replaced by the historical records (after history_equals_live "
                "passed; a failed check blocks this).",
)
def live_partition_replaced(context: AssetExecutionContext, config: LiveDayConfig,
                            databento: DatabentoResource) -> MaterializeResult:
    product, trade_date, lo, hi = _span(context, config)
    rows = {}
    for schema in _captured_schemas(product, trade_date):
        history = _history(databento, product, schema, lo, hi, context)  # the comparison's chunks: cache hits
        rows[schema] = replace_with_history(schema, product.symbol, trade_date, history)
    return MaterializeResult(metadata={f"{s}_rows": n for s, n in rows.items()})
