"""How read commands print Arrow tables: table, CSV, JSON (exact numbers) or Parquet; the database a command
uses (the running embedded server, or one started for this command only, said on stderr)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer

from hdi_core.errors import HdiError


class OutputFormat(StrEnum):
    table = "table"
    csv = "csv"
    parquet = "parquet"
    json = "json"


class TimeZoneName(StrEnum):
    utc = "utc"
    exchange = "exchange"


class PriceMode(StrEnum):
    decimal = "decimal"
    float = "float"
    fixed = "fixed"


@contextmanager
def database() -> Iterator[Any]:
    """A Database for one command. With no server running, one is started for this command, said on stderr,
    and stopped afterwards (`hdi db start` keeps one running between commands)."""
    from hdi_resources.db import Database
    from hdi_resources.db.server import postgres_root, read_postmaster
    from hdi_resources.settings import ENV_DATABASE_URL

    if not os.environ.get(ENV_DATABASE_URL) and read_postmaster(postgres_root() / "data") is None:
        typer.echo("starting the embedded PostgreSQL for this command (`hdi db start` keeps one running)",
                   err=True)
    db = Database()
    try:
        yield db
    finally:
        db.close(stop_if_started=True)


def _plain_decimals(table: Any) -> Any:
    """decimal128(38, 9) columns at the smallest scale that keeps every value exact (5932.25, not
    5932.250000000): still numbers, so CSV leaves them unquoted."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for i, field in enumerate(table.schema):
        if pa.types.is_decimal(field.type):
            for scale in range(field.type.scale + 1):
                try:  # a safe cast refuses to drop a digit
                    column = pc.cast(table.column(i), pa.decimal128(field.type.precision, scale), safe=True)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    continue
                table = table.set_column(i, field.name, column)
                break
    return table


def write_table(table: Any, output_format: OutputFormat, output: Path | None) -> None:
    """Print or write the rows; the row count goes to stderr so stdout stays data."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if output_format is OutputFormat.parquet:
        if output is None:
            raise HdiError("--format parquet needs --output FILE")
        pq.write_table(table, output)
    elif output_format is OutputFormat.csv:
        pacsv.write_csv(_plain_decimals(table), str(output) if output else sys.stdout.buffer)
        sys.stdout.flush()
    elif output_format is OutputFormat.json:
        from hdi_app.api.jsonout import table_json

        text = table_json(table)
        if output:
            output.write_text(text + "\n")
        else:
            typer.echo(text)
    else:
        import pandas as pd

        shown = table.drop_columns([c for c in ("loaded_at", "window") if c in table.column_names])  # bookkeeping
        with pd.option_context("display.max_rows", 40, "display.width", 200, "display.max_columns", 30):
            text = _plain_decimals(shown).to_pandas().to_string(max_rows=40, index=False) if table.num_rows \
                else "(no rows)"
        if output:
            output.write_text(text + "\n")
        else:
            typer.echo(text)
    where = f" to {output}" if output else ""
    typer.echo(f"{table.num_rows:,} rows{where}", err=True)
