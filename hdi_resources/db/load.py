"""Bulk loads: replace one logical partition atomically, upsert vendor rows idempotently, audit runs.

Rows travel as binary COPY built column-wise from Arrow; rows that would break a CHECK or NOT NULL rule
are diverted to `quarantine` (rule named) before the COPY, so the valid rows still load."""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

from hdi_core.errors import HdiError
from hdi_resources.settings import redact

from .binary import (
    PgColumn,
    all_fixed,
    copy_bytes,
    copy_rows_fixed,
    encode_column,
    to_days,
    to_nanos_fixed,
    to_unix_micros,
)

if TYPE_CHECKING:
    from .core import Database

log = logging.getLogger(__name__)

LOADABLE_TABLES = frozenset({"continuous_bars", "roll_events", "ohlcv_data", "trades_data", "tbbo_data",
                             "statistics_data", "definitions_data"})
TIME_COLUMN = {"continuous_bars": "ts", "roll_events": "switch_ts", "ohlcv_data": "ts_event",
               "trades_data": "ts_event", "tbbo_data": "ts_event", "statistics_data": "ts_event",
               "definitions_data": "ts_event"}
BATCH_ROWS = 100_000
COPY_READ_SIZE = 1 << 20
SWAP_MIN_ROWS = 50_000  # below this a month's reload goes DELETE + COPY; above, rebuild-and-swap
LOAD_WORKERS = 2  # connections filling month stage tables at once (each month wholly on one)
INDEX_BUILD_MEMORY = "1GB"  # maintenance_work_mem of a stage's primary-key sort: in memory for ~10M rows
UPSERT_WORK_MEMORY = "256MB"  # work_mem of an upsert's join: a 2M-row input's hash table in memory
MONTH_PARTITIONED = frozenset({"ohlcv_data", "trades_data", "tbbo_data", "statistics_data", "definitions_data"})
GRANULARITIES = ("1s", "1m", "5m", "15m", "1h", "1d")


@dataclass
class LoadResult:
    """What replace_partition did: rows stored, quarantined (by rule), and old rows removed."""

    inserted: int
    quarantined: int
    deleted: int = 0
    seconds: float = 0.0
    rules: dict[str, int] = field(default_factory=dict)
    ignored_columns: list[str] = field(default_factory=list)


@dataclass
class UpsertResult:
    """What upsert_rows did; unchanged rows matched an identical stored row and were not rewritten."""

    inserted: int
    updated: int
    unchanged: int
    quarantined: int
    duplicates: int = 0
    seconds: float = 0.0
    rules: dict[str, int] = field(default_factory=dict)


@dataclass
class TableInfo:
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


def _as_table(data: Any) -> pa.Table:
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


def _comparable(arr: pa.Array | pa.ChunkedArray, col: PgColumn) -> np.ndarray:
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


def _constant_array(value: Any, col: PgColumn, n: int) -> pa.Array:
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


def _key_value_matches(arr: pa.ChunkedArray, col: PgColumn, value: Any) -> np.ndarray:
    if col.type_name in ("text", "varchar", "bpchar"):
        return pc.fill_null(pc.equal(arr.cast(pa.string()), str(value)), False).to_numpy(zero_copy_only=False)
    wanted = _comparable(_constant_array(value, col, 1), col)[0]
    ok = _comparable(arr, col) == wanted
    if arr.null_count:
        ok &= ~np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    return ok


class _Rules:
    """Per-row rule violations collected column-wise; the first failed rule names the quarantine entry."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.bad = np.zeros(n, dtype=bool)
        self.names = np.full(n, "", dtype=object)
        self.counts: dict[str, int] = {}

    def add(self, rule: str, failed: np.ndarray) -> None:
        fresh = failed & ~self.bad
        if fresh.any():
            self.names[fresh] = rule
            self.counts[rule] = self.counts.get(rule, 0) + int(fresh.sum())
            self.bad |= fresh


@njit(cache=True, nogil=True)
def _ohlc_breaks(o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """high >= GREATEST(open, close, low) and low <= LEAST(open, close, high), in one pass."""
    n = o.shape[0]
    high_breaks = np.zeros(n, dtype=np.bool_)
    low_breaks = np.zeros(n, dtype=np.bool_)
    for i in range(n):
        high_breaks[i] = h[i] < max(o[i], c[i], lo[i])
        low_breaks[i] = lo[i] > min(o[i], c[i], h[i])
    return high_breaks, low_breaks


def _bar_rules(table: pa.Table, rules: _Rules) -> None:
    """The CHECK constraints of continuous_bars, evaluated exactly on int64 1e-9 prices."""
    prices = {}
    for name in ("open", "high", "low", "close"):
        values, nulls = to_nanos_fixed(table.column(name).combine_chunks(), name)
        prices[name] = values
        if nulls is not None:
            rules.add(f"not_null({name})", nulls)
    high_breaks, low_breaks = _ohlc_breaks(prices["open"], prices["high"], prices["low"], prices["close"])
    rules.add("bar_high_is_highest", high_breaks)
    rules.add("bar_low_is_lowest", low_breaks)
    volume = table.column("volume")
    if pc.min(volume).as_py() is not None and pc.min(volume).as_py() < 0:
        rules.add("bar_volume_not_negative",
                  pc.fill_null(pc.less(volume, 0), False).to_numpy(zero_copy_only=False))
    granularity = table.column("granularity")
    if not set(pc.unique(granularity).to_pylist()) <= set(GRANULARITIES):
        allowed = pc.is_in(granularity.cast(pa.string()), pa.array(GRANULARITIES))
        rules.add("continuous_bars_granularity_check",
                  ~pc.fill_null(allowed, False).to_numpy(zero_copy_only=False))


def _duplicate_rows(table: pa.Table, info: TableInfo, key: list[str]) -> np.ndarray:
    """Rows whose key repeats an earlier row's key (the first occurrence stays)."""
    n = table.num_rows
    codes = [_comparable(table.column(k), info.column(k)) for k in key]
    varying = [c for c in codes if n and not (c == c[0]).all()]
    if not varying:
        dup = np.ones(n, dtype=bool)
        dup[:1] = False
        return dup
    if len(varying) == 1 and (np.diff(varying[0]) > 0).all():
        return np.zeros(n, dtype=bool)
    order = np.lexsort(varying[::-1])
    same = np.ones(n - 1, dtype=bool)
    for c in varying:
        sorted_c = c[order]
        same &= sorted_c[1:] == sorted_c[:-1]
    dup = np.zeros(n, dtype=bool)
    # lexsort is stable, so within equal keys the earliest row comes first and is kept.
    dup[order[1:][same]] = True
    return dup


