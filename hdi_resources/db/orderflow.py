"""Order-flow tables (migration 0015): their row layout, their loads (replace_partition per continuous symbol x
window, then the closed chunks compressed on TimescaleDB) and their reads (`hdi query --schema delta-1m|...`,
the HTTP API), through the storage layer's public functions."""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from .read import GUARD_ROWS, PRICE_MODES, _cursor, _in_zone, _select
from .readerrors import BadRequest, NotFound, TooLarge
from .timerange import parse_range

if TYPE_CHECKING:
    from .core import Database
    from .replace import LoadResult

log = logging.getLogger(__name__)

UTC_NS = pa.timestamp("ns", tz="UTC")
INTERVALS = ("1s", "1m", "5m", "15m", "1h", "1d")
# schema name (as `hdi query --schema` takes it) -> (table, granularity)
ORDERFLOW_SCHEMAS: dict[str, tuple[str, str | None]] = {
    **{f"delta-{g}": ("orderflow_delta", g) for g in INTERVALS},
    "footprint-1m": ("orderflow_footprint", "1m"),
    "profile": ("orderflow_profile", None),
    "absorption": ("orderflow_absorption", None),
    "icebergs": ("orderflow_icebergs", None),
}
TIME_COLUMN = {"orderflow_delta": "ts", "orderflow_footprint": "ts", "orderflow_profile": "ts",
               "orderflow_absorption": "start_ts", "orderflow_icebergs": "first_ts"}
ORDER_TAIL = {"orderflow_delta": "", "orderflow_footprint": ", price", "orderflow_profile": ", price",
              "orderflow_absorption": ", side, price, first_sequence",
              "orderflow_icebergs": ", rule, side, price, first_sequence"}


def _ts(values: pa.ChunkedArray | pa.Array) -> pa.Array:
    return values.cast(pa.int64()).cast(UTC_NS)


def delta_rows(flows: dict[str, pa.Table]) -> pa.Table:
    """orderflow_delta rows from the lake's flow tables by interval (hdi_core.orderflow.FLOW_SCHEMA)."""
    parts = []
    for granularity, flow in flows.items():
        parts.append(pa.table({
            "granularity": pa.array([granularity] * flow.num_rows, pa.string()),
            "ts": _ts(flow["ts_event"]), "trade_date": flow["trade_date"],
            **{c: flow[c] for c in ("buy_volume", "sell_volume", "no_side_volume", "buy_count", "sell_count",
                                    "no_side_count", "volume", "trade_count", "delta", "cum_delta")},
        }))
    return pa.concat_tables(parts)


def footprint_rows(footprint: pa.Table, granularity: str, adjustment_method: str) -> pa.Table:
    """orderflow_footprint rows (prices stay int64 fixed point; the loader writes them as exact NUMERIC)."""
    n = footprint.num_rows
    return pa.table({
        "granularity": pa.array([granularity] * n, pa.string()), "ts": _ts(footprint["ts_event"]),
        **{c: footprint[c] for c in ("price", "buy_volume", "sell_volume", "no_side_volume", "buy_imbalance",
                                     "sell_imbalance")},
        "adjustment_method": pa.array([adjustment_method] * n, pa.string()),
    })


def profile_rows(levels: pa.Table, adjustment_method: str) -> pa.Table:
    return pa.table({
        "trade_date": levels["trade_date"], "ts": _ts(levels["ts_event"]),
        **{c: levels[c] for c in ("price", "volume", "buy_volume", "sell_volume", "no_side_volume", "is_poc",
                                  "in_value_area", "node")},
        "adjustment_method": pa.array([adjustment_method] * levels.num_rows, pa.string()),
    })


def absorption_rows(zones: pa.Table) -> pa.Table:
    """orderflow_absorption rows from the absorption_zones lake table (zones plus contract and trade date)."""
    keep = ("instrument_id", "raw_symbol", "trade_date", "side", "price", "duration_ns", "volume", "trades",
            "refills", "initial_size", "max_displayed", "outcome", "first_ts_recv", "first_sequence",
            "last_ts_recv", "last_sequence", "rule")
    return pa.table({**{c: zones[c] for c in keep}, "start_ts": _ts(zones["start_ts"]),
                     "end_ts": _ts(zones["end_ts"])})


