"""The one read layer under the CLI, the HTTP API and the Python API: `query` (rows as Arrow), `stats` (seed
003's shape) and `rolls`. Symbols resolve through the catalogue (resolve.py), ranges mean the same everywhere
(timerange.py), errors are one line with an HTTP status (readerrors.py).

Prices: exact decimal128(38, 9) by default, float64 or int64 fixed point (1e-9) when asked. Tables and columns
come from fixed dicts; user text only ever travels as bind parameters."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.csv as pacsv

from .readerrors import BadRequest, DatabaseUnavailable, NotFound, TooLarge
from .resolve import BAR_SCHEMAS, HIGH_FREQUENCY, SCHEMAS, VENDOR_TABLES, Selection, resolve, schema_name
from .timerange import EXCHANGE_TZ, TimeRange, parse_range, time_zone

if TYPE_CHECKING:
    from .core import Database

__all__ = ["BAR_SCHEMAS", "GUARD_ROWS", "PRICE_MODES", "SCHEMAS", "VENDOR_TABLES", "query", "resolve_table",
           "rolls", "stats", "stream_csv"]

TIME_COLUMN = {"continuous_bars": "ts", "ohlcv_data": "ts_event", "trades_data": "ts_event",
               "tbbo_data": "ts_event", "statistics_data": "ts_event", "definitions_data": "ts_event"}
CLOSE_COLUMN = {"continuous_bars": "close", "ohlcv_data": "close_price", "trades_data": "price",
                "tbbo_data": "price", "statistics_data": "price"}
PRICE_TYPE = pa.decimal128(38, 9)
PRICE_MODES = ("decimal", "float", "fixed")
# the rest of each vendor table's primary key: with it the order is total, so pages (offset) join up exactly
ORDER_TAIL = {"ohlcv_data": ", granularity", "trades_data": ", sequence, price, size, side",
              "tbbo_data": ", sequence, price, size, side", "statistics_data": ", stat_type, sequence",
              "definitions_data": ", leg_index"}
GUARD_ROWS = 1_000_000  # a tick or 1s read without bounds or limit above this is refused unless asked
MAX_LIMIT = 1_000_000_000


def resolve_table(schema: str, raw: bool) -> tuple[str, str | None]:
    """(table, granularity or None) for a schema name; raises a one-line error for an unknown one."""
    schema = schema_name(schema)
    if schema in BAR_SCHEMAS:
        return ("ohlcv_data" if raw else "continuous_bars"), BAR_SCHEMAS[schema]
    return VENDOR_TABLES[schema], None


@contextmanager
def _cursor(db: Database) -> Iterator[Any]:
    """A cursor on the app role; an unreachable or vanished server becomes one line without names or ports."""
    import psycopg2

    from hdi_core.errors import HdiError

    try:
        with db.raw() as conn, conn.cursor() as cur:
            yield cur
    except (psycopg2.OperationalError, psycopg2.InterfaceError):
        raise DatabaseUnavailable("the database went away during the read (stopped or restarted); "
                                  "run it again once it is up (`hdi db start`)") from None
    except HdiError as exc:
        if str(exc).startswith("cannot connect"):
            raise DatabaseUnavailable("the database is unavailable (not running or restarting)") from None
        raise


_ARROW_TYPES = {"int2": pa.int16(), "int4": pa.int32(), "int8": pa.int64(), "float8": pa.float64(),
                "float4": pa.float32(), "bool": pa.bool_(), "date": pa.date32()}


def _columns(cur: Any, table: str) -> list[tuple[str, str]]:
    cur.execute("""SELECT a.attname, t.typname FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
                   WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped
                   ORDER BY a.attnum""", (table,))
    return cur.fetchall()


def _copy_sql(cur: Any, table: str, where: str, params: list[Any], order: str, limit: int | None,
              prices: str, extra: list[tuple[str, str, list[Any]]] = (), offset: int = 0, text: bool = False
              ) -> tuple[str, list[tuple[str, str]], dict[str, pa.DataType]]:
    """COPY (SELECT ...) TO STDOUT as CSV, its columns and their Arrow types. extra: computed columns (name, SQL
    type name, [SQL expression with %s, its parameters]). text: columns as people read them (ISO instants in
    the session's zone, decimals without trailing zeros), for streaming straight out."""
    from psycopg2 import sql

    cols = [*_columns(cur, table), *((name, type_name) for name, type_name, _ in extra)]
    computed = {name: expr for name, _, expr in extra}
    select_items, types = [], {}
    for name, type_name in cols:
        ident = sql.Identifier(name)
        if name in computed:
            expr, values = computed[name][0], computed[name][1:]
            select_items.append(sql.SQL(cur.mogrify(expr, values).decode()) + sql.SQL(" AS {}").format(ident))
            types[name] = _ARROW_TYPES.get(type_name, pa.string())
        elif text and type_name == "numeric" and prices == "decimal":
            select_items.append(sql.SQL("trim_scale({0}) AS {0}").format(ident))
        elif text and type_name in ("timestamptz", "timestamp"):
            select_items.append(ident)
        elif type_name in ("timestamptz", "timestamp"):  # epoch micros: exact and timezone-free
            select_items.append(sql.SQL("(extract(epoch FROM {0}) * 1000000)::bigint AS {0}").format(ident))
            types[name] = pa.int64()
        elif type_name == "numeric" and prices == "fixed":
            select_items.append(sql.SQL("round({0} * 1000000000)::bigint AS {0}").format(ident))
            types[name] = pa.int64()
        elif type_name == "numeric" and prices == "float":
            select_items.append(sql.SQL("{0}::float8 AS {0}").format(ident))
            types[name] = pa.float64()
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
    if offset:
        query = query + sql.SQL(" OFFSET %s")
        params = [*params, int(offset)]
    bound = cur.mogrify(query, params).decode()  # the driver quotes the parameters; no user text in SQL
    return f"COPY ({bound}) TO STDOUT WITH (FORMAT csv, HEADER true)", cols, types


def _select(cur: Any, table: str, where: str, params: list[Any], order: str, limit: int | None,
            prices: str, extra: list[tuple[str, str, list[Any]]] = (), offset: int = 0) -> pa.Table:
    """The rows as an Arrow table with exact types (CSV from COPY, parsed column-wise by Arrow)."""
    copy, cols, types = _copy_sql(cur, table, where, params, order, limit, prices, extra, offset)
    buffer = io.BytesIO()
    cur.copy_expert(copy, buffer)
    buffer.seek(0)
    names = [name for name, _ in cols]
    if buffer.getbuffer().nbytes <= len(",".join(names)) + 1:
        out = pa.table({n: pa.array([], types[n]) for n in names})
    else:
        out = pacsv.read_csv(buffer, convert_options=pacsv.ConvertOptions(
            column_types=types, strings_can_be_null=True, quoted_strings_can_be_null=False,
            true_values=["t"], false_values=["f"]))  # PostgreSQL's CSV booleans
    for name, type_name in cols:
        if type_name in ("timestamptz", "timestamp"):
            idx = out.schema.get_field_index(name)
            out = out.set_column(idx, name, out.column(name).cast(pa.timestamp("us", tz="UTC")))
    return out


def _time_filter(selection: Selection, span: TimeRange) -> tuple[list[str], list[Any], bool]:
    """Clauses for the range; plain dates on bars with a trade date select trade dates, with a generous bound on
    ts as well (a session lies within a day before its trade date) so the planner prunes and uses the index."""
    by_trade_date = selection.by_trade_date_column and span.dates_only
    time_col = TIME_COLUMN[selection.table]
    clauses, params = [], []
    for op, stamp, day, slack in ((">=", span.start, span.start_date, -2), ("<", span.end, span.end_date, 1)):
        if stamp is None:
            continue
        if by_trade_date:
            clauses += [f"trade_date {op} %s", f"{time_col} {op} %s"]
            bound = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC) + dt.timedelta(days=slack)
            params += [day, bound]
        else:
            clauses.append(f"{time_col} {op} %s")
            params.append(stamp)
    return clauses, params, by_trade_date