def _prepare(db: Database, info: TableInfo, data: Any, fixed: dict[str, Any], key: list[str]
             ) -> tuple[pa.Table, pa.Table, list[str], _Rules, list[str]]:
    """Fill constant columns, check rules; returns (valid rows, invalid rows, their rules, ...)."""
    table = _as_table(data)
    n = table.num_rows
    names = {c.name for c in info.columns}
    ignored = [c for c in table.column_names if c not in names]
    rules = _Rules(n)
    for name, value in fixed.items():
        col = info.column(name)
        if name in table.column_names:
            rules.add("partition_key_mismatch", ~_key_value_matches(table.column(name), col, value))
        else:
            table = table.append_column(name, _constant_array(value, col, n))
    for col in info.columns:
        if col.not_null and not col.has_default and col.name not in table.column_names:
            raise HdiError(f"{info.name}: input has no column {col.name!r} (required, NOT NULL)")
    if info.name == "continuous_bars":
        _bar_rules(table, rules)
    for col in info.columns:
        if col.not_null and col.name in table.column_names and table.column(col.name).null_count:
            rules.add(f"not_null({col.name})",
                      np.asarray(table.column(col.name).is_null().to_numpy(zero_copy_only=False), dtype=bool))
    if n and key:
        rules.add("duplicate_key", _duplicate_rows(table, info, key) & ~rules.bad)
    load_columns = [c.name for c in info.columns if c.name in table.column_names]
    table = table.select(load_columns)
    if rules.bad.any():
        bad_mask = pa.array(rules.bad)
        return (table.filter(pc.invert(bad_mask)), _as_table(data).filter(bad_mask[: n]),
                list(rules.names[rules.bad]), rules, ignored)
    return table, table.slice(0, 0), [], rules, ignored


def _time_range(info: TableInfo, table: pa.Table) -> tuple[dt.datetime, dt.datetime] | None:
    if table.num_rows == 0:
        return None
    time_col = TIME_COLUMN[info.name]
    micros, _ = to_unix_micros(table.column(time_col).combine_chunks(), time_col)
    return _from_micros(int(micros.min())), _from_micros(int(micros.max()))


def _from_micros(micros: int) -> dt.datetime:
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=micros)


def _ensure_partitions(db: Database, info: TableInfo, table: pa.Table, fixed: dict[str, Any]) -> None:
    """Native mode: create the partitions the rows need, in a short transaction of its own."""
    if db.storage_mode != "native" or info.name == "roll_events":
        return
    with db.raw() as conn, conn.cursor() as cur:
        if info.name == "continuous_bars":
            if "continuous_symbol" not in fixed:
                raise HdiError("replace_partition(continuous_bars): key_columns_values must include "
                               "continuous_symbol")
            cur.execute("SELECT hdi_ensure_bar_symbol(%s)", (str(fixed["continuous_symbol"]),))
            return
        span = _time_range(info, table)
        if span:
            cur.execute("SELECT hdi_ensure_partitions(%s, %s, %s)", (info.name, *span))


class _MemoryReader:
    """A read()-able view over a buffer, so COPY streams it without another full copy."""

    def __init__(self, buffer: memoryview) -> None:
        self.buffer = buffer
        self.pos = 0

    def read(self, size: int = -1) -> bytes:
        end = len(self.buffer) if size < 0 else min(len(self.buffer), self.pos + size)
        chunk = self.buffer[self.pos:end].tobytes()
        self.pos = end
        return chunk


