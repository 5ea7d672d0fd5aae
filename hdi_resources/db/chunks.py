"""TimescaleDB bar loads. A slice of a chunk's width (7 days by default) with no chunk yet and at least
FRESH_CHUNK_MIN_ROWS new rows, or with a compressed chunk and COMPRESSED_CHUNK_MIN_ROWS, is written as
compressed batches (migration 0013): worker connections COPY its rows, in pieces, into staging hypertables
without a primary key, which TimescaleDB compresses as the rows stream in (enable_direct_compress_copy), and
keep the batches; at the end of its own transaction the load attaches a new chunk (compressed at once, empty)
where there was none and appends the batches to the chunk's compressed chunk, so readers see all new rows or
none and no compression pass runs after the load. On a TimescaleDB without direct compression, a chunk-less
slice is COPYed FREEZE into a plain stage table that is attached as its chunk instead. Other rows go through
the hypertable. A stage a killed load left is never attached; the next load of its slice drops it."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hdi_core.errors import HdiError

from .binary import to_unix_micros
from .copy import copy_rows
from .stage import constant_columns, run_workers
from .tables import Span, TableInfo, datetime_micros, from_micros

if TYPE_CHECKING:
    from .core import Database

FRESH_CHUNK_MIN_ROWS = 20_000  # fewer new rows in a slice without a chunk go through the hypertable
# ... and into a compressed chunk: there a row through the hypertable costs a key check against compressed data
# (~0.1 ms), so from about a thousand rows, batches (~0.1 s of setup per slice) are cheaper
COMPRESSED_CHUNK_MIN_ROWS = 1_000
PIECE_ROWS = 200_000  # a slice's rows written as batches are split in pieces of about this many, one per worker job
MAX_PIECES = 16


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


def lock_slices(cur: Any, lo: dt.datetime, last: dt.datetime, waiting: Any) -> None:
    """The advisory lock of every chunk slice of [lo, last], ascending, taken after the load's month locks (the
    global order): a slice's chunk and stage tables are shared by every symbol, so loads of two symbols into one
    slice take turns. `waiting.what` names the slice while its lock is awaited."""
    interval = chunk_interval_micros(cur)
    for s in range(datetime_micros(lo) // interval, datetime_micros(last) // interval + 1):
        waiting.what = f"chunk slice {from_micros(s * interval):%Y-%m-%d}"
        cur.execute("SELECT pg_advisory_xact_lock(hashtext('hdi_bar_slice'), %s)", (s,))


def stage_names(start: dt.datetime, pieces: int, new_chunk: bool) -> list[str]:
    """Python twin of the stage names migration 0013's functions give a slice's pieces (and its new chunk)."""
    base = f"continuous_bars_stage_{start.astimezone(dt.UTC):%Y%m%d}"
    return [*([base] if new_chunk else []), *(f"{base}_{k}_{kind}" for k in range(pieces) for kind in ("ht", "c"))]


def _direct_batches_supported(cur: Any) -> bool:
    """TimescaleDB can compress rows as a COPY streams them and adopt a table of batches as a chunk's
    compressed chunk (2.2x), and migration 0013 is applied."""
    cur.execute("""SELECT current_setting('timescaledb.enable_direct_compress_copy', true) IS NOT NULL
                          AND to_regprocedure('hdi.hdi_stage_bar_batches(timestamptz, integer, jsonb)') IS NOT NULL
                          AND EXISTS (SELECT 1 FROM timescaledb_information.hypertable_compression_settings
                                      WHERE hypertable = 'continuous_bars'::regclass)""")
    return bool(cur.fetchone()[0])


def _in_batch_order(rows: pa.Table) -> pa.Table:
    """The rows ordered as compressed batches are (segment, then ts), which lets the COPY compress them as they
    come: a window's rows are one segment in time order already (checked without sorting)."""
    segment = ["continuous_symbol", "granularity", "adjustment_method"]
    micros = to_unix_micros(rows.column("ts").combine_chunks(), "ts")[0]
    if all(len(pc.unique(rows.column(c))) <= 1 for c in segment) and bool(np.all(micros[1:] > micros[:-1])):
        return rows
    codes = {c: _codes(rows.column(c)) for c in segment}  # any order of segments will do: grouped is enough
    order = pc.sort_indices(pa.table({**codes, "ts": pa.array(micros)}),
                            [(c, "ascending") for c in [*segment, "ts"]])
    return rows.take(order)


def _codes(column: pa.ChunkedArray) -> pa.Array:
    """Integers equal where the text values are (for grouping rows by a text column)."""
    return pc.dictionary_encode(_text(column)).indices