def iceberg_rows(candidates: pa.Table) -> pa.Table:
    keep = ("instrument_id", "raw_symbol", "trade_date", "rule", "label", "side", "price", "refills",
            "max_displayed", "executed", "first_sequence", "last_sequence", "orders")
    ids = [" ".join(str(i) for i in row) for row in candidates["order_ids"].to_pylist()]  # a few per session
    return pa.table({**{c: candidates[c] for c in keep}, "first_ts": _ts(candidates["first_ts"]),
                     "last_ts": _ts(candidates["last_ts"]), "first_ts_recv": candidates["first_ts"],
                     "last_ts_recv": candidates["last_ts"], "order_ids": pa.array(ids, pa.string())})


def load_orderflow(db: Database, table: str, continuous_symbol: str, window: str | dt.date,
                   rows: pa.Table, source: str) -> LoadResult:
    """Replace the symbol x window's rows of one order-flow table in one transaction; on TimescaleDB, then
    compress the closed chunks it wrote (best effort: the load has committed)."""
    if table not in TIME_COLUMN:
        raise BadRequest(f"{table!r} is not an order-flow table; choose one of {sorted(TIME_COLUMN)}")
    window_date = window if isinstance(window, dt.date) else dt.date.fromisoformat(str(window))
    key = {"continuous_symbol": continuous_symbol, "window": window_date}
    result = db.replace_partition(table, key, rows, source=source)
    if db.storage_mode == "timescaledb" and rows.num_rows:
        _compress_closed(db, table, rows)
    return result


def _compress_closed(db: Database, table: str, rows: pa.Table) -> int:
    import psycopg2

    times = rows[TIME_COLUMN[table]].cast(pa.int64()).to_numpy()
    first = dt.datetime.fromtimestamp(int(times.min()) / 1e9, dt.UTC)
    last = dt.datetime.fromtimestamp(int(times.max()) / 1e9, dt.UTC)
    done = 0
    try:
        with db.raw("owner") as conn, conn.cursor() as cur:
            cur.execute("""SELECT format('%%I.%%I', c.chunk_schema, c.chunk_name)
                           FROM timescaledb_information.chunks c
                           WHERE c.hypertable_schema = 'public' AND c.hypertable_name = %s
                             AND c.range_start <= %s AND c.range_end > %s
                             AND c.range_end <= date_trunc('day', now(), 'UTC') AND NOT c.is_compressed""",
                        (table, last, first))
            for (chunk,) in cur.fetchall():
                cur.execute("SELECT compress_chunk(%s::regclass, if_not_compressed => true)", (chunk,))
                done += 1
    except psycopg2.Error as exc:
        log.warning("%s: chunks not compressed now (%s); the next load of their days compresses them", table,
                    str(exc).strip().splitlines()[0])
    return done


