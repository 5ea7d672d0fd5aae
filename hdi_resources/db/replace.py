"""replace_partition: replace every row of one logical partition (a window of continuous bars, say) in ONE
transaction. Bars in the native layout are loaded month by month: a month mostly replaced is rebuilt as a stage
table by worker connections and swapped in at the end; any other month is DELETEd and COPYed in place."""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hdi_core.errors import HdiError

from .binary import to_unix_micros
from .catalog import refresh_after_load
from .copy import copy_rows
from .prepare import prepare
from .quarantine import clear_quarantine, quarantine_rows
from .tables import (
    INDEX_BUILD_MEMORY,
    TIME_COLUMN,
    Span,
    TableInfo,
    comparable_sql,
    datetime_micros,
    ensure_partitions,
    from_micros,
    key_values,
    table_info,
    time_range,
)

if TYPE_CHECKING:
    from .core import Database

log = logging.getLogger(__name__)

SWAP_MIN_ROWS = 50_000  # below this a month's reload goes DELETE + COPY; above, rebuild-and-swap
LOAD_WORKERS = 2  # connections filling month stage tables at once (each month wholly on one)


@dataclass
class LoadResult:
    """What replace_partition did: rows stored, quarantined (by rule), and old rows removed."""

    inserted: int
    quarantined: int
    deleted: int = 0
    seconds: float = 0.0
    rules: dict[str, int] = field(default_factory=dict)
    ignored_columns: list[str] = field(default_factory=list)


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
    edges = np.array([datetime_micros(m) for m in [*starts, after_last]])
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
        run_hi = min(hi, from_micros(int(edges[j + 1])))
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
        inserted += copy_rows(cur, info, table.filter(pa.array(routed)))
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
            copy_rows(cur, info, rows.drop_columns(list(constants)),
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



def _keys_of_other_partitions(cur: Any, info: TableInfo, table: pa.Table, keys: dict[str, Any],
                              partition: str, thorough: bool) -> np.ndarray:
    """Rows of `table` whose primary key is already held by a row of ANOTHER partition (which this load must
    not touch): they are duplicates to quarantine, else the COPY or the index build fails on them.
    Other partitions' rows are looked for where hdi_loaded_partitions says they can be, or, when thorough,
    everywhere in the new rows' time range."""
    from psycopg2 import sql

    span = time_range(info, table)
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
        sql.SQL(", ").join(sql.SQL(comparable_sql(c)).format(ident(c.name)) for c in varying),
        ident(info.name), ident(time_col), ident(time_col), sql.SQL(" AND ").join(equal))
        + sql.SQL("").join(sql.SQL(" AND {} = %s").format(ident(k)) for k in fixed_pk),
        [lo, hi, *keys.values(), *fixed_pk.values()])
    stored = cur.fetchall()
    if not stored:
        return np.zeros(table.num_rows, dtype=bool)
    import pandas as pd

    micros = to_unix_micros(table.column(time_col).combine_chunks(), time_col)[0]
    near = np.flatnonzero((micros >= datetime_micros(lo)) & (micros <= datetime_micros(hi)))
    new_keys = pd.MultiIndex.from_arrays([key_values(table.column(c.name).take(near), c) for c in varying])
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
    prepared, invalid, rule_names, rules, ignored = prepare(info, data, key_columns_values, info.primary_key)
    if ignored:
        log.info("%s: ignoring input columns %s", table, ignored)
    ensure_partitions(db, info, prepared, key_columns_values)
    partition = json.dumps(key_columns_values, default=str, sort_keys=True)
    where = sql.SQL(" AND ").join(sql.SQL("{} = %s").format(sql.Identifier(k)) for k in key_columns_values)
    params = list(key_columns_values.values())

    def attempt(thorough: bool) -> tuple[int, int, pa.Table]:
        with db.raw() as conn, conn.cursor() as cur:
            cur.execute("SET LOCAL synchronous_commit = off")  # a lost last commit on OS crash is re-run safely
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s), hashtext(%s))", (table, partition))
            clash = _keys_of_other_partitions(cur, info, prepared, key_columns_values, partition, thorough)
            valid = prepared.filter(pa.array(~clash)) if clash.any() else prepared
            new_span = time_range(info, valid)
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
                inserted = copy_rows(cur, info, valid)
            clear_quarantine(cur, table, partition)
            if invalid.num_rows:
                quarantine_rows(cur, table, invalid, rule_names, source=source, partition=partition, run_id=run_id)
            clashing = prepared.filter(pa.array(clash))
            if clashing.num_rows:
                quarantine_rows(cur, table, clashing, ["duplicate_key"] * clashing.num_rows, source=source,
                                partition=partition, run_id=run_id)
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
    refresh_after_load(db, table, key_columns_values)  # readers resolve symbols and ranges from the catalogue
    return result