def _refuse_stored_keys(cur: Any, rows: pa.Table) -> None:
    """Batches appended to a compressed chunk are not checked against the primary key, so check first: after the
    load's DELETE, a stored row of the same series within the rows' time span must not hold one of their keys
    (a row the bookkeeping does not know of, written by upsert_rows say). One holding one raises the
    unique_violation a COPY would, which makes replace_partition re-run with its full check (and quarantine)."""
    micros = to_unix_micros(rows.column("ts").combine_chunks(), "ts")[0]
    segment = {c: _text(rows.column(c)) for c in ("continuous_symbol", "granularity", "adjustment_method")}
    series = pa.table(segment).group_by(list(segment)).aggregate([])
    for values in series.to_pylist():  # one query per series (one, as a rule)
        mask = np.ones(rows.num_rows, dtype=bool)
        for c, column in segment.items():
            mask &= pc.equal(column, values[c]).to_numpy(zero_copy_only=False)
        mine = micros[mask]
        cur.execute("""SELECT (extract(epoch FROM ts) * 1000000)::int8 FROM continuous_bars
                       WHERE continuous_symbol = %s AND granularity = %s AND adjustment_method = %s
                         AND ts >= %s AND ts <= %s""",
                    (*values.values(), from_micros(int(mine.min())), from_micros(int(mine.max()))))
        stored = np.array([r[0] for r in cur.fetchall()], dtype=np.int64)
        if stored.size and np.isin(mine, stored).any():
            cur.execute("DO $$BEGIN RAISE unique_violation USING MESSAGE = "
                        "'continuous_bars: rows of another partition hold keys of this load'; END$$")


def _text(column: pa.ChunkedArray) -> pa.Array:
    arr = column.combine_chunks()
    return (arr.dictionary_decode() if pa.types.is_dictionary(arr.type) else arr).cast(pa.string())