def _outside(selection: Selection, span: TimeRange, by_trade_date: bool) -> bool:
    lo, hi = selection.span(by_trade_date)
    if lo is None:
        return True
    start = span.start_date if by_trade_date else span.start
    end = span.end_date if by_trade_date else span.end
    return (end is not None and end <= lo) or (start is not None and start > hi)


def _nothing_there(selection: Selection, span: TimeRange, by_trade_date: bool) -> NotFound:
    if not selection.rows:
        other = f"; stored for it: {', '.join(selection.elsewhere)}" if selection.elsewhere else ""
        return NotFound(f"no {selection.schema} rows stored for {selection.shown}{other}")
    return NotFound(f"no {selection.schema} rows for {selection.shown} in {span.describe(by_trade_date)}; "
                    f"{selection.stored()}")


def _provenance(cur: Any, selection: Selection) -> list[tuple[str, str, list[Any]]]:
    """Each continuous bar's contract (raw symbol, instrument id) from the roll events of its series, as two
    computed columns: CASE over the switches (a few a year), newest first."""
    cur.execute("""SELECT DISTINCT ON (switch_ts) switch_ts, old_raw_symbol, old_instrument_id, new_raw_symbol,
                          new_instrument_id FROM roll_events WHERE continuous_symbol = %s
                   ORDER BY switch_ts, method""", (selection.continuous_symbol,))
    events = cur.fetchall()
    if not events:
        return [("raw_symbol", "text", ["NULL::text"]), ("instrument_id", "int8", ["NULL::bigint"])]
    columns = []
    for name, type_name, old, new in (("raw_symbol", "text", 1, 3), ("instrument_id", "int8", 2, 4)):
        cast = "::text" if type_name == "text" else "::bigint"
        whens = " ".join(f"WHEN ts >= %s THEN %s{cast}" for _ in events)
        values = [v for e in reversed(events) for v in (e[0], e[new])]
        columns.append((name, type_name, [f"CASE {whens} ELSE %s{cast} END", *values, events[0][old]]))
    return columns


