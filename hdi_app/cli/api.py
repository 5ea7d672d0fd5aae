"""`hdi api serve`: the read-only stats HTTP API for dashboards."""

import ipaddress
import signal

import typer

api_app = typer.Typer(no_args_is_help=True, help="The read-only market-data HTTP API.")


@api_app.command("serve")
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on (loopback by default)."),
    port: int = typer.Option(8765, help="Port to listen on."),
) -> None:
    """Serve /api/market-data/{symbol}/{schema}/stats and /bars, /api/market-data/{symbol}/rolls and /api/symbols
    (JSON, read-only) until interrupted; Ctrl-C also stops an embedded PostgreSQL this command started."""
    from hdi_app.api.server import make_server

    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        typer.echo(f"warning: listening on {host}, not loopback: anyone who reaches it can read the data", err=True)
    from hdi_resources.db import Database

    db = Database()  # this command's own: an embedded server it had to start is stopped when it ends
    if db.started_here:
        typer.echo("started the embedded PostgreSQL; it stops with this server", err=True)
    db.ensure_migrated()
    server = make_server(db, host, port)
    bound_host, bound_port = server.server_address[:2]
    typer.echo(f"serving http://{bound_host}:{bound_port}/api/market-data/{{symbol}}/{{schema}}/stats (Ctrl-C stops)")
    def _interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM stops it like Ctrl-C, embedded server included

    signal.signal(signal.SIGTERM, _interrupt)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        typer.echo("stopping", err=True)
    finally:
        server.server_close()
        db.close(stop_if_started=True)  # Ctrl-C must not leave an embedded PostgreSQL behind