def _copy(cur: Any, info: TableInfo, table: pa.Table, target: str | None = None, freeze: bool = False) -> int:
    """COPY the rows in binary batches; the next batch is encoded in a thread while the server ingests
    the current one (NumPy and libpq both release the GIL). Returns the number of rows sent."""
    from concurrent.futures import ThreadPoolExecutor

    from psycopg2 import sql

    if table.num_rows == 0:
        return 0
    cols = [info.column(name) for name in table.column_names]
    statement = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT binary{})").format(
        sql.Identifier(target or info.name), sql.SQL(", ").join(sql.Identifier(c.name) for c in cols),
        sql.SQL(", FREEZE") if freeze else sql.SQL(""))

    # Two buffers taken in turn: one is being sent while the next batch is written into the other (fresh
    # memory for every batch would cost a page fault per 4 KiB on first touch).
    buffers: list[np.ndarray | None] = [None, None]

    def encode(i: int) -> memoryview:
        batch = table.slice(i * BATCH_ROWS, BATCH_ROWS)
        encoded = [encode_column(batch.column(c.name), c) for c in cols]
        if not all_fixed(encoded):
            return copy_bytes(encoded, batch.num_rows)
        buffers[i % 2] = copy_rows_fixed(encoded, batch.num_rows, out=buffers[i % 2])
        return memoryview(buffers[i % 2])  # type: ignore[arg-type]

    batches = -(-table.num_rows // BATCH_ROWS)
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(encode, 0)
        for i in range(batches):
            payload = pending.result()
            if i + 1 < batches:  # its buffer is the one of batch i - 1, which has been sent
                pending = pool.submit(encode, i + 1)
            cur.copy_expert(statement, _MemoryReader(payload), size=COPY_READ_SIZE)
    return table.num_rows


def _micros(value: dt.datetime) -> int:
    return (value - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)


Span = tuple[dt.datetime, dt.datetime]


def _delete(cur: Any, table: str, where: Any, params: list[Any], bounds: Span | None) -> int:
    """DELETE the partition's rows, within [lo, hi) of the time column when bounds are known (literal bounds
    let the planner skip every other partition)."""
    from psycopg2 import sql

    statement = sql.SQL("DELETE FROM {} WHERE ").format(sql.Identifier(table)) + where
    if bounds is not None:
        statement += sql.SQL(" AND {t} >= %s AND {t} < %s").format(t=sql.Identifier(TIME_COLUMN[table]))
        params = [*params, *bounds]
    cur.execute(statement, params)
    return cur.rowcount


def _replace_bars_native(db: Database, cur: Any, info: TableInfo, table: pa.Table, keys: dict[str, Any],
                         where: Any, params: list[Any], bounds: Span | None, previous_rows: int | None
                         ) -> tuple[int, int]:
    """continuous_bars, native layout; returns (inserted, deleted). Per month of the symbol:
    - no partition yet, or mostly replaced rows: worker connections (LOAD_WORKERS, whole months each) build
      an unattached stage table in their own transactions (the rows that stay, then COPY FREEZE of the new
      ones, then the primary key by one sort; WAL is skipped at wal_level=minimal), and this transaction
      swaps every stage in at the end, so readers see all the new months at once or none;
    - otherwise: DELETE the partition's rows there and COPY the new ones through the parent.
    previous_rows (from hdi_loaded_partitions) spares counting the rows a rebuilt month drops."""
    symbol = str(keys["continuous_symbol"])
    if bounds is None:
        return 0, _delete(cur, info.name, where, params, None)
    lo, hi = bounds
    last = hi - dt.timedelta(microseconds=1)
    with db.raw() as cleanup_conn, cleanup_conn.cursor() as cleanup:  # its own short, committed transaction
        cleanup.execute("SELECT hdi_drop_leftover_bar_stages(%s, %s, %s)", (symbol, lo, last))
    cur.execute("SELECT month_start, existing_rows FROM hdi_lock_bar_months(%s, %s, %s)", (symbol, lo, last))
    months = cur.fetchall()
    starts = [m[0] for m in months]
    after_last = (starts[-1] + dt.timedelta(days=32)).replace(day=1)
    edges = np.array([_micros(m) for m in [*starts, after_last]])
    micros = (to_unix_micros(table.column("ts").combine_chunks(), "ts")[0] if table.num_rows
              else np.empty(0, dtype=np.int64))
    month_of_row = np.searchsorted(edges, micros, side="right") - 1
    new_rows = np.bincount(month_of_row, minlength=len(months))
    plan = []
    for i, (_month, existing_rows) in enumerate(months):
        if existing_rows is None:
            plan.append("fresh" if new_rows[i] else "skip")
        elif new_rows[i] >= SWAP_MIN_ROWS and 0 <= existing_rows < 2 * new_rows[i]:
            plan.append("swap")
        else:
            plan.append("route")
    deleted = 0
    i = 0
    while i < len(months):  # one bounded DELETE per run of consecutive "route" months
        if plan[i] != "route":
            i += 1
            continue
        j = i
        while j + 1 < len(months) and plan[j + 1] == "route":
            j += 1
        run_lo = max(lo, starts[i])
        run_hi = min(hi, _from_micros(int(edges[j + 1])))
        deleted += _delete(cur, info.name, where, params, (run_lo, run_hi))
        i = j + 1
    staged = [i for i, p in enumerate(plan) if p in ("fresh", "swap")]
    key_json = json.dumps({k: str(v) for k, v in keys.items()})
    in_order = bool(np.all(month_of_row[1:] >= month_of_row[:-1]))
    first_row = np.searchsorted(month_of_row, np.arange(len(months) + 1)) if in_order else None

    def rows_of(i: int) -> pa.Table:  # rows in time order (the usual case) make each month a zero-copy slice
        if first_row is not None:
            return table.slice(int(first_row[i]), int(first_row[i + 1] - first_row[i]))
        return table.filter(pa.array(month_of_row == i))

    inserted, replaced = _stage_months(db, info, symbol, key_json, previous_rows is None,
                                       [(starts[i], rows_of(i)) for i in staged])
    deleted += replaced
    routed = np.isin(month_of_row, [i for i, p in enumerate(plan) if p == "route"])
    if routed.any():
        inserted += _copy(cur, info, table.filter(pa.array(routed)))
    for i in staged:  # last: the swap's exclusive locks are short
        cur.execute("SELECT hdi_swap_in_bar_stage(%s, %s)", (symbol, starts[i]))
    # Every earlier row lay inside the bounds, so all of them went: the bookkeeping's count is exact.
    return inserted, (previous_rows if previous_rows is not None else deleted)


def _stage_months(db: Database, info: TableInfo, symbol: str, key_json: str, count: bool,
                  months: list[tuple[dt.datetime, pa.Table]]) -> tuple[int, int]:
    """Fill one stage table per month from up to LOAD_WORKERS connections, each month in a transaction of
    its own (committed stages stay invisible until the caller swaps them in). Returns (rows, replaced)."""
    from concurrent.futures import ThreadPoolExecutor

    def stage(month: dt.datetime, rows: pa.Table) -> tuple[int, int]:
        constants = _constant_columns(info, rows)
        with db.raw() as conn, conn.cursor() as cur:
            cur.execute("SET LOCAL synchronous_commit = off")
            cur.execute("SET LOCAL maintenance_work_mem = %s", (INDEX_BUILD_MEMORY,))
            cur.execute("SELECT hdi_stage_bar_month(%s, %s, %s, %s, %s)",
                        (symbol, month, key_json, count, json.dumps(constants)))
            replaced = cur.fetchone()[0] or 0
            _copy(cur, info, rows.drop_columns(list(constants)),
                  target=f"{symbol_partition_name(symbol, month)}_stage", freeze=True)
            cur.execute("SELECT hdi_index_bar_stage(%s, %s)", (symbol, month))
        return rows.num_rows, replaced

    if not months:
        return 0, 0
    order = sorted(months, key=lambda m: -m[1].num_rows)  # the biggest months first balances the workers
    workers = max(1, min(LOAD_WORKERS, len(months)))
    # A failure leaves committed stage tables behind: unattached, so no reader sees them, and the next load of
    # the month drops them first thing. Dropping them now from another connection would wait on this
    # transaction's locks.
    if workers == 1:
        results = [stage(*m) for m in order]
    else:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="hdi-stage") as pool:
            futures = [pool.submit(stage, *m) for m in order]
            results = [f.result() for f in futures]
    return sum(r[0] for r in results), sum(r[1] for r in results)


