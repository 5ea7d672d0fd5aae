"""`hdi db start|stop|info|migrate|url|catalog` and the top-level `hdi query` / `hdi stats` commands, all
through the one read layer (hdi_resources.db.read) the HTTP API uses too.

Wire-up (in cli/__init__.py): app.add_typer(db_app, name="db"); app.command("query")(query_command);
app.command("stats")(stats_command)."""

from __future__ import annotations

import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated

import typer

from .output import OutputFormat, PriceMode, TimeZoneName, database, write_table

db_app = typer.Typer(no_args_is_help=True,
                     help="The HDI database (embedded PostgreSQL unless HDI_DATABASE_URL).")

MAX_LIMIT = 1_000_000_000
SCHEMA_HELP = ("ohlcv-1s, ohlcv-1m, ohlcv-5m, ohlcv-15m, ohlcv-1h, ohlcv-1d (continuous bars; a contract's own "
               "with a raw symbol), trades, tbbo, statistics, definitions; order flow: delta-1s..delta-1d, "
               "footprint-1m, profile, absorption, icebergs")
SYMBOL_HELP = "ES (root), ES.v.0 (continuous), ESU4 (raw symbol) or an instrument id"
START_HELP = "inclusive; a date selects trade dates (sessions) of bars"
RAW_HELP = "a product root's contracts' own bars, not the continuous series"
ADJUSTMENT_HELP = "continuous adjustment method (default: the stored one)"
PRICES_HELP = "exact decimals, floats, or int64 fixed point (1e-9)"
ALL_HELP = "allow a tick or 1s read of over a million rows"


@db_app.command("info", short_help="mode, server, URL (password hidden), row counts")
def info_command() -> None:
    """Storage mode, server version, URL (password hidden) and table row counts."""
    with database() as db:
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
        if not size["chunks"]:  # a vendor table never loaded: no chunks to report on
            typer.echo(f"  {table:<18} no chunks")
            continue
        typer.echo(f"  {table:<18} {size['compressed_chunks']}/{size['chunks']} chunks compressed, "
                   f"{_mib(size['before_compression_bytes'])} -> {_mib(size['after_compression_bytes'])} "
                   f"compressed; table total {_mib(size['total_bytes'])}")


def _mib(n_bytes: int) -> str:
    return f"{n_bytes / 2**20:,.1f} MiB"


@db_app.command("migrate", short_help="apply pending migrations")
def migrate_command() -> None:
    """Apply pending migrations (idempotent; concurrent runs wait for each other)."""
    with database() as db:
        applied = db.migrate()
    typer.echo("applied: " + ", ".join(applied) if applied else "database is up to date")


@db_app.command("url", short_help="the connection URL, password hidden")
def url_command(
    dagster: Annotated[bool, typer.Option(metavar="", help="the dagster-postgres storage URL")] = False,
) -> None:
    """Print the connection URL with the password hidden."""
    from hdi_resources.settings import redact

    with database() as db:
        typer.echo(redact(db.dagster_url()) if dagster else db.describe())


@db_app.command("start", short_help="start the embedded PostgreSQL and leave it running")
def start_command() -> None:
    """Start the embedded PostgreSQL of this HDI_HOME and leave it running, so commands skip the start-up."""
    import os

    from hdi_resources.db import ensure_embedded_server
    from hdi_resources.db.server import postgres_root, read_postmaster
    from hdi_resources.settings import ENV_DATABASE_URL

    if os.environ.get(ENV_DATABASE_URL):
        typer.echo(f"{ENV_DATABASE_URL} is set: the database is external, nothing to start")
        return
    was = read_postmaster(postgres_root() / "data")
    running = ensure_embedded_server()
    typer.echo(f"embedded PostgreSQL {'already ' if was else ''}running (pid {running.pid}); "
               "`hdi db stop` stops it")


@db_app.command("catalog", short_help="rebuild the symbol catalogue")
def catalog_command() -> None:
    """Rebuild the symbol catalogue from the stored tables (the loads keep it current; this repairs it)."""
    from hdi_resources.db.catalog import refresh_catalog

    with database() as db:
        db.ensure_migrated()
        count = refresh_catalog(db)
    typer.echo(f"symbol catalogue: {count} series")


