"""`hdi replay ...`: the local Databento-compatible gateway."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

replay_app = typer.Typer(no_args_is_help=True, help="The local Databento-compatible gateway.")


@replay_app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0 = any free port).")] = 0,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic market.")] = 7,
    data: Annotated[Path | None, typer.Option(help="Serve the DBN files below this folder instead.")] = None,
    faults: Annotated[
        str | None, typer.Option(help='Inject faults, e.g. "429=0.2,500=0.05,reset=0.1,seed=3".')
    ] = None,
    ticks_per_session: Annotated[
        int | None, typer.Option(help="Synthetic trades per instrument and session.")
    ] = None,
    key: Annotated[
        list[str] | None,
        typer.Option(
            "--key",
            help="API key to accept (repeatable; env "
            "HDI_GATEWAY_KEYS). Default: any key starting with 'db-'.",
        ),
    ] = None,
) -> None:
    """Serve Databento's Historical API over HTTPS: print the client export lines, serve until killed."""
    from hdi_gateway.faults import parse_fault_spec
    from hdi_gateway.server import accepted_keys_from_env, serve_forever

    plan = parse_fault_spec(faults)
    if data is not None:
        from hdi_gateway.files import FileSource

        source = FileSource(data)
    else:
        from hdi_gateway.synthetic import SyntheticMarket

        source = (
            SyntheticMarket(seed=seed)
            if ticks_per_session is None
            else SyntheticMarket(seed=seed, ticks_per_session=ticks_per_session)
        )
    serve_forever(source, host, port, plan, accepted_keys_from_env(key), announce=_announce)


def _announce(line: str) -> None:
    """Print and flush at once: scripts wait for these lines before they connect."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
