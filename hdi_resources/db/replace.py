"""replace_partition: replace every row of one logical partition (a window of continuous bars, say) in ONE
transaction. Bars in the native layout are loaded month by month: a month mostly replaced is rebuilt as a stage
table by worker connections and swapped in at the end; any other month is DELETEd and COPYed in place.

Concurrent loads never hang: a load takes its locks on its own connection in one global order (its partition's
advisory lock, its months' advisory locks ascending, then table locks; a load that will swap an existing month
also takes its symbol's swap lock before any table lock, as DETACH needs ACCESS EXCLUSIVE on the symbol's
table), its worker connections wait for nothing the load or another load's workers hold, and every lock wait
is bounded by LOCK_TIMEOUT_S: running out of it (or a deadlock PostgreSQL detects) raises LoadBusyError, which
changed nothing and is safe to retry."""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from hdi_core.errors import HdiError, LoadBusyError

from .binary import to_unix_micros
from .catalog import record_bars_load, refresh_after_load
from .chunks import copy_bars_timescale, lock_slices, whole_slices
from .copy import copy_rows
from .prepare import prepare
from .quarantine import clear_quarantine, quarantine_rows
from .stage import constant_columns, load_session, run_workers
from .tables import (
    TIME_COLUMN,
    Span,
    TableInfo,
    comparable_sql,
    datetime_micros,
    ensure_partitions,
    from_micros,
    key_values,
    symbol_partition_name,
    table_info,
    time_range,
)

if TYPE_CHECKING:
    from .core import Database

log = logging.getLogger(__name__)

SWAP_MIN_ROWS = 50_000  # below this a month's reload goes DELETE + COPY; above, rebuild-and-swap
LOAD_WORKERS = 2  # connections filling month stage tables at once (each month wholly on one)
LOCK_TIMEOUT_S = 120.0  # longest wait for any lock of a load (another load of the month, say) before LoadBusyError


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


@dataclass
class _Waiting:
    """What a load is waiting for right now, named by LoadBusyError when the wait runs out."""

    what: str = "its partition's lock"


def _busy(table: str, who: str, what: str, exc: BaseException) -> LoadBusyError:
    """The one-line, retryable error for a wait that ran out (a lock, or a free pooled connection) or for a
    deadlock PostgreSQL broke."""
    import psycopg2.errors

    if isinstance(exc, psycopg2.errors.DeadlockDetected):
        how = f"deadlocked with another load while waiting for {what}"
    elif isinstance(exc, psycopg2.errors.LockNotAvailable):
        how = f"gave up after waiting {LOCK_TIMEOUT_S:g}s for {what} (another load or a reader holds it)"
    else:
        how = f"gave up waiting for {what}"
    return LoadBusyError(f"{table} {who}: {how}; the load changed nothing and is safe to retry")


def _next_month(month: dt.datetime) -> dt.datetime:
    return (month.replace(day=1) + dt.timedelta(days=32)).replace(day=1)