def _constant_columns(info: TableInfo, rows: pa.Table) -> dict[str, str]:
    """Text and date columns holding one value in every row: the stage table's defaults give them for less
    than sending them in each COPY row."""
    constants: dict[str, str] = {}
    if rows.num_rows == 0:
        return constants
    for name in rows.column_names:
        column = rows.column(name)
        if info.column(name).type_name not in ("text", "varchar", "bpchar", "date") or column.null_count:
            continue
        distinct = pc.unique(column.combine_chunks() if column.num_chunks != 1 else column.chunk(0))
        if len(distinct) == 1:
            value = distinct[0].as_py()
            constants[name] = value.isoformat() if isinstance(value, dt.date) else str(value)
    return constants


def symbol_partition_name(symbol: str, month: dt.datetime) -> str:
    """Python twin of the SQL hdi_bar_partition_name (kept in step by test_database)."""
    import hashlib
    import re

    slug = re.sub(r"[^A-Za-z0-9]+", "_", symbol).lower()[:24]
    return f"continuous_bars_{slug}_{hashlib.md5(symbol.encode()).hexdigest()[:6]}_p{month:%Y%m}"


def _quarantine(cur: Any, target: str, rows: pa.Table, rule_names: list[str], source: str | None,
                partition: str | None, run_id: int | None) -> None:
    from psycopg2.extras import execute_values

    records = rows.to_pylist()  # quarantined rows are the exception, so a Python object each is fine here
    values = [(target, json.dumps(rec, default=str), rule, source, partition, run_id)
              for rec, rule in zip(records, rule_names, strict=True)]
    execute_values(cur, 'INSERT INTO quarantine (target, record, rule, source, "partition", run_id) '
                        'VALUES %s',
                   values, template="(%s, %s::jsonb, %s, %s, %s, %s)", page_size=1000)


def _comparable_sql(col: PgColumn) -> str:
    """A SELECT expression (its {} the column) giving a stored key in the form _key_values gives the input's."""
    if col.type_name in ("timestamptz", "timestamp"):
        return "(extract(epoch FROM {}) * 1000000)::int8"
    if col.type_name == "date":
        return "({} - DATE '1970-01-01')::int8"
    if col.type_name == "numeric":
        return "({} * 1000000000)::int8"
    if col.type_name in ("text", "varchar", "bpchar"):
        return "{}::text"
    return "{}::int8"


def _key_values(arr: pa.ChunkedArray, col: PgColumn) -> np.ndarray:
    if col.type_name in ("text", "varchar", "bpchar"):
        return np.asarray(arr.cast(pa.string()).to_numpy(zero_copy_only=False), dtype=object)
    return _comparable(arr, col)


def _keys_of_other_partitions(cur: Any, info: TableInfo, table: pa.Table, keys: dict[str, Any],
                              partition: str, thorough: bool) -> np.ndarray:
    """Rows of `table` whose primary key is already held by a row of ANOTHER partition (which this load must
    not touch): they are duplicates to quarantine, else the COPY or the index build fails on them.
    Other partitions' rows are looked for where hdi_loaded_partitions says they can be, or, when thorough,
    everywhere in the new rows' time range."""
    from psycopg2 import sql

    span = _time_range(info, table)
    pk = info.primary_key
    if span is None or not pk or all(k in pk for k in keys):
        return np.zeros(table.num_rows, dtype=bool)  # with every partition key in the primary key, no clash
    lo, hi = span
    fixed_pk = {k: v for k, v in keys.items() if k in pk}
    if not thorough:
        cur.execute("""SELECT min(min_ts), max(max_ts) FROM hdi_loaded_partitions
                       WHERE target = %s AND "partition" <> %s AND min_ts <= %s AND max_ts >= %s
                         AND (SELECT bool_and(p.value IS NULL OR p.value = k.value)
                              FROM jsonb_each_text(%s::jsonb) k
                              LEFT JOIN jsonb_each_text("partition"::jsonb) p USING (key))""",
                    (info.name, partition, hi, lo, json.dumps({k: str(v) for k, v in fixed_pk.items()})))
        other_lo, other_hi = cur.fetchone()
        if other_lo is None:
            return np.zeros(table.num_rows, dtype=bool)
        lo, hi = max(lo, other_lo), min(hi, other_hi)
    varying = [info.column(k) for k in pk if k not in fixed_pk]
    ident = sql.Identifier
    time_col = TIME_COLUMN[info.name]
    equal = [sql.SQL("{} = %s").format(ident(k)) for k in keys]
    cur.execute(sql.SQL("SELECT {} FROM {} WHERE {} >= %s AND {} <= %s AND NOT ({})").format(
        sql.SQL(", ").join(sql.SQL(_comparable_sql(c)).format(ident(c.name)) for c in varying),
        ident(info.name), ident(time_col), ident(time_col), sql.SQL(" AND ").join(equal))
        + sql.SQL("").join(sql.SQL(" AND {} = %s").format(ident(k)) for k in fixed_pk),
        [lo, hi, *keys.values(), *fixed_pk.values()])
    stored = cur.fetchall()
    if not stored:
        return np.zeros(table.num_rows, dtype=bool)
    import pandas as pd

    micros = to_unix_micros(table.column(time_col).combine_chunks(), time_col)[0]
    near = np.flatnonzero((micros >= _micros(lo)) & (micros <= _micros(hi)))
    new_keys = pd.MultiIndex.from_arrays([_key_values(table.column(c.name).take(near), c) for c in varying])
    old_keys = pd.MultiIndex.from_tuples(stored)
    clash = np.zeros(table.num_rows, dtype=bool)
    clash[near[np.asarray(new_keys.isin(old_keys))]] = True
    return clash


