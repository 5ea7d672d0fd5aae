"""TimescaleDB columnstore for continuous_bars: compress the chunks of a window once it is loaded, and sizes."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .core import Database

log = logging.getLogger(__name__)

COMPRESSED_TABLES = ("continuous_bars",)  # hypertables with compression enabled by migration 0007

# Chunks overlapping the loaded rows' time span that are not compressed yet (or got rows since: partial).
_CHUNKS_TO_COMPRESS = """
    SELECT format('%%I.%%I', c.chunk_schema, c.chunk_name)  -- %% : psycopg2 parameters
    FROM timescaledb_information.chunks c
    WHERE c.hypertable_schema = 'public' AND c.hypertable_name = 'continuous_bars'
      AND c.range_start <= %(last)s AND c.range_end > %(first)s
      AND (NOT c.is_compressed OR EXISTS (
          SELECT 1 FROM _timescaledb_catalog.chunk k
          WHERE k.schema_name = c.chunk_schema AND k.table_name = c.chunk_name AND k.status & 8 = 8))
    ORDER BY c.range_start"""


def compress_loaded_bars(db: Database, continuous_symbol: str, window: Any) -> int:
    """Compress the chunks holding this symbol's window, now that its load has committed; returns how many.
    Chunks are shared by every symbol of those days: a later load into one is allowed (it becomes partially
    compressed) and that load recompresses it."""
    import psycopg2.errors

    with db.raw("owner") as conn, conn.cursor() as cur:
        cur.execute('SELECT min(ts), max(ts) FROM continuous_bars WHERE continuous_symbol = %s AND "window" = %s',
                    (continuous_symbol, window))
        first, last = cur.fetchone()
        if first is None:
            return 0
        cur.execute(_CHUNKS_TO_COMPRESS, {"first": first, "last": last})
        chunks = [row[0] for row in cur.fetchall()]
        done = 0
        for chunk in chunks:
            # Best effort, the load has committed: a concurrent load into the same chunk makes TimescaleDB abort
            # the recompression (SerializationFailure); that load's own compression pass picks the chunk up.
            cur.execute("SAVEPOINT compress_one")
            try:
                cur.execute("SELECT compress_chunk(%s::regclass, if_not_compressed => true)", (chunk,))
                cur.execute("RELEASE SAVEPOINT compress_one")
                done += 1
            except (psycopg2.errors.SerializationFailure, psycopg2.errors.DeadlockDetected) as exc:
                cur.execute("ROLLBACK TO SAVEPOINT compress_one")
                log.info("chunk %s not compressed now (%s); a later load of its days compresses it", chunk,
                         str(exc).strip())
    log.info("compressed %d of %d continuous_bars chunk(s) of %s window %s", done, len(chunks),
             continuous_symbol, window)
    return done


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
        sizes[table] = {"total_bytes": total, "chunks": chunks, "compressed_chunks": compressed,
                        "before_compression_bytes": before, "after_compression_bytes": after}
    return sizes
