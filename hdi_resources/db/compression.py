"""TimescaleDB columnstore: compress the chunks of a bars window once it is loaded, the closed (past) chunks a
vendor upsert wrote once it commits, and sizes for `hdi db info`."""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .core import Database

log = logging.getLogger(__name__)

VENDOR_TABLES = ("ohlcv_data", "trades_data", "tbbo_data", "statistics_data", "definitions_data")  # 0003/0011
COMPRESSED_TABLES = ("continuous_bars", *VENDOR_TABLES)  # hypertables with compression enabled (0007, 0011)
NO_DECOMPRESSION_LIMIT = "SELECT set_config('timescaledb.max_tuples_decompressed_per_dml_transaction', '0', true)"

# Chunks of a hypertable overlapping the loaded rows' time span, ending by `closed_by` (None: any), that are not
# compressed yet (or got rows since: partial).
_CHUNKS_TO_COMPRESS = """
    SELECT format('%%I.%%I', c.chunk_schema, c.chunk_name)  -- %% : psycopg2 parameters
    FROM timescaledb_information.chunks c
    WHERE c.hypertable_schema = 'public' AND c.hypertable_name = %(table)s
      AND c.range_start <= %(last)s AND c.range_end > %(first)s
      AND (%(closed_by)s::timestamptz IS NULL OR c.range_end <= %(closed_by)s::timestamptz)
      AND (NOT c.is_compressed OR EXISTS (
          SELECT 1 FROM _timescaledb_catalog.chunk k
          WHERE k.schema_name = c.chunk_schema AND k.table_name = c.chunk_name AND k.status & 8 = 8))
    ORDER BY c.range_start"""


def compress_loaded_bars(db: Database, continuous_symbol: str, window: Any) -> int:
    """Compress the chunks holding this symbol's window, now that its load has committed; returns how many.
    Chunks are shared by every symbol of those days: a later load into one is allowed (it becomes partially
    compressed) and that load recompresses it."""
    with db.raw("owner") as conn, conn.cursor() as cur:
        # The span the load recorded (a scan of the window's rows would decompress them all).
        cur.execute("""SELECT min(min_ts), max(max_ts) FROM hdi_loaded_partitions
                       WHERE target = 'continuous_bars' AND "partition"::jsonb ->> 'continuous_symbol' = %s
                         AND ("partition"::jsonb ->> 'window')::date = %s::date""", (continuous_symbol, str(window)))
        first, last = cur.fetchone()
        if first is None:
            return 0
        done, total = _compress_chunks(cur, "continuous_bars", first, last, closed_by=None)
    log.info("compressed %d of %d continuous_bars chunk(s) of %s window %s", done, total,
             continuous_symbol, window)
    return done


def compress_upserted_history(db: Database, table: str, first: dt.datetime, last: dt.datetime) -> int:
    """After a vendor upsert into `table` committed rows timed first..last: compress the chunks it wrote that
    are closed, i.e. end by the start of the current UTC day (history; today's open chunk still takes rows).
    Best effort, as the owner role (compression is the table owner's); returns how many were compressed."""
    if db.storage_mode != "timescaledb" or table not in VENDOR_TABLES:
        return 0
    import psycopg2

    try:
        with db.raw("owner") as conn, conn.cursor() as cur:
            cur.execute("SELECT date_trunc('day', now(), 'UTC')")
            today = cur.fetchone()[0]
            if first >= today:
                return 0
            done, total = _compress_chunks(cur, table, first, last, closed_by=today)
    except psycopg2.Error as exc:  # the upsert has committed: a failed compression must not fail it
        log.warning("%s: closed chunks not compressed now (%s); the next upsert of their days compresses them",
                    table, str(exc).strip().splitlines()[0])
        return 0
    if total:
        log.info("compressed %d of %d closed %s chunk(s)", done, total, table)
    return done


def allow_dml_on_compressed(db: Database, cur: Any) -> None:
    """In a load transaction on TimescaleDB: updates and key checks in compressed chunks may decompress as many
    rows as the load touches (the default limit of 100,000 per transaction would fail a day's reload)."""
    if db.storage_mode == "timescaledb":
        cur.execute(NO_DECOMPRESSION_LIMIT)


