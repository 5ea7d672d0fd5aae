"""The vendor-schema pipeline shared by the Dagster assets, the landing-folder sensor and the CLI.

decoded records -> mapping -> two-stage validation -> upsert on the table's primary key -> quarantine +
dead-letter file -> one `data_ingest_runs` row. Everything is column-wise (Arrow / NumPy); only quarantined
records ever become Python objects. A DBN file already ingested (same sha256, schema and selection) is
recognised and changes nothing; a dry run validates and reports and writes nothing. Every SQL statement is in
hdi_resources.db (Database methods): this module only orchestrates. Over 400 lines because the three entry
points (records, DBN files, Databento requests) share the summary and the core and read best together."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hdi_core.errors import HdiError
from hdi_core.vendor_schemas.config import DatabentoConfig, DatabentoJob, SchemaSpec, schema_spec
from hdi_core.vendor_schemas.dbn_files import NS_PER_DAY, DbnFile, read_dbn_file, vendor_rows
from hdi_core.vendor_schemas.records import Expectation
from hdi_resources.dead_letter import write_dead_letter

if TYPE_CHECKING:
    from hdi_resources.databento import DatabentoResource, MappingInterval
    from hdi_resources.db import Database

log = logging.getLogger(__name__)

VENDOR = "databento"
DBN_SUFFIXES = (".dbn", ".dbn.zst")
UPSERT_BATCH_ROWS = 2_000_000  # bounds memory of one COPY + INSERT .. ON CONFLICT transaction


@dataclass
class IngestSummary:
    """What one ingest did (or, for a dry run, would do). `stored` = valid rows handed to storage."""

    source: str  # file path or `job:<name>[<chunk>]`
    schema: str
    target_table: str
    status: str  # success | failed | skipped (already ingested) | dry-run
    fetched: int = 0
    stored: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    quarantined: int = 0
    duplicates: int = 0  # valid rows repeating an earlier row's primary key in the same input (last one kept)
    min_ts: dt.datetime | None = None
    max_ts: dt.datetime | None = None
    run_id: int | None = None
    previous_run_id: int | None = None  # the earlier run a skipped file was ingested by
    sha256: str | None = None
    dataset: str | None = None
    dbn_version: int | None = None
    dead_letter: str | None = None
    rules: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None

    def as_metadata(self) -> dict[str, Any]:
        """Plain JSON-able values (for Dagster metadata and `--json` output)."""
        out = asdict(self)
        for key in ("min_ts", "max_ts"):
            out[key] = out[key].isoformat() if out[key] else None
        out["seconds"] = round(self.seconds, 3)
        return out

    def line(self) -> str:
        """One human line: `path (trades, v3): fetched 4, stored 4 (inserted 4, ...), quarantined 0`."""
        what = f"{self.source} ({self.schema}{f', DBN v{self.dbn_version}' if self.dbn_version else ''})"
        if self.status == "skipped":
            return f"{what}: already ingested by run {self.previous_run_id} (same sha256); nothing changed"
        if self.status == "failed":
            return f"{what}: FAILED: {self.error}"
        verb = "would store" if self.status == "dry-run" else "stored"
        counts = (
            f"fetched {self.fetched:,}, {verb} {self.stored:,}"
            + ("" if self.status == "dry-run" else
               f" (inserted {self.inserted:,}, updated {self.updated:,}, unchanged {self.unchanged:,})")
            + f", quarantined {self.quarantined:,}"
        )
        if self.duplicates:
            counts += f", {self.duplicates:,} repeated keys (last kept)"
        if self.rules:
            counts += " [" + ", ".join(f"{rule}: {n}" for rule, n in sorted(self.rules.items())) + "]"
        if self.dead_letter:
            counts += f"; dead letter {self.dead_letter}"
        return f"{what}: {counts}"


# -- symbols -----------------------------------------------------------------------------------------------


def symbol_labels(table: pa.Table, mappings: dict[str, list[MappingInterval]]) -> pa.Array:
    """The input symbol of each fetched record, from the response's mappings (instrument id x UTC date)."""
    n = table.num_rows
    if not n or not mappings or "instrument_id" not in table.column_names:
        return pa.nulls(n, pa.string())
    ids = table.column("instrument_id").to_numpy().astype(np.int64)
    index_field = "ts_recv" if "ts_recv" in table.column_names else "ts_event"
    days = table.column(index_field).cast(pa.int64()).to_numpy() // NS_PER_DAY
    epoch = dt.date(1970, 1, 1)
    names = list(mappings)
    codes = np.full(n, -1, dtype=np.int32)
    for code, name in enumerate(names):
        for interval in mappings[name]:
            if not str(interval.symbol).isdigit():
                continue  # an interval the server could not resolve
            d0, d1 = (interval.start_date - epoch).days, (interval.end_date - epoch).days
            codes[(ids == int(interval.symbol)) & (days >= d0) & (days < d1) & (codes < 0)] = code
    return pa.DictionaryArray.from_arrays(pa.array(codes, mask=codes < 0), pa.array(names, pa.string())).cast(
        pa.string()
    )


