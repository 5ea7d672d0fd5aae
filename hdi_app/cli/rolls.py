"""`hdi rolls`: the roll events of a product, a continuous symbol or a contract, as a first-class read."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .output import OutputFormat, PriceMode, TimeZoneName, database, write_table

SYMBOL_HELP = "ES (every series of the root), ES.v.0, or a contract (ESU4)"


def rolls_command(
    symbol: Annotated[str, typer.Option(metavar="SYMBOL", help=SYMBOL_HELP)],
    start: Annotated[str | None, typer.Option(metavar="DATE|TIME", help="inclusive switch time or date")] = None,
    end: Annotated[str | None, typer.Option(metavar="DATE|TIME", help="exclusive switch time or date")] = None,
    tz: Annotated[TimeZoneName, typer.Option(help="zone of times without an offset")] = TimeZoneName.utc,
    prices: Annotated[PriceMode, typer.Option(help="exact decimals, floats, or int64 fixed point (1e-9)")] =
    PriceMode.decimal,
    output_format: Annotated[OutputFormat, typer.Option("--format", help="table, csv, json or parquet")] =
    OutputFormat.table,
    output: Annotated[Path | None, typer.Option(metavar="FILE", help="write to this file instead of stdout")] = None,
) -> None:
    """Roll switches: the time in UTC and exchange time (America/Chicago), trade date, both prices, gap, method."""
    from hdi_resources.db.read import rolls

    with database() as db:
        table = rolls(db, symbol, start, end, tz=tz.value, prices=prices.value)
    write_table(table, output_format, output)
