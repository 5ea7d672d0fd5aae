"""The `hdi` command. Sub-commands live beside this file, one module per area; heavy imports stay inside
commands so `hdi --help` is instant."""

from __future__ import annotations

import logging
import sys
import traceback

import click
import typer

from hdi_core.errors import HdiError
from hdi_resources.settings import hdi_home, redact

from .api import api_app
from .db import db_app, query_command, stats_command
from .demo import demo
from .doctor import doctor
from .ingest import ingest, ingest_file
from .live import live_app
from .plot import plot_command
from .replay import replay_app
from .rolls import rolls_command

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,  # plain help: no boxes, no `<bool>` type column
    help="HDI: Databento market data, fetched once, rolled, checked, stored.",
)
# short_help: the command list shows these whole (click cuts a docstring's first line to the terminal width)
app.add_typer(replay_app, name="replay", short_help="the local Databento-compatible gateway")
app.add_typer(db_app, name="db", short_help="the database: start, stop, info, migrate, url, catalog")
app.add_typer(api_app, name="api", short_help="the read-only market-data HTTP API")
app.add_typer(live_app, name="live", short_help="live capture of Databento's feed: capture, status")
app.command("query", short_help="read stored rows of one symbol and schema")(query_command)
app.command("stats", short_help="row count, time range and latest close (JSON)")(stats_command)
app.command("rolls", short_help="roll switches: UTC and exchange time, trade date, prices, gap")(rolls_command)
app.command("plot", short_help="a chart of a series: rolls marked, raw contracts overlaid (PNG or HTML)")(plot_command)
app.command(short_help="the whole graph on the synthetic market, end to end")(demo)
app.command(short_help="find and remove what killed writes and downloads left behind")(doctor)
app.command("ingest", short_help="pull Databento data into the vendor tables")(ingest)
app.command("ingest-file", short_help="ingest downloaded DBN files")(ingest_file)


def main() -> None:
    """Entry point: user errors print one redacted line; the stack trace goes to the log file only."""
    log_dir = hdi_home() / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        filename=log_dir / "hdi.log",
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    try:
        code = app(standalone_mode=False, prog_name="hdi")
        if isinstance(code, int) and code:
            sys.exit(code)
    except HdiError as exc:
        logging.getLogger("hdi").error(redact(traceback.format_exc()))
        typer.echo(f"error: {redact(str(exc))}", err=True)
        sys.exit(1)
    except click.ClickException as exc:  # usage errors: click's own one-line message
        exc.show()
        sys.exit(exc.exit_code)
    except typer.TyperException as exc:  # typer's own (vendored) click: a usage error, one plain line
        message = exc.format_message().replace("Value error, ", "").splitlines()[0]  # typer's validator wording
        typer.echo(f"error: {message} (see --help)", err=True)
        sys.exit(getattr(exc, "exit_code", 2))
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("aborted", err=True)
        sys.exit(130)
    except Exception as exc:  # unexpected: still one line for the user, full trace in the log
        logging.getLogger("hdi").error(redact(traceback.format_exc()))
        typer.echo(
            f"error: {redact(type(exc).__name__ + ': ' + str(exc))} (details in {log_dir / 'hdi.log'})",
            err=True,
        )
        sys.exit(1)