def query_orderflow(db: Database, symbol: str, schema: str, start: Any = None, end: Any = None, *,
                    limit: int | None = None, offset: int = 0, tz: str | None = "utc", prices: str = "decimal",
                    max_rows: int | None = GUARD_ROWS) -> pa.Table:
    """Rows of one order-flow schema for a root (ES) or continuous symbol (ES.v.0) in [start, end), in time
    order. Plain dates select trade dates where the table has them (delta, profile), else instants."""
    key = schema.strip().lower()
    if key not in ORDERFLOW_SCHEMAS:
        raise NotFound(f"unknown order-flow schema {schema[:40]!r}; use one of {', '.join(ORDERFLOW_SCHEMAS)}")
    if prices not in PRICE_MODES:
        raise BadRequest(f"prices {str(prices)[:20]!r} is not one of {', '.join(PRICE_MODES)}")
    table, granularity = ORDERFLOW_SCHEMAS[key]
    text = (symbol or "").strip()[:64]
    span = parse_range(start, end, tz)
    time_col = TIME_COLUMN[table]
    clauses = ["continuous_symbol = %s" if "." in text else "split_part(continuous_symbol, '.', 1) = upper(%s)"]
    params: list[Any] = [text]
    if granularity:
        clauses.append("granularity = %s")
        params.append(granularity)
    by_date = span.dates_only and table in ("orderflow_delta", "orderflow_profile")
    for op, stamp, day in ((">=", span.start, span.start_date), ("<", span.end, span.end_date)):
        if stamp is not None:
            clauses.append(f"{'trade_date' if by_date else time_col} {op} %s")
            params.append(day if by_date else stamp)
    where = " AND ".join(clauses)
    with _cursor(db) as cur:
        stored = 2 if granularity else 1  # the symbol (and granularity) clauses: is anything stored at all
        cur.execute(f"SELECT count(*) FROM (SELECT 1 FROM {table} WHERE {' AND '.join(clauses[:stored])} LIMIT 1) t",
                    params[:stored])
        if not cur.fetchone()[0]:
            raise NotFound(f"no {key} rows stored for {text!r}")
        if limit is None and max_rows is not None:
            cur.execute(f"SELECT count(*) FROM (SELECT 1 FROM {table} WHERE {where} LIMIT %s) t",
                        [*params, max_rows + 1])  # table and columns from fixed dicts; values are parameters
            if cur.fetchone()[0] > max_rows:
                raise TooLarge(f"{key} for {text} is over {max_rows:,} rows in that range; narrow --start/--end, "
                               "set --limit, or ask for --all")
        order = f"continuous_symbol, {time_col}{ORDER_TAIL[table]}"
        rows = _select(cur, table, where, params, order, limit, prices, offset=offset)
    rows = rows.drop_columns([c for c in ("loaded_at",) if c in rows.column_names])
    return _in_zone(rows, (tz or "utc").lower())


def counts_by(values: np.ndarray) -> dict[Any, int]:
    """How many rows hold each value (for load metadata)."""
    keys, counts = np.unique(values, return_counts=True)
    return {str(k): int(c) for k, c in zip(keys, counts, strict=True)}


# -- live (hdi live capture): source 'live' rows, upserted as results close ------------------------------------
LIVE = "live"
LIVE_ADJUSTMENT = "none"  # live prices are the front contract's own (hdi_core/live/flow.py says why)


def window_of(trade_dates: np.ndarray) -> np.ndarray:
    """The half-year window (Jan 1 / Jul 1) of each trade date, as datetime64[D]."""
    days = np.asarray(trade_dates).astype("datetime64[D]")
    months = days.astype("datetime64[M]")
    month_of_year = months.astype(np.int64) % 12
    return (months - month_of_year + np.where(month_of_year >= 6, 6, 0)).astype("datetime64[D]")


HISTORY = "history"


def result_rows(kind: str, table: pa.Table) -> tuple[str, pa.Table]:
    """The order-flow table and rows of one kind of live result (hdi_core.live.flow.KINDS, not profile-summary)."""
    if kind.startswith("delta-"):
        return "orderflow_delta", delta_rows({kind.split("-", 1)[1]: table})
    if kind == "footprint-1m":
        return "orderflow_footprint", footprint_rows(table, "1m", LIVE_ADJUSTMENT)
    if kind == "profile":
        return "orderflow_profile", profile_rows(table, LIVE_ADJUSTMENT)
    if kind == "absorption":
        return "orderflow_absorption", absorption_rows(table)
    if kind == "icebergs":
        return "orderflow_icebergs", iceberg_rows(table)
    raise BadRequest(f"no order-flow table holds {kind!r} results")


def upsert_live_orderflow(db: Database, table: str, continuous_symbol: str, rows: pa.Table,
                          trade_dates: np.ndarray) -> int:
    """Insert or update live rows (each with the trade date it belongs to) on the table's primary key, in one
    transaction; a stored historical row is never overwritten (history replaces live, never the reverse).
    Idempotent: the same rows again change nothing. Returns the rows written."""
    return upsert_orderflow(db, table, continuous_symbol, rows, trade_dates, LIVE)