def _symbol_pairs(raw: pa.Table) -> list[tuple[str, int, dt.date, dt.date]]:
    """(symbol, instrument_id, first date, last date) seen in labelled records (a handful per request)."""
    if raw.num_rows == 0 or "symbol" not in raw.column_names or raw.column("symbol").null_count == raw.num_rows:
        return []
    index_field = "ts_recv" if "ts_recv" in raw.column_names else "ts_event"
    work = pa.table(
        {
            "symbol": raw.column("symbol"),
            "instrument_id": raw.column("instrument_id").cast(pa.int64()),
            "day": pc.divide(raw.column(index_field).cast(pa.int64()), NS_PER_DAY),
        }
    ).filter(pc.is_valid(raw.column("symbol")))
    grouped = work.group_by(["symbol", "instrument_id"]).aggregate([("day", "min"), ("day", "max")])
    epoch = dt.date(1970, 1, 1)
    return [
        (row["symbol"], int(row["instrument_id"]), epoch + dt.timedelta(days=int(row["day_min"])),
         epoch + dt.timedelta(days=int(row["day_max"])))
        for row in grouped.to_pylist()
    ]


def _record_symbols(db: Database, dataset: str | None, raw: pa.Table) -> None:
    """Remember raw symbol -> instrument id (only raw symbols: continuous and parent inputs name no contract)."""
    pairs = _symbol_pairs(raw)
    if pairs and dataset:
        db.record_symbols(dataset, pairs)


# -- the shared core ---------------------------------------------------------------------------------------


