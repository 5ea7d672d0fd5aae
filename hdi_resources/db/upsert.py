"""upsert_rows: insert new rows and update changed ones on a key, leaving rows equal to the stored ones untouched.

Two paths: set-wise by diff on the primary key of a table keyed by time (the vendor tables), and
INSERT .. ON CONFLICT for any other key or when another load wrote the same rows meanwhile."""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from hdi_core.errors import HdiError

from .binary import PgColumn, to_unix_micros
from .catalog import refresh_after_load
from .compression import allow_dml_on_compressed, compress_upserted_history
from .copy import copy_rows
from .prepare import prepare
from .quarantine import quarantine_rows
from .tables import (
    INDEX_BUILD_MEMORY,
    MONTH_PARTITIONED,
    TIME_COLUMN,
    TableInfo,
    as_table,
    comparable,
    datetime_micros,
    ensure_partitions,
    from_micros,
    key_codes,
    table_info,
)

if TYPE_CHECKING:
    from .core import Database

log = logging.getLogger(__name__)

EXACT_TIME = "ts_event_ns"  # a vendor table's exact-nanosecond ts_event (migration 0010)
UPSERT_WORK_MEMORY = "256MB"  # work_mem of an upsert's join: a 2M-row input's hash table in memory


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
    prepared, invalid, rule_names, rules, _ignored = prepare(info, _with_exact_time(info, as_table(data)), {}, [])
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
        ensure_partitions(db, info, prepared, {})
        counts = _upsert_on_conflict(db, info, prepared, key, invalid, rule_names, source, run_id)
    inserted, updated, distinct_rows = counts
    result = UpsertResult(inserted, updated, distinct_rows - inserted - updated, invalid.num_rows,
                          prepared.num_rows - distinct_rows, time.monotonic() - started, dict(rules.counts))
    log.info("%s upsert: %s", table, result)
    _compress_history(db, info, prepared)
    refresh_after_load(db, table, prepared)  # readers resolve symbols and ranges from the catalogue
    return result


def _compress_history(db: Database, info: TableInfo, rows: pa.Table) -> None:
    """TimescaleDB: the upsert has committed; compress the closed (past) chunks its rows went to."""
    time_col = TIME_COLUMN.get(info.name)
    if db.storage_mode != "timescaledb" or not rows.num_rows or time_col not in rows.column_names:
        return
    micros = to_unix_micros(rows.column(time_col).combine_chunks(), time_col)[0]
    compress_upserted_history(db, info.name, from_micros(int(micros.min())), from_micros(int(micros.max())))


def _with_exact_time(info: TableInfo, table: pa.Table) -> pa.Table:
    """Rows given without `ts_event_ns` (not from the vendor mapping) get it from `ts_event`: exact when that
    carries ns (DBN integers, timestamp[ns]), else its microseconds; the column is part of the vendor keys."""
    if (EXACT_TIME not in {c.name for c in info.columns} or EXACT_TIME in table.column_names
            or "ts_event" not in table.column_names):
        return table
    col = table.column("ts_event")
    if pa.types.is_timestamp(col.type):
        ns = col.cast(pa.timestamp("ns", tz=col.type.tz)).cast(pa.int64())
    elif pa.types.is_integer(col.type):
        ns = col.cast(pa.int64(), safe=False)  # UNDEF_TIMESTAMP: ts_event itself is NULL and quarantined
    else:
        return table  # prepare names the column it cannot store
    return table.append_column(EXACT_TIME, ns)


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
    times = comparable(table.column(time_col), info.column(time_col))
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
    codes = [times[rows], *[key_codes(picked.column(k), info.column(k)) for k in others]]
    within = np.lexsort(codes[::-1])  # stable: equal keys stay in input order
    same = np.ones(len(rows) - 1, dtype=bool)
    for code in codes:
        ordered = code[within]
        same &= ordered[1:] == ordered[:-1]
    repeated[rows[within[:-1][same]]] = True
    return repeated



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
        ensure_partitions(db, info, rows, {})
    inserted = updated = 0
    with db.raw() as conn, conn.cursor() as cur:
        cur.execute("SET LOCAL synchronous_commit = off")  # a lost last commit on OS crash is re-run safely
        allow_dml_on_compressed(db, cur)  # history is compressed after each upsert; a reload rewrites it
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
                cur.execute("SELECT hdi.hdi_stage_vendor_month(%s, %s)", (info.name, month))
                stage = cur.fetchone()[0]
                if stage is not None:
                    stored[i] = False
                    inserted += copy_rows(cur, info, rows.filter(pa.array(month_of_row == i)), target=stage,
                                      freeze=True)
                    fresh.append(month)
            partitions = [f"{info.name}_p{month:%Y%m}" for month in months]
            if fresh:
                keep = stored[month_of_row]
                rows, micros, month_of_row = rows.filter(pa.array(keep)), micros[keep], month_of_row[keep]
        if rows.num_rows:
            in_span = sql.SQL("t.{t} >= %s AND t.{t} <= %s").format(t=ident(time_col))
            span_params: list[Any] = [from_micros(int(micros.min())), from_micros(int(micros.max()))]
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
                outside = (micros < datetime_micros(stored_lo)) | (micros > datetime_micros(stored_hi))
            for i in np.unique(month_of_row[outside]):  # no stored row can share their key
                chosen = outside & (month_of_row == i)
                # Straight into the month's partition: the parent's per-row routing costs ~7%.
                inserted += copy_rows(cur, info, rows if chosen.all() else rows.filter(pa.array(chosen)),
                                  target=partitions[i] if partitions else None)
            if not outside.all():
                inside = rows.filter(pa.array(~outside))
                span_params[:2] = [stored_lo, stored_hi]
                new, changed = _merge_staged(cur, info, inside, key, in_span, span_params)
                inserted, updated = inserted + new, updated + changed
        for month in fresh:  # last: the parent's lock taken by ATTACH is held only to the commit
            cur.execute("SELECT hdi.hdi_attach_vendor_month(%s, %s)", (info.name, month))
        if invalid.num_rows:
            quarantine_rows(cur, info.name, invalid, rule_names, source=source, partition=None, run_id=run_id)
    return inserted, updated


def _months_of(micros: np.ndarray) -> tuple[list[dt.datetime], np.ndarray]:
    """The UTC months spanned by the timestamps, and each timestamp's month (index into that list)."""
    first, last = from_micros(int(micros.min())), from_micros(int(micros.max()))
    months = [first.replace(day=1, hour=0, minute=0, second=0, microsecond=0)]
    while (months[-1] + dt.timedelta(days=32)).replace(day=1) <= last:
        months.append((months[-1] + dt.timedelta(days=32)).replace(day=1))
    edges = np.array([datetime_micros(m) for m in months])
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
    copy_rows(cur, TableInfo("_hdi_stage", [info.column(c) for c in rows.column_names], []), rows,
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
        allow_dml_on_compressed(db, cur)
        cur.execute(sql.SQL("CREATE TEMP TABLE _hdi_stage ON COMMIT DROP AS "
                            "SELECT {}, 0::bigint AS _hdi_row FROM {} WITH NO DATA")
                    .format(col_list, ident(table)))
        copy_rows(cur, stage_info, stage, target="_hdi_stage")
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
            quarantine_rows(cur, table, invalid, rule_names, source=source, partition=None, run_id=run_id)
    return inserted, written - inserted, distinct


