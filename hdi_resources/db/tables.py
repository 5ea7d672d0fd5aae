"""What the loaders know of a table: its columns and primary key (read from the catalog once), its time column,
and column-wise comparisons of Arrow values as PostgreSQL compares them (for keys and duplicate detection)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hdi_core.errors import HdiError

from .binary import PgColumn, to_days, to_nanos_fixed, to_unix_micros

if TYPE_CHECKING:
    from .core import Database

LOADABLE_TABLES = frozenset({"continuous_bars", "roll_events", "ohlcv_data", "trades_data", "tbbo_data",
                             "statistics_data", "definitions_data", "orderflow_delta", "orderflow_footprint",
                             "orderflow_profile", "orderflow_absorption", "orderflow_icebergs"})
TIME_COLUMN = {"continuous_bars": "ts", "roll_events": "switch_ts", "ohlcv_data": "ts_event",
               "trades_data": "ts_event", "tbbo_data": "ts_event", "statistics_data": "ts_event",
               "definitions_data": "ts_event", "orderflow_delta": "ts", "orderflow_footprint": "ts",
               "orderflow_profile": "ts", "orderflow_absorption": "start_ts", "orderflow_icebergs": "first_ts"}
MONTH_PARTITIONED = frozenset({"ohlcv_data", "trades_data", "tbbo_data", "statistics_data", "definitions_data"})
INDEX_BUILD_MEMORY = "1GB"  # maintenance_work_mem of a stage's primary-key sort: in memory for ~10M rows
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
Span = tuple[dt.datetime, dt.datetime]  # [first, last] or [lo, hi) of a time column, as the caller says


@dataclass
class TableInfo:
    """A loadable table's columns (in order) and primary key."""

    name: str
    columns: list[PgColumn]
    primary_key: list[str]

    def column(self, name: str) -> PgColumn:
        for col in self.columns:
            if col.name == name:
                return col
        raise HdiError(f"table {self.name} has no column {name!r}")


def table_info(db: Database, table: str) -> TableInfo:
    """Columns and primary key of a loadable table, read from the catalog once per Database."""
    if table not in LOADABLE_TABLES:
        raise HdiError(f"table {table!r} cannot be loaded; choose one of {sorted(LOADABLE_TABLES)}")
    cached = db._columns_cache.get(table)
    if cached is not None:
        return cached
    with db.raw() as conn, conn.cursor() as cur:
        cur.execute("""SELECT a.attname, t.typname, a.attnotnull, a.atthasdef
                       FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
                       WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped
                       ORDER BY a.attnum""", (table,))
        columns = [PgColumn(*row) for row in cur.fetchall()]
        cur.execute("""SELECT a.attname FROM pg_index i
                       JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) ON TRUE
                       JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                       WHERE i.indrelid = to_regclass(%s) AND i.indisprimary ORDER BY k.ord""", (table,))
        pk = [row[0] for row in cur.fetchall()]
    if not columns:
        raise HdiError(f"table {table} does not exist; run `hdi db migrate`")
    info = TableInfo(table, columns, pk)
    db._columns_cache[table] = info
    return info


def as_table(data: Any) -> pa.Table:
    """The loaders' input as a pyarrow.Table (a RecordBatch or pandas DataFrame is converted)."""
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    try:
        import pandas as pd

        if isinstance(data, pd.DataFrame):
            return pa.Table.from_pandas(data, preserve_index=False)
    except ImportError:  # pandas is a dependency; keep the loader usable without it anyway
        pass
    raise HdiError(f"data must be a pyarrow.Table (or pandas DataFrame), got {type(data).__name__}")


