"""`hdi api serve`: the read-only stats HTTP API for dashboards."""

import typer

api_app = typer.Typer(no_args_is_help=True, help="The read-only market-data HTTP API.")
