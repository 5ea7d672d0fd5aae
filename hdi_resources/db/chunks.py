"""TimescaleDB bar loads: the new rows of each chunk slice (7 days by default) that has no chunk yet are
COPYed FREEZE into a plain table created in the load's own transaction, indexed by one sort and attached as
the slice's chunk at the end of that transaction (row-by-row index maintenance and the hypertable's routing
are what make a plain COPY into the hypertable slow); the other rows go through the hypertable. A killed load
rolls all of it back: nothing is left behind."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pyarrow as pa

from .binary import to_unix_micros
from .copy import copy_rows
from .tables import INDEX_BUILD_MEMORY, TableInfo, from_micros

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
    from .tables import datetime_micros

    interval = chunk_interval_micros(cur)
    first = datetime_micros(lo) // interval * interval
    end = (datetime_micros(last) // interval + 1) * interval
    return from_micros(first), from_micros(end - 1)


def copy_bars_timescale(cur: Any, info: TableInfo, table: pa.Table) -> int:
    """COPY the rows into continuous_bars (TimescaleDB); returns how many. Chunk-less slices holding at least
    FRESH_CHUNK_MIN_ROWS of them become new chunks, attached last (their lock on the hypertable is short)."""
    if table.num_rows == 0:
        return 0
    interval = chunk_interval_micros(cur)
    slice_of_row = to_unix_micros(table.column("ts").combine_chunks(), "ts")[0] // interval
    ids, counts = np.unique(slice_of_row, return_counts=True)
    cur.execute("""SELECT (extract(epoch FROM range_start) * 1000000)::int8 FROM timescaledb_information.chunks
                   WHERE hypertable_name = 'continuous_bars' AND range_start >= %s AND range_start <= %s""",
                (from_micros(int(ids[0]) * interval), from_micros(int(ids[-1]) * interval)))
    existing = {start // interval for (start,) in cur.fetchall()}
    fresh = [int(s) for s, n in zip(ids, counts, strict=True) if n >= FRESH_CHUNK_MIN_ROWS and s not in existing]
    if not fresh:
        return copy_rows(cur, info, table)
    cur.execute("SET LOCAL maintenance_work_mem = %s", (INDEX_BUILD_MEMORY,))
    in_order = bool(np.all(slice_of_row[1:] >= slice_of_row[:-1]))
    staged = []
    for s in fresh:
        if in_order:  # rows in time order (the usual case): each slice is a zero-copy slice of the table
            first, end = np.searchsorted(slice_of_row, [s, s + 1])
            rows = table.slice(int(first), int(end - first))
        else:
            rows = table.filter(pa.array(slice_of_row == s))
        start = from_micros(s * interval)
        cur.execute("SELECT hdi_create_bar_chunk_stage(%s)", (start,))
        stage = cur.fetchone()[0]
        copy_rows(cur, info, rows, target=stage, freeze=True)
        staged.append((stage, start, from_micros((s + 1) * interval)))
    routed = ~np.isin(slice_of_row, fresh)
    inserted = int(table.num_rows - routed.sum())
    if routed.any():
        inserted += copy_rows(cur, info, table.filter(pa.array(routed)))
    for stage, start, end in staged:
        cur.execute("SELECT hdi_attach_bar_chunk(%s, %s, %s)", (stage, start, end))
    return inserted