def _in_zone(table: pa.Table, tz: str) -> pa.Table:
    """Timestamps shown in the asked zone (the instants are unchanged)."""
    if tz != "exchange":
        return table
    for i, fld in enumerate(table.schema):
        if pa.types.is_timestamp(fld.type):
            table = table.set_column(i, fld.name, table.column(i).cast(pa.timestamp("us", tz=str(EXCHANGE_TZ))))
    return table


def _check(prices: str, limit: int | None, offset: int) -> None:
    if prices not in PRICE_MODES:
        raise BadRequest(f"prices {str(prices)[:20]!r} is not one of {', '.join(PRICE_MODES)}")
    if limit is not None and not 1 <= int(limit) <= MAX_LIMIT:
        raise BadRequest(f"limit {limit} is not a whole number from 1 to {MAX_LIMIT:,}")
    if not 0 <= int(offset) <= MAX_LIMIT:
        raise BadRequest(f"offset {offset} is not a whole number from 0 to {MAX_LIMIT:,}")


def _plan(cur: Any, db: Database, symbol: str, schema: str, span: TimeRange, raw: bool,
          adjustment_method: str | None, limit: int | None, max_rows: int | None) -> tuple[Any, ...]:
    """(table, where, params, order, computed columns) of a read; raises its one-line errors."""
    selection = resolve(cur, db, symbol, schema, raw=raw, adjustment_method=adjustment_method)
    clauses, params, by_trade_date = _time_filter(selection, span)
    if _outside(selection, span, by_trade_date):
        raise _nothing_there(selection, span, by_trade_date)
    where, base = selection.where()
    where = " AND ".join([where, *clauses])
    params = [*base, *params]
    if (limit is None and max_rows is not None and selection.schema in HIGH_FREQUENCY
            and selection.row_count > max_rows):
        _guard(cur, selection, where, params, max_rows)
    # Vendor rows keep their exact nanoseconds (ts_event_ns): two records in one microsecond come back in order.
    order = "ts" if selection.table == "continuous_bars" else \
        f"{TIME_COLUMN[selection.table]}, ts_event_ns, instrument_id{ORDER_TAIL[selection.table]}"
    extra = _provenance(cur, selection) if selection.table == "continuous_bars" else []
    resolved = {"symbol": selection.shown, "schema": selection.schema,
                "adjustment_method": selection.adjustment_method or "",
                "instrument_ids": ",".join(map(str, selection.instrument_ids)),
                "range": span.describe(by_trade_date)}
    return selection.table, where, params, order, extra, resolved