@db_app.command("stop", short_help="stop the embedded PostgreSQL")
def stop_command() -> None:
    """Stop the embedded PostgreSQL server of this HDI_HOME, if one is running."""
    from hdi_resources.db import stop_embedded_server

    pid = stop_embedded_server()
    typer.echo(f"stopped embedded PostgreSQL (pid {pid})" if pid else "no embedded PostgreSQL running")


def query_command(
    symbol: Annotated[str, typer.Option(metavar="SYMBOL", help=SYMBOL_HELP)],
    schema: Annotated[str, typer.Option(metavar="SCHEMA", help=SCHEMA_HELP)],
    start: Annotated[str | None, typer.Option(metavar="DATE|TIME", help=START_HELP)] = None,
    end: Annotated[str | None, typer.Option(metavar="DATE|TIME", help="exclusive; ISO date or timestamp")] = None,
    tz: Annotated[TimeZoneName, typer.Option(help="zone of times without an offset, and of the output")] =
    TimeZoneName.utc,
    raw: Annotated[bool, typer.Option("--raw", metavar="", help=RAW_HELP)] = False,
    adjustment: Annotated[str | None, typer.Option(metavar="METHOD", help=ADJUSTMENT_HELP)] = None,
    prices: Annotated[PriceMode, typer.Option(help=PRICES_HELP)] = PriceMode.decimal,
    output_format: Annotated[OutputFormat, typer.Option("--format", help="table, csv, json or parquet")] =
    OutputFormat.table,
    output: Annotated[Path | None, typer.Option(metavar="FILE", help="write to this file instead of stdout")] = None,
    limit: Annotated[int | None, typer.Option(min=1, max=MAX_LIMIT, metavar="N", help="at most this many rows")] =
    None,
    read_all: Annotated[bool, typer.Option("--all", metavar="", help=ALL_HELP)] = False,
) -> None:
    """Read stored rows of one symbol and schema (half-open range; errors say what is stored)."""
    from hdi_resources.db.orderflow import ORDERFLOW_SCHEMAS, query_orderflow
    from hdi_resources.db.read import query, stream_csv

    if schema.strip().lower() in ORDERFLOW_SCHEMAS:  # order flow (delta-1m, footprint-1m, profile, ...)
        with database() as db:
            table = query_orderflow(db, symbol, schema, start, end, limit=limit, tz=tz.value, prices=prices.value,
                                    max_rows=None if read_all else GUARD_ROWS)
        write_table(table, output_format, output)
        return

    options = {"raw": raw, "adjustment_method": adjustment, "limit": limit, "tz": tz.value, "prices": prices.value,
               "max_rows": None if read_all else GUARD_ROWS}
    with database() as db:
        if output_format is OutputFormat.csv:  # streamed as the server sends it: constant memory at any size
            with open(output, "wb") if output else nullcontext(sys.stdout.buffer) as sink:
                rows = stream_csv(db, sink, symbol, schema, start, end, **options)
                sink.flush()
            typer.echo(f"{rows:,} rows" + (f" to {output}" if output else ""), err=True)
            return
        table = query(db, symbol, schema, start, end, **options)
    write_table(table, output_format, output)


def stats_command(
    symbol: Annotated[str, typer.Option(metavar="SYMBOL", help=SYMBOL_HELP)],
    schema: Annotated[str, typer.Option(metavar="SCHEMA", help=SCHEMA_HELP)],
    raw: Annotated[bool, typer.Option("--raw", metavar="", help=RAW_HELP)] = False,
) -> None:
    """Row count, time range and latest close of one symbol and schema, as JSON."""
    from hdi_app.api.jsonout import dumps
    from hdi_resources.db.read import stats

    with database() as db:
        result = stats(db, symbol, schema, raw=raw)
    typer.echo(dumps(result))


GUARD_ROWS = 1_000_000  # the read layer's guard (hdi_resources.db.read.GUARD_ROWS), here to keep --help fast
