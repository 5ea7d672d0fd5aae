"""`hdi ingest` (ad-hoc Databento pulls) and `hdi ingest-file` (downloaded DBN files).

Both run the pipeline the Dagster assets run (hdi_assets.vendor_schema_jobs.ingest) and end with a summary."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from hdi_core.errors import HdiError


def _adhoc_job(dataset: str, schema: str, symbols: str, start: str, end: str, stype_in: str) -> tuple:
    """The command line as a job of the YAML model, so it is checked by the same rules (field named)."""
    from hdi_core.vendor_schemas.config import DEFAULT_CONFIG_PATH, load_config, parse_config

    config = load_config(DEFAULT_CONFIG_PATH)
    raw = {
        "date_chunk_interval_days": config.date_chunk_interval_days,
        "jobs": [{"name": "adhoc", "dataset": dataset, "schema": schema, "symbols": symbols,
                  "stype_in": stype_in, "start_date": start, "end_date": end}],
    }
    adhoc = parse_config(raw, "hdi ingest")
    return adhoc, adhoc.jobs[0]


def ingest(
    dataset: str = typer.Option(None, help="Databento dataset, e.g. GLBX.MDP3."),
    schema: str = typer.Option(None, help="ohlcv-1s/1m/5m/15m/1h/1d, trades, tbbo, statistics or definition."),
    symbols: str = typer.Option(None, help="Comma-separated symbols, e.g. ESM4,NQM4."),
    start: str = typer.Option(None, help="First UTC date (inclusive), e.g. 2024-05-01."),
    end: str = typer.Option(None, help="UTC end date (exclusive), e.g. 2024-05-03."),
    stype_in: str = typer.Option("raw_symbol", "--stype-in", help="raw_symbol, continuous, parent, instrument_id."),
    job: str = typer.Option(None, help="Run a job of databento_config.yaml instead (all its date chunks)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Fetch and validate; write nothing to the database."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Pull Databento data into the vendor tables: fetch, map, validate, upsert, quarantine; then a summary."""
    from hdi_assets.vendor_schema_jobs.ingest import combine, job_chunks, run_job_chunk
    from hdi_core.vendor_schemas.config import DEFAULT_CONFIG_PATH, load_config
    from hdi_resources.databento import DatabentoResource

    if job:
        config = load_config(DEFAULT_CONFIG_PATH)
        chosen = config.job(job)
    else:
        missing = [name for name, value in (("--dataset", dataset), ("--schema", schema), ("--symbols", symbols),
                                            ("--start", start), ("--end", end)) if not value]
        if missing:
            raise HdiError(f"hdi ingest: missing {', '.join(missing)} (or name a YAML job with --job)")
        config, chosen = _adhoc_job(dataset, schema, symbols, start, end, stype_in)
    databento = DatabentoResource.from_env()
    db = None
    if not dry_run:
        from hdi_resources.db import get_database

        db = get_database()
    summaries = []
    for chunk in job_chunks(config, chosen):
        summary = run_job_chunk(db, databento, chosen, chunk, dry_run=dry_run,
                                dead_letter_dir=config.dead_letter_dir)
        summaries.append(summary)
        if not as_json:
            typer.echo(f"  {chunk.start}..{chunk.end}: {summary.line().split(': ', 1)[1]}")
    label = f"{chosen.dataset} {chosen.schema_name} {','.join(chosen.symbols)} {chosen.start_date}..{chosen.end_date}"
    total = combine(summaries, label)
    if as_json:
        typer.echo(json.dumps({"total": total.as_metadata(), "chunks": [s.as_metadata() for s in summaries]},
                              indent=2))
    else:
        typer.echo(f"summary: {total.line()}")


def ingest_file(
    paths: list[Path] = typer.Argument(..., help="DBN files (.dbn, .dbn.zst) or folders holding them."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate and report; write nothing."),
    limit: int = typer.Option(None, min=0, max=10**12, help="Only the first N records of each file."),
    symbol: str = typer.Option(None, help="Only the records of this symbol (input or raw symbol, or id)."),
    schema: str = typer.Option(None, help="Store as this schema (ohlcv-5m / ohlcv-15m from a 1m file)."),
    force: bool = typer.Option(False, "--force", help="Ingest even if the same file was ingested before."),
    as_json: bool = typer.Option(False, "--json", help="Print the summaries as JSON."),
) -> None:
    """Ingest downloaded Databento DBN files (any supported schema, DBN v1..v3), audited in data_ingest_runs."""
    from hdi_assets.vendor_schema_jobs.ingest import IngestSummary, find_dbn_files, ingest_dbn_file

    if limit is not None and limit < 0:
        raise HdiError(f"--limit must be >= 0, got {limit}")
    files = find_dbn_files(paths)
    if not files:
        raise HdiError(f"no .dbn or .dbn.zst files in {', '.join(map(str, paths))}")
    db = None
    if not dry_run:
        from hdi_resources.db import get_database

        db = get_database()
    results: list[IngestSummary] = []
    failed = 0
    for path in files:
        try:
            summary = ingest_dbn_file(db, path, dry_run=dry_run, limit=limit, symbol=symbol, schema=schema,
                                      force=force)
        except HdiError as exc:
            failed += 1
            summary = IngestSummary(source=str(path), schema=schema or "?", target_table="", status="failed",
                                    error=str(exc).removeprefix(f"{path}: "))
        results.append(summary)
        if not as_json:
            typer.echo(summary.line())
    if as_json:
        typer.echo(json.dumps([s.as_metadata() for s in results], indent=2))
    else:
        ok = [s for s in results if s.status != "failed"]
        stored = sum(s.stored for s in ok)
        quarantined = sum(s.quarantined for s in ok)
        skipped = sum(1 for s in ok if s.status == "skipped")
        verb = "would store" if dry_run else "stored"
        typer.echo(f"summary: {len(files)} file(s), {failed} failed, {skipped} already ingested; "
                   f"{verb} {stored:,} rows, quarantined {quarantined:,}")
    if failed:
        raise typer.Exit(1)