def replace_partition(db: Database, table: str, key_columns_values: dict[str, Any], data: Any, *,
                      source: str | None = None, run_id: int | None = None) -> LoadResult:
    """Replace every row of `table` matching key_columns_values with `data`, in ONE transaction.

    Readers see the old partition or the new one, never a mix; a killed load leaves the old one. Rows that
    break a rule, repeat a key of the input, or hold the key of a row of another partition are quarantined."""
    import psycopg2
    from psycopg2 import sql

    started = time.monotonic()
    info = table_info(db, table)
    if not key_columns_values:
        raise HdiError(f"replace_partition({table}): key_columns_values must name the partition")
    for name in key_columns_values:
        info.column(name)
    prepared, invalid, rule_names, rules, ignored = _prepare(db, info, data, key_columns_values,
                                                             info.primary_key)
    if ignored:
        log.info("%s: ignoring input columns %s", table, ignored)
    _ensure_partitions(db, info, prepared, key_columns_values)
    partition = json.dumps(key_columns_values, default=str, sort_keys=True)
    where = sql.SQL(" AND ").join(sql.SQL("{} = %s").format(sql.Identifier(k)) for k in key_columns_values)
    params = list(key_columns_values.values())

    def attempt(thorough: bool) -> tuple[int, int, pa.Table]:
        with db.raw() as conn, conn.cursor() as cur:
            cur.execute("SET LOCAL synchronous_commit = off")  # a lost last commit on OS crash is re-run safely
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s), hashtext(%s))", (table, partition))
            clash = _keys_of_other_partitions(cur, info, prepared, key_columns_values, partition, thorough)
            valid = prepared.filter(pa.array(~clash)) if clash.any() else prepared
            new_span = _time_range(info, valid)
            cur.execute('SELECT min_ts, max_ts, row_count FROM hdi_loaded_partitions '
                        'WHERE target = %s AND "partition" = %s', (table, partition))
            previous = cur.fetchone()
            # Rows can only be where the previous load put them or where the new rows go: bound by both.
            spans = [s for s in ((previous[0], previous[1]) if previous and previous[0] else None, new_span) if s]
            bounds = (min(s[0] for s in spans), max(s[1] for s in spans) + dt.timedelta(microseconds=1)) \
                if spans else None
            if table == "continuous_bars" and db.storage_mode == "native":
                inserted, deleted = _replace_bars_native(db, cur, info, valid, key_columns_values, where,
                                                         params, bounds, previous[2] if previous else None)
            else:
                deleted = _delete(cur, table, where, params, bounds)
                inserted = _copy(cur, info, valid)
            cur.execute('DELETE FROM quarantine WHERE target = %s AND "partition" = %s', (table, partition))
            if invalid.num_rows:
                _quarantine(cur, table, invalid, rule_names, source, partition, run_id)
            clashing = prepared.filter(pa.array(clash))
            if clashing.num_rows:
                _quarantine(cur, table, clashing, ["duplicate_key"] * clashing.num_rows, source, partition,
                            run_id)
            cur.execute("""INSERT INTO hdi_loaded_partitions (target, "partition", min_ts, max_ts, row_count)
                           VALUES (%s, %s, %s, %s, %s)
                           ON CONFLICT (target, "partition") DO UPDATE SET min_ts = EXCLUDED.min_ts,
                               max_ts = EXCLUDED.max_ts, row_count = EXCLUDED.row_count, loaded_at = now()""",
                        (table, partition, *(new_span or (None, None)), inserted))
        return inserted, deleted, clashing

    try:
        inserted, deleted, clashing = attempt(thorough=False)
    except psycopg2.errors.UniqueViolation:
        # Another partition holds rows the bookkeeping does not know of (written by upsert_rows, say).
        log.info("%s %s: key clash with rows outside the recorded partitions; re-running with a full check",
                 table, partition)
        inserted, deleted, clashing = attempt(thorough=True)
    counts = dict(rules.counts)
    if clashing.num_rows:
        counts["duplicate_key"] = counts.get("duplicate_key", 0) + clashing.num_rows
    quarantined = invalid.num_rows + clashing.num_rows
    result = LoadResult(inserted, quarantined, deleted, time.monotonic() - started, counts, ignored)
    log.info("%s %s: %d rows stored, %d quarantined, %d replaced in %.2fs", table, partition, inserted,
             quarantined, deleted, result.seconds)
    return result