def _lock_months(cur: Any, symbol: str, lo: dt.datetime, last: dt.datetime, waiting: _Waiting) -> None:
    """The advisory lock of every month of [lo, last], ascending (the global order), one month per statement
    so a wait that runs out names its month. Both backends: no two loads write one month at once."""
    month = lo.astimezone(dt.UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    while month <= last:
        waiting.what = f"month {month:%Y-%m}"
        cur.execute("SELECT pg_advisory_xact_lock(hashtext('hdi_bar_month'), hashtext(%s))",
                    (symbol_partition_name(symbol, month),))
        month = _next_month(month)


def _month_plan(cur: Any, symbol: str, table: pa.Table, lo: dt.datetime, last: dt.datetime
                ) -> tuple[list[tuple[dt.datetime, int | None]], np.ndarray, list[str]]:
    """SHARE-lock the symbol's existing months of [lo, last] (their advisory locks are held already) and plan
    each: "fresh" (no partition yet), "swap" (mostly replaced: rebuilt as a stage), "route" (DELETE + COPY)
    or "skip". Returns the months with their estimated rows, each new row's month index, and the plan."""
    cur.execute("SELECT month_start, existing_rows FROM hdi.hdi_lock_bar_months(%s, %s, %s)", (symbol, lo, last))
    months = cur.fetchall()
    starts = [m[0] for m in months]
    edges = np.array([datetime_micros(m) for m in [*starts, _next_month(starts[-1])]])
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
    return months, month_of_row, plan


def _replace_bars_native(db: Database, cur: Any, info: TableInfo, table: pa.Table, keys: dict[str, Any],
                         where: Any, params: list[Any], bounds: Span | None, previous_rows: int | None,
                         waiting: _Waiting) -> tuple[int, int]:
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
    waiting.what = "the months' tables"
    months, month_of_row, plan = _month_plan(cur, symbol, table, lo, hi - dt.timedelta(microseconds=1))
    starts = [m[0] for m in months]
    edges = np.array([datetime_micros(m) for m in [*starts, _next_month(starts[-1])]])
    for i, p in enumerate(plan):  # a stage a killed load left; a staged month's worker drops its own
        if p not in ("fresh", "swap"):
            waiting.what = f"month {starts[i]:%Y-%m}'s leftover stage"
            cur.execute("SELECT hdi.hdi_drop_bar_stage(%s, %s)", (symbol, starts[i]))
    waiting.what = "the rows it replaces"
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
    waiting.what = "the rows it replaces"
    deleted += replaced
    routed = np.isin(month_of_row, [i for i, p in enumerate(plan) if p == "route"])
    if routed.any():
        inserted += copy_rows(cur, info, table.filter(pa.array(routed)))
    for i in staged:  # last: the swap's exclusive locks are short
        waiting.what = f"month {starts[i]:%Y-%m}'s swap"
        cur.execute("SELECT hdi.hdi_swap_in_bar_stage(%s, %s)", (symbol, starts[i]))
    # Every earlier row lay inside the bounds, so all of them went: the bookkeeping's count is exact.
    return inserted, (previous_rows if previous_rows is not None else deleted)


def _stage_months(db: Database, info: TableInfo, symbol: str, key_json: str, count: bool,
                  months: list[tuple[dt.datetime, pa.Table]]) -> tuple[int, int]:
    """Fill one stage table per month from up to LOAD_WORKERS connections, each month in a transaction of
    its own (committed stages stay invisible until the caller swaps them in). Returns (rows, replaced).
    A worker waits for no lock its load holds (the load's months are its own, its swap comes later)."""

    def job(month: dt.datetime, rows: pa.Table) -> Callable[[Any], tuple[int, int]]:
        def fill(cur: Any) -> tuple[int, int]:
            constants = constant_columns(info, rows)
            # The worker holds no lock the load needs: its own transaction may drop a killed load's stage.
            cur.execute("SELECT hdi.hdi_drop_bar_stage(%s, %s)", (symbol, month))
            cur.execute("SELECT hdi.hdi_stage_bar_month(%s, %s, %s, %s, %s)",
                        (symbol, month, key_json, count, json.dumps(constants)))
            replaced = cur.fetchone()[0] or 0
            copy_rows(cur, info, rows.drop_columns(list(constants)),
                      target=f"{symbol_partition_name(symbol, month)}_stage", freeze=True)
            cur.execute("SELECT hdi.hdi_index_bar_stage(%s, %s)", (symbol, month))
            return rows.num_rows, replaced
        return fill

    order = sorted(months, key=lambda m: -m[1].num_rows)  # the biggest months first balances the workers
    # A failure leaves committed stage tables behind: unattached, so no reader sees them, and the next load of
    # the month drops them (from the connection that holds the month's lock, never from a second one).
    results = run_workers(db, [(f"month {m:%Y-%m}'s stage table", job(m, rows)) for m, rows in order],
                          LOAD_WORKERS, LOCK_TIMEOUT_S, lambda what, exc: _busy(info.name, symbol, what, exc))
    return sum(r[0] for r in results), sum(r[1] for r in results)


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
    from sqlalchemy import exc as sa_exc

    started = time.monotonic()
    info = table_info(db, table)
    if not key_columns_values:
        raise HdiError(f"replace_partition({table}): key_columns_values must name the partition")
    for name in key_columns_values:
        info.column(name)
    prepared, invalid, rule_names, rules, ignored = prepare(info, data, key_columns_values, info.primary_key)
    if ignored:
        log.info("%s: ignoring input columns %s", table, ignored)
    partition = json.dumps(key_columns_values, default=str, sort_keys=True)
    where = sql.SQL(" AND ").join(sql.SQL("{} = %s").format(sql.Identifier(k)) for k in key_columns_values)
    params = list(key_columns_values.values())

    symbol = str(key_columns_values.get("continuous_symbol", partition))
    waiting = _Waiting()

    def attempt(thorough: bool) -> tuple[int, int, pa.Table]:
        with db.raw() as conn, conn.cursor() as cur:
            load_session(cur, LOCK_TIMEOUT_S, timescale=db.storage_mode == "timescaledb")
            cur.execute("SET LOCAL synchronous_commit = off")  # a lost last commit on OS crash is re-run safely
            waiting.what = "its partition's lock"
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s), hashtext(%s))", (table, partition))
            cur.execute('SELECT min_ts, max_ts, row_count FROM hdi_loaded_partitions '
                        'WHERE target = %s AND "partition" = %s', (table, partition))
            previous = cur.fetchone()
            previous_span = (previous[0], previous[1]) if previous and previous[0] else None
            native_bars = table == "continuous_bars" and db.storage_mode == "native"
            timescale_bars = table == "continuous_bars" and db.storage_mode == "timescaledb"
            # Every lock before any table is read: the months any row can be in, then (when an existing month
            # may be swapped, whose DETACH locks the symbol's table exclusively) the symbol's swap lock.
            lock_spans = [s for s in (previous_span, time_range(info, prepared)) if s]
            if table == "continuous_bars" and lock_spans:
                lock_lo, lock_last = min(s[0] for s in lock_spans), max(s[1] for s in lock_spans)
                if timescale_bars:  # it may create the chunks of these slices: their months are its own too
                    lock_lo, lock_last = whole_slices(cur, lock_lo, lock_last)
                _lock_months(cur, symbol, lock_lo, lock_last, waiting)
                if timescale_bars:  # a slice's chunk and stages are every symbol's: one load at a time
                    lock_slices(cur, lock_lo, lock_last, waiting)
                if native_bars:
                    waiting.what = "the months' tables"
                    _, _, plan = _month_plan(cur, symbol, prepared, lock_lo, lock_last)
                    if any(p == "swap" for p in plan):
                        waiting.what = "the symbol's swap lock"
                        cur.execute("SELECT pg_advisory_xact_lock(hashtext('hdi_bar_swap'), hashtext(%s))",
                                    (symbol,))
            waiting.what = "rows of other partitions"
            clash = _keys_of_other_partitions(cur, info, prepared, key_columns_values, partition, thorough)
            valid = prepared.filter(pa.array(~clash)) if clash.any() else prepared
            new_span = time_range(info, valid)
            # Rows can only be where the previous load put them or where the new rows go: bound by both.
            spans = [s for s in (previous_span, new_span) if s]
            bounds = (min(s[0] for s in spans), max(s[1] for s in spans) + dt.timedelta(microseconds=1)) \
                if spans else None
            if native_bars:
                inserted, deleted = _replace_bars_native(db, cur, info, valid, key_columns_values, where,
                                                         params, bounds, previous[2] if previous else None,
                                                         waiting)
            else:
                waiting.what = "the rows it replaces"
                deleted = _delete(cur, table, where, params, bounds)
                if timescale_bars and bounds is not None:
                    inserted = copy_bars_timescale(db, cur, info, valid, bounds, LOAD_WORKERS, LOCK_TIMEOUT_S,
                                                   lambda what, exc: _busy(table, symbol, what, exc))
                else:
                    inserted = copy_rows(cur, info, valid)
            waiting.what = "its bookkeeping rows"
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
            if table == "continuous_bars":  # counted from the rows in hand, committed with them
                waiting.what = "the symbol catalogue's lock"
                record_bars_load(cur, key_columns_values, valid)
        return inserted, deleted, clashing

    try:
        waiting.what = "the symbol's partition table"
        ensure_partitions(db, info, prepared, key_columns_values, lock_timeout_s=LOCK_TIMEOUT_S)
        try:
            inserted, deleted, clashing = attempt(thorough=False)
        except psycopg2.errors.UniqueViolation:
            # Another partition holds rows the bookkeeping does not know of (written by upsert_rows, say).
            log.info("%s %s: key clash with rows outside the recorded partitions; re-running with a full check",
                     table, partition)
            inserted, deleted, clashing = attempt(thorough=True)
    except (psycopg2.errors.LockNotAvailable, psycopg2.errors.DeadlockDetected) as exc:
        raise _busy(table, symbol, waiting.what, exc) from None
    except sa_exc.TimeoutError as exc:  # every pooled connection stayed busy: as retryable as a lock
        raise _busy(table, symbol, "a free database connection", exc) from None
    counts = dict(rules.counts)
    if clashing.num_rows:
        counts["duplicate_key"] = counts.get("duplicate_key", 0) + clashing.num_rows
    quarantined = invalid.num_rows + clashing.num_rows
    result = LoadResult(inserted, quarantined, deleted, time.monotonic() - started, counts, ignored)
    log.info("%s %s: %d rows stored, %d quarantined, %d replaced in %.2fs", table, partition, inserted,
             quarantined, deleted, result.seconds)
    if table != "continuous_bars":  # (bars: recorded in the load's transaction)
        refresh_after_load(db, table, key_columns_values)  # readers resolve symbols and ranges from the catalogue
    return result


