"""Ingest bookkeeping: one `data_ingest_runs` row per run (opened 'running', closed 'success' or 'failed' with
its counts), which file bytes were already ingested, and the raw symbol -> instrument id pairs seen."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hdi_core.errors import HdiError
from hdi_resources.settings import redact

if TYPE_CHECKING:
    from .core import Database
    from .replace import LoadResult
    from .upsert import UpsertResult

ERROR_MAX_CHARS = 4000  # a failed run's error text is cut to this


# -- data_ingest_runs ------------------------------------------------------------------------------------
def start_ingest_run(db: Database, *, vendor: str = "databento", dataset: str | None = None,
                     file_name: str | None = None, file_sha256: str | None = None,
                     target_table: str | None = None, schema_name: str | None = None,
                     selection: str | None = None) -> int:
    """Open an audit row with status 'running'; returns its id. schema_name and selection tell which part of
    a file the run ingests (see previous_ingest)."""
    with db.raw() as conn, conn.cursor() as cur:
        cur.execute("""INSERT INTO data_ingest_runs (vendor, dataset, file_name, file_sha256, target_table,
                                                     schema_name, selection)
                       VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id""",
                    (vendor, dataset, file_name, file_sha256, target_table, schema_name, selection))
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
                     min_ts, max_ts, redact(error)[:ERROR_MAX_CHARS] if error else None, run_id))


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


# -- what earlier runs saw ---------------------------------------------------------------------------------
def previous_ingest(db: Database, sha256: str, schema: str, selection: str | None) -> int | None:
    """The id of a successful earlier run of the same file bytes, schema and selection, if any."""
    with db.raw() as conn, conn.cursor() as cur:
        cur.execute(
            """SELECT id FROM data_ingest_runs WHERE file_sha256 = %s AND status = 'success'
                   AND coalesce(schema_name, %s) = %s AND coalesce(selection, '') = %s
               ORDER BY id LIMIT 1""",
            (sha256, schema, schema, selection or ""),
        )
        row = cur.fetchone()
    return int(row[0]) if row else None


SymbolPair = tuple[str, int, dt.date, dt.date]  # (raw symbol, instrument id, first date, last date)


def record_symbols(db: Database, dataset: str, pairs: list[SymbolPair]) -> None:
    """Remember raw symbol -> instrument id pairs of a dataset, widening the dates of pairs already known."""
    from psycopg2.extras import execute_values

    if not pairs:
        return
    with db.raw() as conn, conn.cursor() as cur:
        execute_values(
            cur,
            """INSERT INTO vendor_symbols (dataset, symbol, instrument_id, first_date, last_date) VALUES %s
               ON CONFLICT (dataset, symbol, instrument_id) DO UPDATE SET
                   first_date = LEAST(vendor_symbols.first_date, EXCLUDED.first_date),
                   last_date = GREATEST(vendor_symbols.last_date, EXCLUDED.last_date)""",
            [(dataset, *pair) for pair in pairs],
        )
    from .catalog import record_names

    record_names(db)  # the catalogue's instruments get their raw symbols