def query(db: Database, symbol: str, schema: str, start: Any = None, end: Any = None, raw: bool = False, *,
          adjustment_method: str | None = None, limit: int | None = None, tz: str | None = "utc",
          prices: str = "decimal", max_rows: int | None = GUARD_ROWS, empty_ok: bool = False,
          offset: int = 0) -> pa.Table:
    """Rows of one symbol and schema in [start, end), ordered by time; continuous bars carry their contract.
    A page: `limit` rows after skipping `offset` (the order is total: time, then instrument id).

    Raises NotFound for an unknown symbol or a range outside what is stored (empty_ok: an empty table instead),
    BadRequest for bad parameters, TooLarge for a tick/1s read over max_rows without a limit."""
    _check(prices, limit, offset)
    span = parse_range(start, end, tz)
    with _cursor(db) as cur:
        try:
            table, where, params, order, extra, resolved = _plan(cur, db, symbol, schema, span, raw,
                                                                 adjustment_method, limit, max_rows)
        except NotFound:
            if empty_ok:
                return pa.table({})
            raise
        rows = _select(cur, table, where, params, order, limit, prices, extra, offset)
    rows = _in_zone(rows, (tz or "utc").lower())
    # what the request resolved to travels with the rows (and into Parquet files written from them)
    meta = {**resolved, "time_zone": (tz or "utc").lower(), "prices": prices}
    return rows.replace_schema_metadata({f"hdi.{k}": str(v) for k, v in meta.items()})


def stream_csv(db: Database, sink: Any, symbol: str, schema: str, start: Any = None, end: Any = None,
               raw: bool = False, *, adjustment_method: str | None = None, limit: int | None = None,
               tz: str | None = "utc", prices: str = "decimal", max_rows: int | None = GUARD_ROWS) -> int:
    """The same rows as `query`, written as CSV to a binary file as the server sends them (constant memory);
    instants in ISO form in the asked zone, decimals without trailing zeros. Returns the row count."""
    _check(prices, limit, 0)
    span = parse_range(start, end, tz)
    with _cursor(db) as cur:
        table, where, params, order, extra, _resolved = _plan(cur, db, symbol, schema, span, raw,
                                                              adjustment_method, limit, max_rows)
        cur.execute("SET LOCAL timezone = %s", (str(EXCHANGE_TZ) if (tz or "utc").lower() == "exchange" else "UTC",))
        cur.execute("SET LOCAL datestyle = 'ISO, YMD'")
        copy, _cols, _types = _copy_sql(cur, table, where, params, order, limit, prices, extra, text=True)
        cur.copy_expert(copy, sink)
        return max(cur.rowcount, 0)


def _guard(cur: Any, selection: Selection, where: str, params: list[Any], max_rows: int) -> None:
    """Count at most max_rows + 1 rows of the range (bounded work) and refuse a read above the guard."""
    cur.execute(f"SELECT count(*) FROM (SELECT 1 FROM {selection.table} WHERE {where} LIMIT %s) t",
                [*params, max_rows + 1])  # table from a fixed dict; values are parameters
    if cur.fetchone()[0] > max_rows:
        raise TooLarge(f"{selection.schema} for {selection.shown} is over {max_rows:,} rows in that range "
                       f"({selection.row_count:,} stored); narrow --start/--end, set --limit, or ask for --all")


def _plain(value: Any) -> Any:
    """Decimal without the storage scale's trailing zeros and without exponent notation (4500.25)."""
    return Decimal(format(value.normalize(), "f")) if isinstance(value, Decimal) else value


