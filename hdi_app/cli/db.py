"""`hdi db info|migrate|url|stop` and the top-level `hdi query` / `hdi stats` commands.

Wire-up (in cli/__init__.py): app.add_typer(db_app, name="db"); app.command("query")(query_command);
app.command("stats")(stats_command)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from hdi_core.errors import HdiError

db_app = typer.Typer(no_args_is_help=True,
                     help="The HDI database (embedded PostgreSQL unless HDI_DATABASE_URL).")


class OutputFormat(StrEnum):
    table = "table"
    csv = "csv"
    parquet = "parquet"
    json = "json"


@contextmanager
def _database() -> Iterator[Any]:
    """A Database for one command; an embedded server this command had to start is stopped afterwards."""
    from hdi_resources.db import Database

    db = Database()
    try:
        yield db
    finally:
        db.close(stop_if_started=True)


def _json_default(value: Any) -> Any:
    return str(value)


@db_app.command("info")
def info_command() -> None:
    """Storage mode, server version, URL (password hidden) and table row counts."""
    with _database() as db:
        info = db.info()
    typer.echo(f"mode:            {info['mode']}"
               + (f" (timescaledb {info['timescaledb_version']})" if info["timescaledb_version"] else ""))
    typer.echo(f"server:          {info['server']} PostgreSQL {info['server_version']}"
               + (f", pid {info['server_pid']}" if info["server_pid"] else ""))
    typer.echo(f"url:             {info['url']}")
    migrations = info["migrations"]
    typer.echo(f"migrations:      {migrations['applied']} applied, latest {migrations['latest']}")
    typer.echo("rows:")
    for table, count in info["row_counts"].items():
        typer.echo(f"  {table:<18} {count:>14,}")
    if info.get("compression"):
        typer.echo("compression (TimescaleDB columnstore):")
    for table, size in info.get("compression", {}).items():
        typer.echo(f"  {table:<18} {size['compressed_chunks']}/{size['chunks']} chunks compressed, "
                   f"{_mib(size['before_compression_bytes'])} -> {_mib(size['after_compression_bytes'])} "
                   f"compressed; table total {_mib(size['total_bytes'])}")


def _mib(n_bytes: int) -> str:
    return f"{n_bytes / 2**20:,.1f} MiB"


@db_app.command("migrate")
def migrate_command() -> None:
    """Apply pending migrations (idempotent; concurrent runs wait for each other)."""
    with _database() as db:
        applied = db.migrate()
    typer.echo("applied: " + ", ".join(applied) if applied else "database is up to date")


@db_app.command("url")
def url_command(
    dagster: Annotated[bool, typer.Option(help="the dagster-postgres storage URL")] = False,
) -> None:
    """Print the connection URL with the password hidden."""
    from hdi_resources.settings import redact

    with _database() as db:
        typer.echo(redact(db.dagster_url()) if dagster else db.describe())


@db_app.command("stop")
def stop_command() -> None:
    """Stop the embedded PostgreSQL server of this HDI_HOME, if one is running."""
    from hdi_resources.db import stop_embedded_server

    pid = stop_embedded_server()
    typer.echo(f"stopped embedded PostgreSQL (pid {pid})" if pid else "no embedded PostgreSQL running")


def query_command(
    symbol: Annotated[str, typer.Option(help="ES (root), ES.v.0 (continuous), ESH4 / id (--raw)")],
    schema: Annotated[str, typer.Option(help="ohlcv-1s|ohlcv-1m|ohlcv-5m|ohlcv-15m|ohlcv-1h|ohlcv-1d|"
                                             "trades|tbbo|statistics|definitions")],
    start: Annotated[str | None, typer.Option(help="inclusive, ISO date or timestamp (UTC)")] = None,
    end: Annotated[str | None, typer.Option(help="exclusive, ISO date or timestamp (UTC)")] = None,
    raw: Annotated[bool, typer.Option("--raw", help="vendor ohlcv_data instead of continuous bars")] = False,
    output_format: Annotated[OutputFormat, typer.Option("--format")] = OutputFormat.table,
    output: Annotated[Path | None, typer.Option(help="write to this file instead of stdout")] = None,
    limit: Annotated[int | None, typer.Option(help="at most this many rows")] = None,
) -> None:
    """Read stored rows of one symbol and schema."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    with _database() as db:
        table = db.query(symbol, schema, start, end, raw=raw, limit=limit)
    if output_format is OutputFormat.parquet:
        if output is None:
            raise HdiError("--format parquet needs --output FILE")
        pq.write_table(table, output)
    elif output_format is OutputFormat.csv:
        pacsv.write_csv(table, str(output) if output else sys.stdout.buffer)
    elif output_format is OutputFormat.json:
        text = json.dumps(table.to_pylist(), default=_json_default)
        if output:
            output.write_text(text + "\n")
        else:
            typer.echo(text)
    else:
        import pandas as pd

        with pd.option_context("display.max_rows", 40, "display.width", 200, "display.max_columns", 20):
            text = table.to_pandas().to_string(max_rows=40) if table.num_rows else "(no rows)"
        if output:
            output.write_text(text + "\n")
        else:
            typer.echo(text)
    if output:
        typer.echo(f"wrote {table.num_rows:,} rows to {output}", err=True)


def stats_command(
    symbol: Annotated[str, typer.Option(help="ES (root) or ES.v.0; raw symbol for vendor schemas")],
    schema: Annotated[str, typer.Option(help="ohlcv-1m etc., or trades|tbbo|statistics|definitions")],
    raw: Annotated[bool, typer.Option("--raw", help="vendor ohlcv_data instead of continuous bars")] = False,
) -> None:
    """Row count, time range and latest close of one symbol and schema, as JSON."""
    with _database() as db:
        result = db.stats(symbol, schema, raw=raw)
    typer.echo(json.dumps(result, indent=2, default=_json_default))