def upsert_orderflow(db: Database, table: str, continuous_symbol: str, rows: pa.Table, trade_dates: np.ndarray,
                     source: str) -> int:
    """upsert_live_orderflow with the source named: 'history' rows (a live day replaced after the session)
    overwrite whatever is stored under their keys; 'live' rows only live ones."""
    from psycopg2 import sql

    from .compression import allow_dml_on_compressed
    from .copy import copy_rows
    from .prepare import prepare
    from .tables import table_info

    if table not in TIME_COLUMN:
        raise BadRequest(f"{table!r} is not an order-flow table; choose one of {sorted(TIME_COLUMN)}")
    if not rows.num_rows:
        return 0
    windows = pa.array(window_of(trade_dates).astype(np.int64).astype(np.int32)).view(pa.date32())
    rows = rows.append_column("window", windows)
    info = table_info(db, table)
    prepared, invalid, names, _rules, _ignored = prepare(info, rows, {"continuous_symbol": continuous_symbol,
                                                                      "source": source}, info.primary_key)
    if invalid.num_rows:
        log.warning("%s: %d live rows break %s; left out", table, invalid.num_rows, sorted(set(names)))
    cols = prepared.column_names
    key = info.primary_key
    ident = sql.Identifier
    col_list = sql.SQL(", ").join(ident(c) for c in cols)
    updates = sql.SQL(", ").join(sql.SQL("{c} = EXCLUDED.{c}").format(c=ident(c)) for c in cols if c not in key)
    with db.raw() as conn, conn.cursor() as cur:
        allow_dml_on_compressed(db, cur)
        cur.execute(sql.SQL("CREATE TEMP TABLE _hdi_live_stage ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA")
                    .format(col_list, ident(table)))
        copy_rows(cur, info, prepared, target="_hdi_live_stage")
        only_live = sql.SQL(" WHERE t.source = %s" if source == LIVE else "")
        cur.execute(sql.SQL("INSERT INTO {t} AS t ({c}) SELECT {c} FROM _hdi_live_stage ON CONFLICT ({k}) DO UPDATE "
                            "SET {u}, loaded_at = now(){w}").format(
                                t=ident(table), c=col_list, k=sql.SQL(", ").join(ident(k) for k in key), u=updates,
                                w=only_live), (LIVE,) if source == LIVE else None)
        return cur.rowcount


def read_orderflow_rows(db: Database, table: str, continuous_symbol: str, source: str | None = None) -> pa.Table:
    """Every stored row of one order-flow table for a continuous symbol (optionally of one source), in key
    order, prices as int64 fixed point (the comparisons after a live session read them so)."""
    clauses, params = ["continuous_symbol = %s"], [continuous_symbol]
    if source is not None:
        clauses.append("source = %s")
        params.append(source)
    from .tables import table_info

    key = ", ".join(table_info(db, table).primary_key)
    with _cursor(db) as cur:
        return _select(cur, table, " AND ".join(clauses), params, key, None, "fixed")


def delete_live_orderflow(db: Database, continuous_symbol: str, trade_date: dt.date, start_ns: int,
                          end_ns: int) -> dict[str, int]:
    """Drop the live rows of one trade date ([start_ns, end_ns): its sessions' span, for the footprint, which has
    no trade date column) from every order-flow table, in one transaction (once history holds the day)."""
    from .compression import allow_dml_on_compressed

    lo = dt.datetime.fromtimestamp(start_ns / 1e9, dt.UTC)
    hi = dt.datetime.fromtimestamp(end_ns / 1e9, dt.UTC)
    done = {}
    with db.raw() as conn, conn.cursor() as cur:
        allow_dml_on_compressed(db, cur)
        for table in TIME_COLUMN:  # fixed names
            if table == "orderflow_footprint":
                cur.execute("DELETE FROM orderflow_footprint WHERE continuous_symbol = %s AND source = %s "
                            "AND ts >= %s AND ts < %s", (continuous_symbol, LIVE, lo, hi))
            else:
                cur.execute(f"DELETE FROM {table} WHERE continuous_symbol = %s AND source = %s AND trade_date = %s",
                            (continuous_symbol, LIVE, trade_date))
            done[table] = cur.rowcount
    return done