def stats(db: Database, symbol: str, schema: str, raw: bool = False) -> dict[str, Any]:
    """row_count, min_ts, max_ts, latest_close, latest_ts, symbol, timeframe, vendor (+ message if empty);
    counts and spans come from the catalogue, the latest close from one index-ordered row."""
    from psycopg2 import sql

    with _cursor(db) as cur:
        selection = resolve(cur, db, symbol, schema, raw=raw)
        lo, hi = selection.span(False)
        latest_close = latest_ts = None
        close_col = CLOSE_COLUMN.get(selection.table)
        if selection.rows and close_col:
            where, params = selection.where()
            tcol = sql.Identifier(TIME_COLUMN[selection.table])
            cur.execute(sql.SQL("SELECT {c}, {t} FROM {tab} WHERE ").format(
                c=sql.Identifier(close_col), t=tcol, tab=sql.Identifier(selection.table)) + sql.SQL(where)
                + sql.SQL(" ORDER BY {t} DESC LIMIT 1").format(t=tcol), params)
            found = cur.fetchone()
            latest_close, latest_ts = found if found else (None, None)
        elif selection.rows:
            latest_ts = hi
    result: dict[str, Any] = {
        "row_count": selection.row_count,
        "min_ts": lo.astimezone(dt.UTC).isoformat() if lo else None,
        "max_ts": hi.astimezone(dt.UTC).isoformat() if hi else None,
        "latest_close": _plain(latest_close) if latest_close is not None else None,
        "latest_ts": latest_ts.astimezone(dt.UTC).isoformat() if latest_ts else None,
        "symbol": selection.shown,
        "timeframe": selection.granularity or selection.schema,
        "vendor": "databento",
    }
    if not selection.row_count:
        result["message"] = "No data ingested yet"
    return result


ROLL_COLUMNS = ("continuous_symbol", "method", "switch_ts", "old_raw_symbol", "new_raw_symbol",
                "old_instrument_id", "new_instrument_id", "old_price", "new_price", "roll_gap")


def rolls(db: Database, symbol: str, start: Any = None, end: Any = None, *, tz: str | None = "utc",
          prices: str = "decimal") -> pa.Table:
    """Roll events of a root (every series), a continuous symbol, or a contract (the rolls into or out of it):
    the switch in UTC and exchange time, its trade date, both prices, the gap and the method."""
    if prices not in PRICE_MODES:
        raise BadRequest(f"prices {str(prices)[:20]!r} is not one of {', '.join(PRICE_MODES)}")
    time_zone(tz)
    span = parse_range(start, end, tz)
    with _cursor(db) as cur:
        from .catalog import entries, known_symbols

        text = (symbol or "").strip()[:64]
        folded = text.casefold()
        found = entries(cur, db, ("roll_events",))
        series = sorted({e.symbol for e in found if folded in (e.symbol.casefold(), (e.root_symbol or "").casefold())})
        contract = "upper(old_raw_symbol) = upper(%s) OR upper(new_raw_symbol) = upper(%s)"
        where, params = ("(continuous_symbol = ANY(%s))", [series]) if series else (f"({contract})", [text, text])
        for op, stamp in ((">=", span.start), ("<", span.end)):
            if stamp is not None:
                where += f" AND switch_ts {op} %s"
                params.append(stamp)
        trade_date = ("(((switch_ts AT TIME ZONE 'America/Chicago') + interval '7 hours')::date + CASE "
                      "extract(isodow FROM (switch_ts AT TIME ZONE 'America/Chicago') + interval '7 hours') "
                      "WHEN 6 THEN 2 WHEN 7 THEN 1 ELSE 0 END)")  # 17:00 Chicago opens the next weekday
        table = _select(cur, "roll_events", where, params, "continuous_symbol, switch_ts, method", None, prices,
                        [("trade_date", "date", [trade_date])])
        if not series and not table.num_rows:
            names = known_symbols(found)
            raise NotFound(f"no rolls stored for {text!r}; stored: {', '.join(names[:30])}" if names
                           else f"no rolls stored for {text!r}; nothing is stored yet")
    local = table.column("switch_ts").cast(pa.timestamp("us", tz=str(EXCHANGE_TZ)))
    out = table.select(list(ROLL_COLUMNS))
    idx = out.schema.get_field_index("switch_ts")
    return out.add_column(idx + 1, "switch_exchange", local).add_column(idx + 2, "trade_date",
                                                                       table.column("trade_date"))
