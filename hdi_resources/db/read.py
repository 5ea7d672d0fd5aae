"""Reading: `query` returns Arrow (exact decimal128(38, 9) prices), `stats` answers seed 003's shape.

Tables and columns come from fixed dicts; user text only ever travels as bind parameters."""

from __future__ import annotations

import datetime as dt
import io
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.csv as pacsv

from hdi_core.errors import HdiError

if TYPE_CHECKING:
    from .core import Database

BAR_SCHEMAS = {"ohlcv-1s": "1s", "ohlcv-1m": "1m", "ohlcv-5m": "5m", "ohlcv-15m": "15m", "ohlcv-1h": "1h",
               "ohlcv-1d": "1d"}
VENDOR_TABLES = {"trades": "trades_data", "tbbo": "tbbo_data", "statistics": "statistics_data",
                 "definitions": "definitions_data"}
SCHEMAS = (*BAR_SCHEMAS, *VENDOR_TABLES)
TIME_COLUMN = {"continuous_bars": "ts", "ohlcv_data": "ts_event", "trades_data": "ts_event",
               "tbbo_data": "ts_event", "statistics_data": "ts_event", "definitions_data": "ts_event"}
CLOSE_COLUMN = {"continuous_bars": "close", "ohlcv_data": "close_price", "trades_data": "price",
                "tbbo_data": "price", "statistics_data": "price"}
PRICE_TYPE = pa.decimal128(38, 9)


def resolve_table(schema: str, raw: bool) -> tuple[str, str | None]:
    """(table, granularity or None) for a schema name; raises a one-line error for an unknown one."""
    if schema in BAR_SCHEMAS:
        return ("ohlcv_data" if raw else "continuous_bars"), BAR_SCHEMAS[schema]
    if schema in VENDOR_TABLES:
        return VENDOR_TABLES[schema], None
    raise HdiError(f"--schema {schema!r} is not one of {', '.join(SCHEMAS)}")


def _timestamp(value: Any, name: str) -> dt.datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        stamp = value
    elif isinstance(value, dt.date):
        stamp = dt.datetime(value.year, value.month, value.day)
    else:
        try:
            stamp = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise HdiError(f"--{name} {value!r} is not an ISO date or timestamp (e.g. 2024-01-02)") from None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)


def _instrument_ids(cur: Any, symbol: str) -> list[int]:
    """A raw symbol (ESH4), a product root (ES: its outright futures) or an instrument id, via definitions."""
    if symbol.isdigit():
        return [int(symbol)]
    cur.execute("""SELECT DISTINCT instrument_id FROM definitions_data
                   WHERE raw_symbol = %s OR (asset = %s AND instrument_class = 'F')""", (symbol, symbol))
    return sorted(row[0] for row in cur.fetchall())


def _continuous_filter(cur: Any, symbol: str, adjustment_method: str | None) -> tuple[str, str | None]:
    """Resolve ES to its lead continuous symbol (ES.v.0 style) and pick one adjustment method."""
    if "." in symbol:
        continuous = symbol
    else:
        cur.execute("SELECT DISTINCT continuous_symbol FROM continuous_bars WHERE root_symbol = %s",
                    (symbol,))
        found = sorted(row[0] for row in cur.fetchall())
        leads = [s for s in found if s.endswith(".0")] or found
        continuous = leads[0] if leads else f"{symbol}.v.0"
    if adjustment_method is None:
        cur.execute("SELECT DISTINCT adjustment_method FROM continuous_bars WHERE continuous_symbol = %s",
                    (continuous,))
        methods = sorted(row[0] for row in cur.fetchall())
        adjustment_method = methods[0] if methods else None
    return continuous, adjustment_method


def _columns(cur: Any, table: str) -> list[tuple[str, str]]:
    cur.execute("""SELECT a.attname, t.typname FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
                   WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped
                   ORDER BY a.attnum""", (table,))
    return cur.fetchall()


_ARROW_TYPES = {"int2": pa.int16(), "int4": pa.int32(), "int8": pa.int64(), "float8": pa.float64(),
                "float4": pa.float32(), "bool": pa.bool_(), "date": pa.date32(), "numeric": PRICE_TYPE}