def copy_bars_timescale(db: Database, cur: Any, info: TableInfo, table: pa.Table, bounds: Span, workers: int,
                        lock_timeout_s: float, busy: Callable[[str, BaseException], Exception]) -> int:
    """COPY the rows into continuous_bars (TimescaleDB) within bounds [lo, hi); returns how many. A slice
    holding at least FRESH_CHUNK_MIN_ROWS of them is written by up to `workers` connections as compressed
    batches (migration 0013) when it has no chunk or a compressed one, else (older TimescaleDB) as a plain stage
    table when it has no chunk; those are made visible last (their lock on the hypertable is short). Other rows
    go through the hypertable. Stages a killed load left in the range are dropped."""
    interval = chunk_interval_micros(cur)
    micros = (to_unix_micros(table.column("ts").combine_chunks(), "ts")[0] if table.num_rows
              else np.empty(0, dtype=np.int64))
    slice_of_row = micros // interval
    in_order = bool(np.all(slice_of_row[1:] >= slice_of_row[:-1]))
    if in_order and table.num_rows:  # the usual case: each slice is a run of rows (no sort to find them)
        first_rows = np.concatenate(([0], np.flatnonzero(np.diff(slice_of_row)) + 1))
        ids, counts = slice_of_row[first_rows], np.diff(np.append(first_rows, table.num_rows))
    else:
        ids, counts = np.unique(slice_of_row, return_counts=True)
    # One series in strict time order (a window's rows, as a rule): already in batch order, every slice of it.
    batch_ordered = in_order and bool(np.all(micros[1:] > micros[:-1])) and all(
        len(pc.unique(table.column(c))) <= 1 for c in ("continuous_symbol", "granularity", "adjustment_method"))
    staged: list[int] = []  # slices written by workers
    existing: dict[int, bool] = {}  # slice -> its chunk is compressed
    batches = len(ids) > 0 and _direct_batches_supported(cur)
    cur.execute("SELECT to_regprocedure('attach_chunk(regclass, regclass, jsonb)') IS NOT NULL")
    if len(ids) and cur.fetchone()[0]:  # attach_chunk is recent: without it, COPY it all
        cur.execute("""SELECT (extract(epoch FROM range_start) * 1000000)::int8, is_compressed
                       FROM timescaledb_information.chunks
                       WHERE hypertable_name = 'continuous_bars' AND range_start >= %s AND range_start <= %s""",
                    (from_micros(int(ids[0]) * interval), from_micros(int(ids[-1]) * interval)))
        existing = {start // interval: bool(compressed) for start, compressed in cur.fetchall()}
        staged = [int(s) for s, n in zip(ids, counts, strict=True)
                  if (s not in existing and n >= FRESH_CHUNK_MIN_ROWS)
                  or (batches and existing.get(s) and n >= COMPRESSED_CHUNK_MIN_ROWS)]

    def rows_of(s: int) -> pa.Table:
        if in_order:  # rows in time order (the usual case): each slice is a zero-copy slice of the table
            first, end = np.searchsorted(slice_of_row, [s, s + 1])
            return table.slice(int(first), int(end - first))
        return table.filter(pa.array(slice_of_row == s))

    # Work items: a slice's rows (in batch order), split into pieces when batches are written, so that two
    # workers share a big slice; pieces follow each other in time, so their batches never overlap.
    pieces: list[tuple[int, int, pa.Table]] = []
    for s in staged:
        rows = rows_of(s)
        if not batches:
            pieces.append((s, 0, rows))
            continue
        rows = rows if batch_ordered else _in_batch_order(rows)
        parts = max(1, min(-(-rows.num_rows // PIECE_ROWS), MAX_PIECES))
        step = -(-rows.num_rows // parts)
        pieces += [(s, k, rows.slice(k * step, step)) for k in range(parts)]

    # Stages a killed load left in the range go first, but for the names this load's workers make (a worker
    # drops its own leftover: a drop held open here would block its CREATE until this load commits).
    keep = [name for s in staged for name in stage_names(
        from_micros(s * interval), sum(p[0] == s for p in pieces) if batches else 0, s not in existing)]
    lo, hi = (datetime_micros(b) // interval for b in bounds)
    cur.execute("SELECT hdi.hdi_drop_bar_chunk_stages(%s, %s, %s::text[])",
                (from_micros(lo * interval), from_micros((hi + 1) * interval), keep))

    def job(s: int, k: int, rows: pa.Table) -> Callable[[Any], tuple[int, int, int, tuple[int, ...] | None]]:
        def fill(wcur: Any) -> tuple[int, int, int, tuple[int, ...] | None]:
            constants = constant_columns(info, rows)
            start = from_micros(s * interval)
            if not batches:
                wcur.execute("SELECT hdi.hdi_stage_bar_chunk(%s, %s)", (start, json.dumps(constants)))
                stage = wcur.fetchone()[0]
                copy_rows(wcur, info, rows.drop_columns(list(constants)), target=stage, freeze=True)
                wcur.execute("SELECT hdi.hdi_index_bar_chunk_stage(%s)", (start,))
                return s, k, rows.num_rows, None
            wcur.execute("SELECT hdi.hdi_stage_bar_batches(%s, %s, %s)", (start, k, json.dumps(constants)))
            stage = wcur.fetchone()[0]
            wcur.execute("SELECT set_config('timescaledb.enable_direct_compress_copy', 'on', true), "
                         "set_config('timescaledb.enable_direct_compress_copy_client_sorted', 'on', true)")
            copy_rows(wcur, info, rows.drop_columns(list(constants)), target=stage)
            wcur.execute("SELECT * FROM hdi.hdi_seal_bar_batches(%s, %s, %s)", (start, k, k == 0 and s not in existing))
            stats = tuple(int(v) for v in wcur.fetchone())
            if stats[0] != rows.num_rows:  # every row must be in a batch: none left in the staging heap
                raise HdiError(f"continuous_bars: {stats[0]} of {rows.num_rows} rows of the slice from "
                               f"{start:%Y-%m-%d} were compressed; the load changed nothing")
            return s, k, rows.num_rows, (stats[0], stats[2], stats[3])
        return fill

    appended = [p[2] for p in pieces if p[0] in existing]
    if appended:  # batches skip the primary key's check: no stored row may hold one of their keys
        _refuse_stored_keys(cur, pa.concat_tables(appended))
    order = sorted(pieces, key=lambda p: -p[2].num_rows)  # the biggest first balances the workers
    done = run_workers(db, [(f"chunk {from_micros(s * interval):%Y-%m-%d}'s stage table", job(s, k, rows))
                            for s, k, rows in order], workers, lock_timeout_s, busy)
    inserted = sum(n for _, _, n, _ in done)
    if inserted < table.num_rows:  # the rows of slices not staged
        routed = ~np.isin(slice_of_row, staged)
        inserted += copy_rows(cur, info, table.filter(pa.array(routed)) if not routed.all() else table)
    for s, k, _, stats in sorted(done, key=lambda d: (d[0], d[1])):  # a new chunk's first piece attaches it
        start, end = from_micros(s * interval), from_micros((s + 1) * interval)
        if stats is None:
            cur.execute("SELECT hdi.hdi_attach_bar_chunk(%s, %s)", (start, end))
        else:
            cur.execute("SELECT hdi.hdi_attach_bar_batches(%s, %s, %s, %s, %s, %s)", (start, end, k, *stats))
    return inserted
