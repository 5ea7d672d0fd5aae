"""TimescaleDB bar loads: the new rows of each chunk slice (7 days by default) that has no chunk yet are
COPYed FREEZE into a plain stage table by worker connections (each its own transaction, no index upkeep row
by row: the primary key is built by one sort), and the load attaches every stage as its slice's chunk at the
end of its own transaction, so readers see all new rows or none. The other rows go through the hypertable.
A stage a killed load left is never attached; the next load of its slice drops it."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from .binary import to_unix_micros
from .copy import copy_rows
from .stage import constant_columns, run_workers
from .tables import Span, TableInfo, datetime_micros, from_micros

if TYPE_CHECKING:
    from .core import Database

FRESH_CHUNK_MIN_ROWS = 20_000  # fewer new rows in a chunk-less slice go through the hypertable


def chunk_interval_micros(cur: Any) -> int:
    """The length of continuous_bars' chunks in microseconds (slices are aligned to multiples of it)."""
    cur.execute("""SELECT (extract(epoch FROM time_interval) * 1000000)::int8
                   FROM timescaledb_information.dimensions
                   WHERE hypertable_name = 'continuous_bars' AND column_name = 'ts'""")
    row = cur.fetchone()
    return int(row[0]) if row and row[0] else 7 * 86_400_000_000


def whole_slices(cur: Any, lo: dt.datetime, last: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """[lo, last] widened to whole chunk slices: the range a load must hold the months of, since it may create
    or attach the chunks of those slices."""
    interval = chunk_interval_micros(cur)
    first = datetime_micros(lo) // interval * interval
    end = (datetime_micros(last) // interval + 1) * interval
    return from_micros(first), from_micros(end - 1)


def copy_bars_timescale(db: Database, cur: Any, info: TableInfo, table: pa.Table, bounds: Span, workers: int,
                        lock_timeout_s: float, busy: Callable[[str, BaseException], Exception]) -> int:
    """COPY the rows into continuous_bars (TimescaleDB) within bounds [lo, hi); returns how many. Chunk-less
    slices holding at least FRESH_CHUNK_MIN_ROWS of them are staged by up to `workers` connections and attached
    last (their lock on the hypertable is short); stages a killed load left in the range are dropped."""
    interval = chunk_interval_micros(cur)
    slice_of_row = (to_unix_micros(table.column("ts").combine_chunks(), "ts")[0] // interval if table.num_rows
                    else np.empty(0, dtype=np.int64))
    ids, counts = np.unique(slice_of_row, return_counts=True)
    fresh: list[int] = []
    cur.execute("SELECT to_regprocedure('attach_chunk(regclass, regclass, jsonb)') IS NOT NULL")
    if len(ids) and cur.fetchone()[0]:  # attach_chunk is recent: without it, COPY it all
        cur.execute("""SELECT (extract(epoch FROM range_start) * 1000000)::int8
                       FROM timescaledb_information.chunks
                       WHERE hypertable_name = 'continuous_bars' AND range_start >= %s AND range_start <= %s""",
                    (from_micros(int(ids[0]) * interval), from_micros(int(ids[-1]) * interval)))
        existing = {start // interval for (start,) in cur.fetchall()}
        fresh = [int(s) for s, n in zip(ids, counts, strict=True) if n >= FRESH_CHUNK_MIN_ROWS and s not in existing]
    lo, hi = (datetime_micros(b) // interval for b in bounds)
    cur.execute("SELECT hdi.hdi_drop_bar_chunk_stages(%s, %s, %s::timestamptz[])",
                (from_micros(lo * interval), from_micros((hi + 1) * interval),
                 [from_micros(s * interval) for s in fresh]))
    in_order = bool(np.all(slice_of_row[1:] >= slice_of_row[:-1]))

    def job(s: int) -> Callable[[Any], int]:
        def fill(wcur: Any) -> int:
            if in_order:  # rows in time order (the usual case): each slice is a zero-copy slice of the table
                first, end = np.searchsorted(slice_of_row, [s, s + 1])
                rows = table.slice(int(first), int(end - first))
            else:
                rows = table.filter(pa.array(slice_of_row == s))
            constants = constant_columns(info, rows)
            wcur.execute("SELECT hdi.hdi_stage_bar_chunk(%s, %s)", (from_micros(s * interval), json.dumps(constants)))
            stage = wcur.fetchone()[0]
            copy_rows(wcur, info, rows.drop_columns(list(constants)), target=stage, freeze=True)
            wcur.execute("SELECT hdi.hdi_index_bar_chunk_stage(%s)", (from_micros(s * interval),))
            return rows.num_rows
        return fill

    inserted = sum(run_workers(db, [(f"chunk {from_micros(s * interval):%Y-%m-%d}'s stage table", job(s))
                                    for s in fresh], workers, lock_timeout_s, busy))
    routed = ~np.isin(slice_of_row, fresh)
    if routed.any():
        inserted += copy_rows(cur, info, table.filter(pa.array(routed)) if not routed.all() else table)
    for s in fresh:
        cur.execute("SELECT hdi.hdi_attach_bar_chunk(%s, %s)",
                    (from_micros(s * interval), from_micros((s + 1) * interval)))
    return inserted