def upsert_rows(db: Database, table: str, data: Any, key: list[str] | None = None, *,
                source: str | None = None, run_id: int | None = None) -> UpsertResult:
    """Insert new rows and update changed ones on `key` (default: the table's primary key); rows equal to
    the stored ones are left untouched. Repeated keys in the input: the last one wins.

    On the primary key of a table keyed by time (the vendor tables) repeated keys are dropped with NumPy and
    the stored rows are compared set-wise, in one transaction: a month without a partition is COPYed into a
    fresh table attached at the end (native layout); rows timed outside the span of the stored rows of their
    instruments are COPYed; only the rest are staged and joined to count new / changed rows, and only those
    are written. Any other key, or a row written concurrently (a unique violation), takes INSERT .. ON
    CONFLICT."""
    import psycopg2

    started = time.monotonic()
    info = table_info(db, table)
    key = list(key or info.primary_key)
    for name in key:
        info.column(name)
    prepared, invalid, rule_names, rules, _ignored = _prepare(db, info, data, {}, [])
    missing_key = [k for k in key if k not in prepared.column_names]
    if missing_key:
        raise HdiError(f"{table}: input has no key column(s) {missing_key}")
    counts = None
    if _diffable(info, key, prepared):
        repeated = _repeated_keys(prepared, info, key)
        distinct = prepared.filter(pa.array(~repeated)) if repeated.any() else prepared
        try:
            inserted, updated = _upsert_by_diff(db, info, distinct, key, invalid, rule_names, source, run_id)
            counts = inserted, updated, distinct.num_rows
        except (psycopg2.errors.UniqueViolation, psycopg2.errors.InvalidObjectDefinition) as exc:
            # Rows (or a month's partition) written by another load since the check: the general path is safe.
            log.info("%s upsert: %s; retrying with INSERT .. ON CONFLICT", table, str(exc).strip().splitlines()[0])
    if counts is None:
        _ensure_partitions(db, info, prepared, {})
        counts = _upsert_on_conflict(db, info, prepared, key, invalid, rule_names, source, run_id)
    inserted, updated, distinct_rows = counts
    result = UpsertResult(inserted, updated, distinct_rows - inserted - updated, invalid.num_rows,
                          prepared.num_rows - distinct_rows, time.monotonic() - started, dict(rules.counts))
    log.info("%s upsert: %s", table, result)
    return result


def _diffable(info: TableInfo, key: list[str], rows: pa.Table) -> bool:
    """The set-wise path needs the primary key (so a key seen in NumPy is a key PostgreSQL enforces) and the
    time column in it (so the stored rows to compare lie in the input's time range)."""
    return (rows.num_rows > 0 and set(key) == set(info.primary_key) and len(key) == len(info.primary_key)
            and TIME_COLUMN.get(info.name) in key)


def _repeated_keys(table: pa.Table, info: TableInfo, key: list[str]) -> np.ndarray:
    """Rows whose key a LATER row repeats (the last occurrence stays), equal as PostgreSQL compares them.
    Equal keys share a time value, so only rows whose time repeats are sorted on the whole key."""
    n = table.num_rows
    time_col = TIME_COLUMN[info.name]
    times = _comparable(table.column(time_col), info.column(time_col))
    order = None if bool(np.all(times[1:] >= times[:-1])) else np.argsort(times, kind="stable")
    by_time = times if order is None else times[order]
    tie = by_time[1:] == by_time[:-1]
    repeated = np.zeros(n, dtype=bool)
    if not tie.any():
        return repeated
    in_tie = np.zeros(n, dtype=bool)
    in_tie[1:] |= tie
    in_tie[:-1] |= tie
    candidates = np.flatnonzero(in_tie)
    rows = candidates if order is None else order[candidates]  # ascending within each time value
    others = [k for k in key if k != time_col]
    picked = table.take(pa.array(rows))
    codes = [times[rows], *[_key_codes(picked.column(k), info.column(k)) for k in others]]
    within = np.lexsort(codes[::-1])  # stable: equal keys stay in input order
    same = np.ones(len(rows) - 1, dtype=bool)
    for code in codes:
        ordered = code[within]
        same &= ordered[1:] == ordered[:-1]
    repeated[rows[within[:-1][same]]] = True
    return repeated


def _key_codes(arr: pa.ChunkedArray, col: PgColumn) -> np.ndarray:
    """_comparable, with CHAR(n) values compared as PostgreSQL does: trailing spaces do not count."""
    if col.type_name == "bpchar":
        arr = pc.utf8_rtrim(arr.cast(pa.string()), characters=" ")
    return _comparable(arr, col)


def _upsert_by_diff(db: Database, info: TableInfo, rows: pa.Table, key: list[str], invalid: pa.Table,
                    rule_names: list[str], source: str | None, run_id: int | None) -> tuple[int, int]:
    """rows hold distinct keys; returns (inserted, updated), all in one transaction. Native layout: a month
    without a partition is filled as a fresh table and attached at the end. Rows timed outside the span of
    the stored rows (of the input's instruments) are COPYed; only the others are compared."""
    from psycopg2 import sql

    ident = sql.Identifier
    time_col = TIME_COLUMN[info.name]
    micros = to_unix_micros(rows.column(time_col).combine_chunks(), time_col)[0]
    by_month = db.storage_mode == "native" and info.name in MONTH_PARTITIONED
    if not by_month:
        _ensure_partitions(db, info, rows, {})
    inserted = updated = 0
    with db.raw() as conn, conn.cursor() as cur:
        cur.execute("SET LOCAL synchronous_commit = off")  # a lost last commit on OS crash is re-run safely
        cur.execute(f"SET LOCAL maintenance_work_mem = '{INDEX_BUILD_MEMORY}'")  # attached months' index sorts
        fresh: list[dt.datetime] = []
        partitions: list[str] = []
        month_of_row = np.zeros(rows.num_rows, dtype=np.int64)
        if by_month:
            months, month_of_row = _months_of(micros)
            stored = np.ones(len(months), dtype=bool)
            rows_per_month = np.bincount(month_of_row, minlength=len(months))
            for i, month in enumerate(months):
                if not rows_per_month[i]:
                    continue
                cur.execute("SELECT hdi_stage_vendor_month(%s, %s)", (info.name, month))
                stage = cur.fetchone()[0]
                if stage is not None:
                    stored[i] = False
                    inserted += _copy(cur, info, rows.filter(pa.array(month_of_row == i)), target=stage,
                                      freeze=True)
                    fresh.append(month)
            partitions = [f"{info.name}_p{month:%Y%m}" for month in months]
            if fresh:
                keep = stored[month_of_row]
                rows, micros, month_of_row = rows.filter(pa.array(keep)), micros[keep], month_of_row[keep]
        if rows.num_rows:
            in_span = sql.SQL("t.{t} >= %s AND t.{t} <= %s").format(t=ident(time_col))
            span_params: list[Any] = [_from_micros(int(micros.min())), _from_micros(int(micros.max()))]
            if "instrument_id" in key:  # narrows the stored rows to look at to the instruments of the input
                instruments = np.unique(rows.column("instrument_id").to_numpy()).tolist()
                in_span += sql.SQL(" AND t.instrument_id = ANY(%s)")
                span_params.append(instruments)
            if "instrument_id" in key:  # per instrument, min and max each take one index probe
                cur.execute(sql.SQL("SELECT min(lo), max(hi) FROM unnest(%s::int8[]) AS i(id) CROSS JOIN LATERAL "
                                    "(SELECT min(t.{c}) AS lo, max(t.{c}) AS hi FROM {t} t "
                                    "WHERE t.instrument_id = i.id AND t.{c} >= %s AND t.{c} <= %s) AS m").format(
                                        c=ident(time_col), t=ident(info.name)), [span_params[2], *span_params[:2]])
            else:
                cur.execute(sql.SQL("SELECT min(t.{c}), max(t.{c}) FROM {t} t WHERE ").format(
                    c=ident(time_col), t=ident(info.name)) + in_span, span_params)
            stored_lo, stored_hi = cur.fetchone()
            outside = np.ones(rows.num_rows, dtype=bool)
            if stored_lo is not None:
                outside = (micros < _micros(stored_lo)) | (micros > _micros(stored_hi))
            for i in np.unique(month_of_row[outside]):  # no stored row can share their key
                chosen = outside & (month_of_row == i)
                # Straight into the month's partition: the parent's per-row routing costs ~7%.
                inserted += _copy(cur, info, rows if chosen.all() else rows.filter(pa.array(chosen)),
                                  target=partitions[i] if partitions else None)
            if not outside.all():
                inside = rows.filter(pa.array(~outside))
                span_params[:2] = [stored_lo, stored_hi]
                new, changed = _merge_staged(cur, info, inside, key, in_span, span_params)
                inserted, updated = inserted + new, updated + changed
        for month in fresh:  # last: the parent's lock taken by ATTACH is held only to the commit
            cur.execute("SELECT hdi_attach_vendor_month(%s, %s)", (info.name, month))
        if invalid.num_rows:
            _quarantine(cur, info.name, invalid, rule_names, source, None, run_id)
    return inserted, updated