def _time_span(valid: pa.Table) -> tuple[dt.datetime | None, dt.datetime | None]:
    if valid.num_rows == 0:
        return None, None
    span = pc.min_max(valid.column("ts_event").cast(pa.int64()))
    lo, hi = span["min"].as_py(), span["max"].as_py()
    return (dt.datetime.fromtimestamp(lo // 1000 / 1e6, dt.UTC) if lo is not None else None,
            dt.datetime.fromtimestamp(hi // 1000 / 1e6, dt.UTC) if hi is not None else None)


def _rule_counts(quarantined: pa.Table) -> dict[str, int]:
    if quarantined.num_rows == 0:
        return {}
    counts = pc.value_counts(quarantined.column("rule").combine_chunks())
    return {str(c["values"]): int(c["counts"]) for c in counts.to_pylist()}


def _upsert(db: Database, table: str, valid: pa.Table, source: str, run_id: int | None) -> list[int]:
    """Upsert in bounded batches; [inserted, updated, unchanged, quarantined by storage, duplicate keys]."""
    totals = [0, 0, 0, 0, 0]
    for offset in range(0, valid.num_rows, UPSERT_BATCH_ROWS):
        result = db.upsert_rows(table, valid.slice(offset, UPSERT_BATCH_ROWS), source=source, run_id=run_id)
        for i, value in enumerate((result.inserted, result.updated, result.unchanged, result.quarantined,
                                   result.duplicates)):
            totals[i] += value
    return totals


def ingest_records(
    db: Database | None,
    raw: pa.Table,
    schema: str,
    *,
    source: str,
    dataset: str | None = None,
    expect: Expectation | None = None,
    stat_types: list[int] | None = None,
    partition: str | None = None,
    dead_letter_job: str = "adhoc",
    dead_letter_dir: str = "dead_letter",
    file_name: str | None = None,
    sha256: str | None = None,
    selection: str | None = None,
    dry_run: bool = False,
    dbn_version: int | None = None,
) -> IngestSummary:
    """Decoded records of `schema`'s source schema (DBN field names, plus `symbol` when known) -> stored rows.

    Opens a data_ingest_runs row (status running), maps and validates column-wise, upserts the valid rows
    idempotently, quarantines the rest (table + dead-letter file) and closes the run as success or failed."""
    spec: SchemaSpec = schema_spec(schema)
    started = time.monotonic()
    summary = IngestSummary(source=source, schema=spec.name, target_table=spec.target_table, status="dry-run",
                            fetched=raw.num_rows, sha256=sha256, dataset=dataset, dbn_version=dbn_version)
    if dry_run:
        valid, quarantined = vendor_rows(raw, spec.name, dataset=dataset, expect=expect, stat_types=stat_types)
        summary.stored, summary.quarantined = valid.num_rows, quarantined.num_rows
        summary.min_ts, summary.max_ts = _time_span(valid)
        summary.rules = _rule_counts(quarantined)
        summary.seconds = time.monotonic() - started
        return summary
    if db is None:
        raise HdiError(f"{source}: a database is needed to store rows (or use a dry run)")
    run_id = db.start_ingest_run(vendor=VENDOR, dataset=dataset, file_name=file_name, file_sha256=sha256,
                                 target_table=spec.target_table, schema_name=spec.name, selection=selection)
    summary.run_id = run_id
    try:
        valid, quarantined = vendor_rows(raw, spec.name, dataset=dataset, expect=expect, stat_types=stat_types)
        inserted, updated, unchanged, db_quarantined, duplicates = _upsert(
            db, spec.target_table, valid, source, run_id)
        db.store_quarantined(spec.target_table, quarantined, source=source, partition=partition, run_id=run_id)
        _record_symbols(db, dataset, raw)
        summary.inserted, summary.updated, summary.unchanged = inserted, updated, unchanged
        summary.stored = inserted + updated + unchanged
        summary.duplicates = duplicates
        summary.quarantined = quarantined.num_rows + db_quarantined
        summary.rules = _rule_counts(quarantined)
        summary.min_ts, summary.max_ts = _time_span(valid)
        if quarantined.num_rows:
            summary.dead_letter = str(write_dead_letter(quarantined, dead_letter_job, run_id, dead_letter_dir))
    except Exception as exc:
        summary.status = "failed"
        summary.error = str(exc) if isinstance(exc, HdiError) else f"{type(exc).__name__}: {exc}"
        db.finish_ingest_run(run_id, status="failed", row_count=raw.num_rows, error=summary.error)
        raise
    db.finish_ingest_run(
        run_id, status="success", row_count=raw.num_rows, inserted_count=summary.inserted,
        updated_count=summary.updated, unchanged_count=summary.unchanged,
        quarantined_count=summary.quarantined, min_ts=summary.min_ts, max_ts=summary.max_ts,
    )
    summary.status = "success"
    summary.seconds = time.monotonic() - started
    log.info(summary.line())
    return summary


# -- DBN files ---------------------------------------------------------------------------------------------


def find_dbn_files(paths: Iterable[str | Path]) -> list[Path]:
    """The DBN files named, folders expanded to the `.dbn` / `.dbn.zst` files inside them (sorted)."""
    found: list[Path] = []
    for entry in paths:
        path = Path(entry)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(DBN_SUFFIXES))
        elif path.exists():
            found.append(path)
        else:
            raise HdiError(f"{path}: no such file or folder")
    return found


def previous_ingest(db: Database, sha256: str, schema: str, selection: str | None) -> int | None:
    """The id of a successful earlier run of the same file bytes, schema and selection, if any."""
    return db.previous_ingest(sha256, schema, selection)


def _selection(limit: int | None, symbol: str | None) -> str | None:
    parts = [f"symbol={symbol}"] if symbol else []
    parts += [f"limit={limit}"] if limit is not None else []
    return ",".join(parts) or None


def ingest_dbn_file(
    db: Database | None,
    path: str | Path,
    *,
    dry_run: bool = False,
    limit: int | None = None,
    symbol: str | None = None,
    schema: str | None = None,
    force: bool = False,
) -> IngestSummary:
    """Ingest one `.dbn` / `.dbn.zst` file (DBN v1..v3) into its vendor table, audited in data_ingest_runs.

    `schema` may name a schema derived from the file's (ohlcv-5m / ohlcv-15m from a 1m file); a file
    already ingested with the same sha256, schema and selection is skipped unless `force`."""
    path = Path(path)
    dbn: DbnFile = read_dbn_file(path, limit=limit, symbol=symbol)
    target = schema_spec(schema or dbn.schema)
    if target.source_schema != dbn.schema:
        raise HdiError(f"{path}: holds {dbn.schema} records; {target.name} is built from {target.source_schema}")
    selection = _selection(limit, symbol)
    if db is not None and not force:
        earlier = previous_ingest(db, dbn.sha256, target.name, selection)
        if earlier is not None:
            return IngestSummary(source=str(path), schema=target.name, target_table=target.target_table,
                                 status="skipped", fetched=dbn.num_records, previous_run_id=earlier,
                                 sha256=dbn.sha256, dataset=dbn.dataset, dbn_version=dbn.version)
    return ingest_records(
        db, dbn.table, target.name, source=str(path), dataset=dbn.dataset, expect=Expectation(),
        partition=f"sha256:{dbn.sha256}:{target.name}:{selection or 'all'}",
        dead_letter_job=f"file-{path.name}", file_name=path.name,
        sha256=dbn.sha256, selection=selection, dry_run=dry_run, dbn_version=dbn.version,
    )


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# -- Databento requests (YAML jobs and `hdi ingest`) -------------------------------------------------------


@dataclass(frozen=True)
class Chunk:
    """One date chunk of a job: the Dagster partition key is its first date."""

    key: str
    start: dt.date
    end: dt.date

    @property
    def start_dt(self) -> dt.datetime:
        return dt.datetime.combine(self.start, dt.time(), tzinfo=dt.UTC)

    @property
    def end_dt(self) -> dt.datetime:
        return dt.datetime.combine(self.end, dt.time(), tzinfo=dt.UTC)


def date_chunks(start: dt.date, end: dt.date, days: int) -> list[Chunk]:
    """[start, end) cut into chunks of `days` days (the last may be shorter)."""
    out: list[Chunk] = []
    day = start
    while day < end:
        stop = min(end, day + dt.timedelta(days=days))
        out.append(Chunk(day.isoformat(), day, stop))
        day = stop
    return out


def job_chunks(config: DatabentoConfig, job: DatabentoJob) -> list[Chunk]:
    return date_chunks(job.start_date, job.end_date, config.chunk_days(job))


def fetch_and_ingest(
    db: Database | None,
    databento: DatabentoResource,
    *,
    dataset: str,
    schema: str,
    symbols: list[str],
    start: dt.date,
    end: dt.date,
    stype_in: str = "raw_symbol",
    stat_types: list[int] | None = None,
    job_name: str = "adhoc",
    partition: str | None = None,
    dry_run: bool = False,
    context: Any | None = None,
    dead_letter_dir: str = "dead_letter",
) -> IngestSummary:
    """Fetch [start, end) of `schema` through the Databento resource (cache-first) and ingest it."""
    spec = schema_spec(schema)
    fetched = databento.get_range(
        dataset=dataset, schema=spec.source_schema, symbols=symbols, start=start.isoformat(),
        end=end.isoformat(), stype_in=stype_in, context=context,
    )
    raw = fetched.table
    raw = raw.append_column("symbol", symbol_labels(raw, fetched.mappings))
    start_dt = dt.datetime.combine(start, dt.time(), tzinfo=dt.UTC)
    end_dt = dt.datetime.combine(end, dt.time(), tzinfo=dt.UTC)
    expect = Expectation(
        start=start_dt, end=end_dt,
        symbols=frozenset(symbols) if stype_in != "instrument_id" else None,
        instrument_ids=frozenset(int(s) for s in symbols) if stype_in == "instrument_id" else None,
    )
    partition = partition or f"{job_name}:{start.isoformat()}..{end.isoformat()}"
    source = f"job:{job_name}"
    return ingest_records(
        db, raw, spec.name, source=source, dataset=dataset, expect=expect, stat_types=stat_types,
        partition=partition, dead_letter_job=job_name, dead_letter_dir=dead_letter_dir,
        file_name=f"{job_name} {','.join(symbols)} {start.isoformat()}..{end.isoformat()}",
        selection=json.dumps({"symbols": sorted(symbols), "stype_in": stype_in}), dry_run=dry_run,
    )


def run_job_chunk(
    db: Database | None,
    databento: DatabentoResource,
    job: DatabentoJob,
    chunk: Chunk,
    *,
    dry_run: bool = False,
    context: Any | None = None,
    dead_letter_dir: str = "dead_letter",
) -> IngestSummary:
    """One date chunk of a YAML job: what its Dagster partition materializes."""
    return fetch_and_ingest(
        db, databento, dataset=job.dataset, schema=job.schema_name, symbols=list(job.symbols),
        start=chunk.start, end=chunk.end, stype_in=job.stype_in, stat_types=job.stat_types,
        job_name=job.name, partition=f"{job.name}:{chunk.key}", dry_run=dry_run, context=context,
        dead_letter_dir=dead_letter_dir,
    )


def combine(summaries: list[IngestSummary], source: str) -> IngestSummary:
    """Totals of several chunk summaries (the job summary of `hdi ingest`)."""
    if not summaries:
        raise HdiError(f"{source}: nothing to ingest (empty date range)")
    first = summaries[0]
    total = IngestSummary(source=source, schema=first.schema, target_table=first.target_table,
                          status=first.status, dataset=first.dataset)
    rules: dict[str, int] = {}
    for s in summaries:
        for name in ("fetched", "stored", "inserted", "updated", "unchanged", "quarantined", "duplicates"):
            setattr(total, name, getattr(total, name) + getattr(s, name))
        for rule, n in s.rules.items():
            rules[rule] = rules.get(rule, 0) + n
        total.seconds += s.seconds
    stamps = [s.min_ts for s in summaries if s.min_ts] + [s.max_ts for s in summaries if s.max_ts]
    total.min_ts, total.max_ts = (min(stamps), max(stamps)) if stamps else (None, None)
    total.rules = rules
    dead = [s.dead_letter for s in summaries if s.dead_letter]
    total.dead_letter = ", ".join(dead) if dead else None
    return total
