"""`hdi plot`: a picture of a continuous series with its rolls and raw contracts, as a PNG (matplotlib) or one
standalone interactive HTML file (the bundled lightweight-charts inlined; opens without a server)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hdi_core.errors import HdiError

from .output import database

FORMATS = (".png", ".html")


def plot_command(
    symbol: Annotated[str, typer.Option(metavar="SYMBOL", help="a product (ES) or a continuous series (ES.v.0)")],
    start: Annotated[str | None, typer.Option(metavar="DATE", help="first trade date (inclusive)")] = None,
    end: Annotated[str | None, typer.Option(metavar="DATE", help="last trade date (exclusive)")] = None,
    bars: Annotated[str | None, typer.Option(metavar="1m|5m|15m|1h|1d",
                                             help="bar size; by default 1m up to 3 weeks, 1h up to a year")] = None,
    output: Annotated[Path | None, typer.Option(metavar="FILE.png|FILE.html",
                                                help="where to write; default SYMBOL_START_END.png here")] = None,
) -> None:
    """Back-adjusted closes (or candles in HTML) with each roll marked and every raw contract overlaid, shifted by
    the later rolls' gaps so the adjusted line sits on each contract."""
    from hdi_app.api import chart

    target = output or Path(f"{symbol}_{start or 'first'}_{end or 'last'}.png".replace("/", "-"))
    if target.suffix.lower() not in FORMATS:
        raise HdiError(f"--output {target.name!r}: name a .png or an .html file")
    with database() as db:
        data = chart.chart_data(db, symbol, start, end, bars)
    if target.suffix.lower() == ".png":
        target.write_bytes(chart.png(data))
    else:
        target.write_text(chart.page_html(data), encoding="utf-8")
    raws = ", ".join(f"{c.symbol} ({c.source})" for c in data.contracts) or "none"
    typer.echo(f"wrote {target} ({target.stat().st_size:,} bytes): {data.symbol} {data.bars}, {len(data.ts_ns):,} "
               f"bars, {len(data.rolls)} roll(s), raw contracts {raws}")