def _months_of(micros: np.ndarray) -> tuple[list[dt.datetime], np.ndarray]:
    """The UTC months spanned by the timestamps, and each timestamp's month (index into that list)."""
    first, last = _from_micros(int(micros.min())), _from_micros(int(micros.max()))
    months = [first.replace(day=1, hour=0, minute=0, second=0, microsecond=0)]
    while (months[-1] + dt.timedelta(days=32)).replace(day=1) <= last:
        months.append((months[-1] + dt.timedelta(days=32)).replace(day=1))
    edges = np.array([_micros(m) for m in months])
    return months, np.searchsorted(edges, micros, side="right") - 1


def _merge_staged(cur: Any, info: TableInfo, rows: pa.Table, key: list[str], in_span: Any,
                  span_params: list[Any]) -> tuple[int, int]:
    """Stage the rows in a temp table, count new and changed ones by one join, then write only those."""
    from psycopg2 import sql

    ident = sql.Identifier
    target = ident(info.name)
    cols = rows.column_names
    others = [c for c in cols if c not in key]
    col_list = sql.SQL(", ").join(ident(c) for c in cols)
    same_key = sql.SQL(" AND ").join(sql.SQL("t.{k} = s.{k}").format(k=ident(k)) for k in key)
    cur.execute(f"SET LOCAL work_mem = '{UPSERT_WORK_MEMORY}'")  # the join's hash table stays in memory
    cur.execute(sql.SQL("CREATE TEMP TABLE _hdi_stage ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA")
                .format(col_list, target))
    _copy(cur, TableInfo("_hdi_stage", [info.column(c) for c in rows.column_names], []), rows,
          target="_hdi_stage")
    cur.execute("ANALYZE _hdi_stage")
    differs = sql.SQL("({}) IS DISTINCT FROM ({})").format(
        sql.SQL(", ").join(sql.SQL("t.{}").format(ident(c)) for c in others),
        sql.SQL(", ").join(sql.SQL("s.{}").format(ident(c)) for c in others)) if others else sql.SQL("FALSE")
    probe = ident(key[0])
    cur.execute(sql.SQL("SELECT count(*) FILTER (WHERE t.{p} IS NULL), "
                        "count(*) FILTER (WHERE t.{p} IS NOT NULL AND {d}) "
                        "FROM _hdi_stage s LEFT JOIN {t} t ON {k} AND ").format(
                            p=probe, d=differs, t=target, k=same_key) + in_span, span_params)
    new, changed = cur.fetchone()
    if changed:
        cur.execute(sql.SQL("UPDATE {t} t SET {set} FROM _hdi_stage s WHERE {k} AND {d} AND ").format(
            t=target, set=sql.SQL(", ").join(sql.SQL("{c} = s.{c}").format(c=ident(c)) for c in others),
            k=same_key, d=differs) + in_span, span_params)
        changed = cur.rowcount
    if new:
        cur.execute(sql.SQL("INSERT INTO {t} ({c}) SELECT {sc} FROM _hdi_stage s WHERE NOT EXISTS "
                            "(SELECT 1 FROM {t} t WHERE {k} AND ").format(
                                t=target, c=col_list, k=same_key,
                                sc=sql.SQL(", ").join(sql.SQL("s.{}").format(ident(c)) for c in rows.column_names))
                    + in_span + sql.SQL(")"), span_params)
        new = cur.rowcount
    return new, changed