def _select(cur: Any, table: str, where: str, params: list[Any], order: str, limit: int | None) -> pa.Table:
    """COPY (SELECT ...) TO STDOUT as CSV, parsed column-wise by Arrow with exact types."""
    from psycopg2 import sql

    cols = _columns(cur, table)
    select_items = []
    types: dict[str, pa.DataType] = {}
    for name, type_name in cols:
        ident = sql.Identifier(name)
        if type_name in ("timestamptz", "timestamp"):  # epoch micros: exact and timezone-free
            select_items.append(sql.SQL("(extract(epoch FROM {0}) * 1000000)::bigint AS {0}").format(ident))
            types[name] = pa.int64()
        elif type_name == "numeric":
            select_items.append(sql.SQL("{0}::numeric(38, 9) AS {0}").format(ident))
            types[name] = PRICE_TYPE
        else:
            select_items.append(ident)
            types[name] = _ARROW_TYPES.get(type_name, pa.string())
    query = sql.SQL("SELECT {} FROM {} WHERE {} ORDER BY {}").format(
        sql.SQL(", ").join(select_items), sql.Identifier(table), sql.SQL(where), sql.SQL(order))
    if limit is not None:
        query = query + sql.SQL(" LIMIT %s")
        params = [*params, int(limit)]
    bound = cur.mogrify(query, params).decode()  # the driver quotes the parameters; no user text in SQL
    buffer = io.BytesIO()
    cur.copy_expert(f"COPY ({bound}) TO STDOUT WITH (FORMAT csv, HEADER true)", buffer)
    buffer.seek(0)
    names = [name for name, _ in cols]
    if buffer.getbuffer().nbytes <= len(",".join(names)) + 1:
        table_out = pa.table({n: pa.array([], types[n]) for n in names})
    else:
        table_out = pacsv.read_csv(buffer, convert_options=pacsv.ConvertOptions(
            column_types=types, strings_can_be_null=True, quoted_strings_can_be_null=False))
    for name, type_name in cols:
        if type_name in ("timestamptz", "timestamp"):
            idx = table_out.schema.get_field_index(name)
            stamps = table_out.column(name).cast(pa.timestamp("us", tz="UTC"))
            table_out = table_out.set_column(idx, name, stamps)
    return table_out


def query(db: Database, symbol: str, schema: str, start: Any = None, end: Any = None, raw: bool = False, *,
          adjustment_method: str | None = None, limit: int | None = None) -> pa.Table:
    """Rows of one symbol and schema in [start, end), ordered by time; prices as decimal128(38, 9)."""
    table, granularity = resolve_table(schema, raw)
    start_ts, end_ts = _timestamp(start, "start"), _timestamp(end, "end")
    time_col = TIME_COLUMN[table]
    db.ensure_migrated()
    with db.raw() as conn, conn.cursor() as cur:
        clauses: list[str] = []
        params: list[Any] = []
        if table == "continuous_bars":
            continuous, method = _continuous_filter(cur, symbol, adjustment_method)
            clauses += ["continuous_symbol = %s", "granularity = %s", "adjustment_method = %s"]
            params += [continuous, granularity, method]
            order = "ts"
        else:
            ids = _instrument_ids(cur, symbol)
            clauses.append("instrument_id = ANY(%s)")
            params.append(ids)
            if granularity:
                clauses.append("granularity = %s")
                params.append(granularity)
            order = f"{time_col}, instrument_id"
        if start_ts:
            clauses.append(f"{time_col} >= %s")
            params.append(start_ts)
        if end_ts:
            clauses.append(f"{time_col} < %s")
            params.append(end_ts)
        return _select(cur, table, " AND ".join(clauses), params, order, limit)


def _plain(value: Any) -> Any:
    """Decimal without the storage scale's trailing zeros and without exponent notation (4500.25)."""
    from decimal import Decimal

    return Decimal(format(value.normalize(), "f")) if isinstance(value, Decimal) else value


def stats(db: Database, symbol: str, schema: str, raw: bool = False) -> dict[str, Any]:
    """row_count, min_ts, max_ts, latest_close, latest_ts, symbol, timeframe, vendor (+ message if empty)."""
    table, granularity = resolve_table(schema, raw)
    time_col = TIME_COLUMN[table]
    db.ensure_migrated()
    from psycopg2 import sql

    with db.raw() as conn, conn.cursor() as cur:
        if table == "continuous_bars":
            continuous, method = _continuous_filter(cur, symbol, None)
            where, params = "continuous_symbol = %s AND granularity = %s AND adjustment_method = %s", \
                [continuous, granularity, method]
            shown = continuous
        else:
            ids = _instrument_ids(cur, symbol)
            where, params = "instrument_id = ANY(%s)", [ids]
            if granularity:
                where += " AND granularity = %s"
                params.append(granularity)
            shown = symbol
        tcol = sql.Identifier(time_col)
        cur.execute(sql.SQL("SELECT count(*), min({t}), max({t}) FROM {tab} WHERE ").format(
            t=tcol, tab=sql.Identifier(table)) + sql.SQL(where), params)
        row_count, min_ts, max_ts = cur.fetchone()
        latest_close = latest_ts = None
        close_col = CLOSE_COLUMN.get(table)
        if row_count and close_col:
            cur.execute(sql.SQL("SELECT {c}, {t} FROM {tab} WHERE ").format(
                c=sql.Identifier(close_col), t=tcol, tab=sql.Identifier(table)) + sql.SQL(where)
                + sql.SQL(" ORDER BY {t} DESC LIMIT 1").format(t=tcol), params)
            latest_close, latest_ts = cur.fetchone()
        elif row_count:
            latest_ts = max_ts
    result: dict[str, Any] = {
        "row_count": int(row_count),
        "min_ts": min_ts.isoformat() if min_ts else None,
        "max_ts": max_ts.isoformat() if max_ts else None,
        "latest_close": _plain(latest_close) if latest_close is not None else None,
        "latest_ts": latest_ts.isoformat() if latest_ts else None,
        "symbol": shown,
        "timeframe": granularity or schema,
        "vendor": "databento",
    }
    if not row_count:
        result["message"] = "No data ingested yet"
    return result