def _compress_chunks(cur: Any, table: str, first: Any, last: Any, closed_by: Any) -> tuple[int, int]:
    """Compress (or recompress, when partial) `table`'s chunks overlapping first..last and ending by
    `closed_by`; returns (compressed, candidates)."""
    import psycopg2.errors

    cur.execute(_CHUNKS_TO_COMPRESS, {"table": table, "first": first, "last": last, "closed_by": closed_by})
    chunks = [row[0] for row in cur.fetchall()]
    done = 0
    for chunk in chunks:
        # Best effort, the load has committed: a concurrent load into the same chunk makes TimescaleDB abort
        # the recompression (SerializationFailure); that load's own compression pass picks the chunk up. Another
        # load's pass may also have compressed the chunk since it was listed (DuplicateObject: done already).
        cur.execute("SAVEPOINT compress_one")
        try:
            cur.execute("SELECT compress_chunk(%s::regclass, if_not_compressed => true)", (chunk,))
            cur.execute("RELEASE SAVEPOINT compress_one")
            done += 1
        except (psycopg2.errors.SerializationFailure, psycopg2.errors.DeadlockDetected,
                psycopg2.errors.DuplicateObject) as exc:
            cur.execute("ROLLBACK TO SAVEPOINT compress_one")
            log.info("chunk %s not compressed now (%s); a later load of its days compresses it", chunk,
                     str(exc).strip())
    return done, len(chunks)


def compression_sizes(cur: Any) -> dict[str, dict[str, int]]:
    """Per compressed hypertable: total bytes, and bytes before/after compression of its compressed chunks."""
    sizes: dict[str, dict[str, int]] = {}
    for table in COMPRESSED_TABLES:
        cur.execute("SELECT coalesce(sum(total_bytes), 0) FROM hypertable_detailed_size(%s)", (table,))
        total = int(cur.fetchone()[0])
        cur.execute("""SELECT coalesce(sum(number_compressed_chunks), 0), coalesce(sum(total_chunks), 0),
                              coalesce(sum(before_compression_total_bytes), 0),
                              coalesce(sum(after_compression_total_bytes), 0)
                       FROM hypertable_compression_stats(%s)""", (table,))
        compressed, chunks, before, after = (int(v) for v in cur.fetchone())
        if table == "continuous_bars":
            before, after = _with_direct_batches(cur, before, after)
        sizes[table] = {"total_bytes": total, "chunks": chunks, "compressed_chunks": compressed,
                        "before_compression_bytes": before, "after_compression_bytes": after}
    return sizes


def _with_direct_batches(cur: Any, before: int, after: int) -> tuple[int, int]:
    """TimescaleDB's statistics know only what compress_chunk compressed: for the chunks bar loads wrote as
    batches (migration 0013), count their compressed bytes as they are and their rows at the uncompressed size
    a sample of them took."""
    cur.execute("SELECT to_regclass('hdi_compressed_batches') IS NOT NULL")
    if not cur.fetchone()[0]:
        return before, after
    cur.execute("""SELECT b.bytes_per_row, format('%%I.%%I', cc.schema_name, cc.table_name),
                          coalesce(s.uncompressed_heap_size + s.uncompressed_toast_size + s.uncompressed_index_size, 0),
                          coalesce(s.compressed_heap_size + s.compressed_toast_size + s.compressed_index_size, 0)
                   FROM hdi_compressed_batches b
                   JOIN _timescaledb_catalog.chunk c ON format('%%I.%%I', c.schema_name, c.table_name) = b.chunk
                   JOIN _timescaledb_catalog.chunk cc ON cc.id = c.compressed_chunk_id
                   LEFT JOIN _timescaledb_catalog.compression_chunk_size s ON s.chunk_id = c.id""", ())
    for bytes_per_row, compressed, recorded_before, recorded_after in cur.fetchall():
        cur.execute(f"SELECT coalesce(sum(_ts_meta_count), 0), pg_total_relation_size('{compressed}') "
                    f"FROM {compressed}")  # compressed: a chunk name from TimescaleDB's catalog, quoted by format()
        rows, size = cur.fetchone()
        before += round(int(rows) * bytes_per_row) - int(recorded_before)
        after += int(size) - int(recorded_after)
    return before, after