def _upsert_on_conflict(db: Database, info: TableInfo, prepared: pa.Table, key: list[str], invalid: pa.Table,
                        rule_names: list[str], source: str | None, run_id: int | None) -> tuple[int, int, int]:
    """Any key: stage, keep each key's last row, INSERT .. ON CONFLICT; returns (inserted, updated, distinct)."""
    from psycopg2 import sql

    table = info.name
    cols = prepared.column_names
    ident = sql.Identifier
    col_list = sql.SQL(", ").join(ident(c) for c in cols)
    key_list = sql.SQL(", ").join(ident(k) for k in key)
    others = [c for c in cols if c not in key]
    stage = prepared.append_column("_hdi_row", pa.array(np.arange(prepared.num_rows, dtype=np.int64)))
    stage_columns = [*[info.column(c) for c in cols], PgColumn("_hdi_row", "int8", True, False)]
    stage_info = TableInfo("_hdi_stage", stage_columns, [])
    with db.raw() as conn, conn.cursor() as cur:
        cur.execute("SET LOCAL synchronous_commit = off")
        cur.execute(sql.SQL("CREATE TEMP TABLE _hdi_stage ON COMMIT DROP AS "
                            "SELECT {}, 0::bigint AS _hdi_row FROM {} WITH NO DATA")
                    .format(col_list, ident(table)))
        _copy(cur, stage_info, stage, target="_hdi_stage")
        if others:
            action = sql.SQL("DO UPDATE SET {} WHERE ({}) IS DISTINCT FROM ({})").format(
                sql.SQL(", ").join(sql.SQL("{} = EXCLUDED.{}").format(ident(c), ident(c)) for c in others),
                sql.SQL(", ").join(sql.SQL("t.{}").format(ident(c)) for c in others),
                sql.SQL(", ").join(sql.SQL("EXCLUDED.{}").format(ident(c)) for c in others))
        else:
            action = sql.SQL("DO NOTHING")
        # Every part of one WITH sees the same snapshot: `existing` counts matches before the insert.
        cur.execute(sql.SQL("""
            WITH src AS (SELECT DISTINCT ON ({key}) {cols} FROM _hdi_stage ORDER BY {key}, _hdi_row DESC),
                 existing AS (SELECT count(*) AS n FROM src JOIN {table} USING ({key})),
                 up AS (INSERT INTO {table} AS t ({cols}) SELECT {cols} FROM src
                        ON CONFLICT ({key}) {action} RETURNING 1)
            SELECT (SELECT count(*) FROM src), (SELECT n FROM existing), (SELECT count(*) FROM up)
            """).format(key=key_list, cols=col_list, table=ident(table), action=action))
        distinct, existing, written = cur.fetchone()
        inserted = distinct - existing
        if invalid.num_rows:
            _quarantine(cur, table, invalid, rule_names, source, None, run_id)
    return inserted, written - inserted, distinct


# -- data_ingest_runs ------------------------------------------------------------------------------------
def start_ingest_run(db: Database, *, vendor: str = "databento", dataset: str | None = None,
                     file_name: str | None = None, file_sha256: str | None = None,
                     target_table: str | None = None) -> int:
    """Open an audit row with status 'running'; returns its id."""
    with db.raw() as conn, conn.cursor() as cur:
        cur.execute("""INSERT INTO data_ingest_runs (vendor, dataset, file_name, file_sha256, target_table)
                       VALUES (%s, %s, %s, %s, %s) RETURNING id""",
                    (vendor, dataset, file_name, file_sha256, target_table))
        return int(cur.fetchone()[0])


def finish_ingest_run(db: Database, run_id: int, *, status: str = "success", row_count: int | None = None,
                      inserted_count: int | None = None, updated_count: int | None = None,
                      unchanged_count: int | None = None, quarantined_count: int | None = None,
                      min_ts: dt.datetime | None = None, max_ts: dt.datetime | None = None,
                      error: str | None = None) -> None:
    """Close an audit row as 'success' or 'failed' (the error text is redacted and truncated)."""
    if status not in ("success", "failed"):
        raise HdiError(f"finish_ingest_run: status must be success or failed, not {status!r}")
    with db.raw() as conn, conn.cursor() as cur:
        cur.execute("""UPDATE data_ingest_runs SET status = %s, finished_at = now(),
                           row_count = coalesce(%s, row_count), inserted_count = coalesce(%s, inserted_count),
                           updated_count = coalesce(%s, updated_count),
                           unchanged_count = coalesce(%s, unchanged_count),
                           quarantined_count = coalesce(%s, quarantined_count),
                           min_ts = coalesce(%s, min_ts), max_ts = coalesce(%s, max_ts), error = %s
                       WHERE id = %s""",
                    (status, row_count, inserted_count, updated_count, unchanged_count, quarantined_count,
                     min_ts, max_ts, redact(error)[:4000] if error else None, run_id))


@dataclass
class IngestRun:
    """Counts collected while a run is open; written when the run finishes."""

    id: int
    counts: dict[str, Any] = field(default_factory=dict)

    def add(self, result: LoadResult | UpsertResult, row_count: int | None = None) -> None:
        c = self.counts
        seen = (result.inserted + result.quarantined + getattr(result, "updated", 0)
                + getattr(result, "unchanged", 0))
        c["row_count"] = c.get("row_count", 0) + (row_count if row_count is not None else seen)
        c["inserted_count"] = c.get("inserted_count", 0) + result.inserted
        c["updated_count"] = c.get("updated_count", 0) + getattr(result, "updated", 0)
        c["unchanged_count"] = c.get("unchanged_count", 0) + getattr(result, "unchanged", 0)
        c["quarantined_count"] = c.get("quarantined_count", 0) + result.quarantined


@contextmanager
def record_ingest_run(db: Database, **kwargs: Any) -> Iterator[IngestRun]:
    """`with db.record_ingest_run(dataset=..., file_name=...) as run:` -> success, or failed + error."""
    run = IngestRun(start_ingest_run(db, **kwargs))
    try:
        yield run
    except BaseException as exc:
        finish_ingest_run(db, run.id, status="failed", error=f"{type(exc).__name__}: {exc}", **run.counts)
        raise
    finish_ingest_run(db, run.id, status="success", **run.counts)