def comparable(arr: pa.Array | pa.ChunkedArray, col: PgColumn) -> np.ndarray:
    """A NumPy array in which equal database values are equal (for keys and duplicate detection)."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if col.type_name in ("timestamptz", "timestamp"):
        return to_unix_micros(arr, col.name)[0]
    if col.type_name == "date":
        return to_days(arr, col.name)[0].astype(np.int64)
    if col.type_name == "numeric":
        return to_nanos_fixed(arr, col.name)[0]
    if col.type_name in ("text", "varchar", "bpchar"):
        if len(pc.unique(arr)) == 1:  # a constant column (the usual partition key) needs no per-row work
            return np.zeros(len(arr), dtype=np.int64)
        if pa.types.is_dictionary(arr.type):
            arr = arr.dictionary_decode()
        encoded = pc.dictionary_encode(arr.cast(pa.string()))
        return encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    return arr.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)


def constant_array(value: Any, col: PgColumn, n: int) -> pa.Array:
    """n copies of one value, built without n Python objects."""
    if col.type_name == "date":
        day = value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value)[:10])
        days = (day - dt.date(1970, 1, 1)).days
        return pa.array(np.full(n, days, dtype=np.int32)).cast(pa.date32())
    if col.type_name in ("timestamptz", "timestamp"):
        stamp = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=dt.UTC)
        micros = int(round(stamp.timestamp() * 1e6))
        return pa.array(np.full(n, micros, dtype=np.int64)).cast(pa.timestamp("us", tz="UTC"))
    if col.type_name in ("int2", "int4", "int8"):
        return pa.array(np.full(n, int(value), dtype=np.int64))
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, dtype=np.int32)), pa.array([str(value)]))


def key_value_matches(arr: pa.ChunkedArray, col: PgColumn, value: Any) -> np.ndarray:
    """Rows whose value equals `value` (a partition key given by the caller); nulls never match."""
    if col.type_name in ("text", "varchar", "bpchar"):
        return pc.fill_null(pc.equal(arr.cast(pa.string()), str(value)), False).to_numpy(zero_copy_only=False)
    wanted = comparable(constant_array(value, col, 1), col)[0]
    ok = comparable(arr, col) == wanted
    if arr.null_count:
        ok &= ~np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    return ok


def time_range(info: TableInfo, table: pa.Table) -> Span | None:
    """First and last value of the table's time column (None for no rows)."""
    if table.num_rows == 0:
        return None
    time_col = TIME_COLUMN[info.name]
    micros, _ = to_unix_micros(table.column(time_col).combine_chunks(), time_col)
    return from_micros(int(micros.min())), from_micros(int(micros.max()))


def from_micros(micros: int) -> dt.datetime:
    """Unix microseconds -> an aware UTC datetime."""
    return EPOCH + dt.timedelta(microseconds=micros)


def ensure_partitions(db: Database, info: TableInfo, table: pa.Table, fixed: dict[str, Any],
                      lock_timeout_s: float | None = None) -> None:
    """Native mode: create the partitions the rows need, in a short transaction of its own (its wait for the
    parent's lock bounded by lock_timeout_s when given: while it waits, every new reader of the table waits)."""
    if db.storage_mode != "native" or info.name == "roll_events":
        return
    with db.raw() as conn, conn.cursor() as cur:
        if lock_timeout_s is not None:
            cur.execute("SELECT set_config('lock_timeout', %s, true)", (f"{round(lock_timeout_s * 1000)}ms",))
        if info.name == "continuous_bars":
            if "continuous_symbol" not in fixed:
                raise HdiError("replace_partition(continuous_bars): key_columns_values must include "
                               "continuous_symbol")
            cur.execute("SELECT hdi.hdi_ensure_bar_symbol(%s)", (str(fixed["continuous_symbol"]),))
            return
        span = time_range(info, table)
        if span:
            cur.execute("SELECT hdi.hdi_ensure_partitions(%s, %s, %s)", (info.name, *span))


def datetime_micros(value: dt.datetime) -> int:
    """An aware datetime -> Unix microseconds (exact, unlike timestamp() * 1e6)."""
    return (value - EPOCH) // dt.timedelta(microseconds=1)


def comparable_sql(col: PgColumn) -> str:
    """A SELECT expression (its {} the column) giving a stored key in the form key_values gives the input's."""
    if col.type_name in ("timestamptz", "timestamp"):
        return "(extract(epoch FROM {}) * 1000000)::int8"
    if col.type_name == "date":
        return "({} - DATE '1970-01-01')::int8"
    if col.type_name == "numeric":
        return "({} * 1000000000)::int8"
    if col.type_name in ("text", "varchar", "bpchar"):
        return "{}::text"
    return "{}::int8"


def key_values(arr: pa.ChunkedArray, col: PgColumn) -> np.ndarray:
    """Key values comparable with what comparable_sql reads back (text as text, the rest as int64)."""
    if col.type_name in ("text", "varchar", "bpchar"):
        return np.asarray(arr.cast(pa.string()).to_numpy(zero_copy_only=False), dtype=object)
    return comparable(arr, col)


def key_codes(arr: pa.ChunkedArray, col: PgColumn) -> np.ndarray:
    """comparable, with CHAR(n) values compared as PostgreSQL does: trailing spaces do not count."""
    if col.type_name == "bpchar":
        arr = pc.utf8_rtrim(arr.cast(pa.string()), characters=" ")
    return comparable(arr, col)




def symbol_partition_name(symbol: str, month: dt.datetime) -> str:
    """Python twin of the SQL hdi_bar_partition_name (kept in step by test_database)."""
    import hashlib
    import re

    slug = re.sub(r"[^A-Za-z0-9]+", "_", symbol).lower()[:24]
    return f"continuous_bars_{slug}_{hashlib.md5(symbol.encode()).hexdigest()[:6]}_p{month:%Y%m}"
