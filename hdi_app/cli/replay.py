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


@replay_app.command("live")
def live(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0 = any free port).")] = 0,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic market.")] = 7,
    ticks_per_session: Annotated[
        int | None, typer.Option(help="Synthetic trades per instrument and session.")
    ] = None,
    at: Annotated[
        str | None,
        typer.Option(help="Market time the replay clock starts at (ISO, UTC). Default: a recent ES session's open."),
    ] = None,
    speed: Annotated[str, typer.Option(help="Replay speed: 1 = real time, 60 = a minute a second, or 'max'.")] = "1",
    faults: Annotated[
        str | None,
        typer.Option(help='Faults, e.g. "drop_after=5000", "stall_at=2024-03-05T15:00,stall_s=5", '
                          '"send_buffer_kb=256,slow_reader_s=2" (see hdi_gateway/live/faults.py).'),
    ] = None,
    control: Annotated[
        Path | None, typer.Option(help="Fault control file: its fault spec applies whenever it changes.")
    ] = None,
    key: Annotated[
        list[str] | None,
        typer.Option("--key", help="API key to accept (repeatable; env HDI_GATEWAY_KEYS). Default: db-local-key."),
    ] = None,
    pid_file: Annotated[Path | None, typer.Option(help="Write this process's pid here while it serves.")] = None,
    warm_up: Annotated[
        str | None, typer.Option(help="Schemas to produce before the clock starts, e.g. mbo,trades (a paced stream "
                                      "then starts smoothly).")
    ] = None,
    warm_up_hours: Annotated[float, typer.Option(help="Market hours from --at that --warm-up produces.")] = 1.0,
    warm_up_products: Annotated[
        str | None, typer.Option(help="Products --warm-up produces, e.g. ES,NQ (default: all).")
    ] = None,
) -> None:
    """Serve Databento's live protocol over TCP: print `export HDI_DATABENTO_LIVE=host:port`, serve until killed."""
    import numpy as np

    from hdi_core.errors import HdiError
    from hdi_gateway.live import default_at_ns, make_state, parse_speed, serve_forever
    from hdi_gateway.live import warm_up as produce_ahead
    from hdi_gateway.synthetic import SyntheticMarket

    market = (SyntheticMarket(seed=seed) if ticks_per_session is None
              else SyntheticMarket(seed=seed, ticks_per_session=ticks_per_session))
    if at is None:
        at_ns = default_at_ns(market)
    else:
        try:
            at_ns = int(np.datetime64(at.rstrip("Z"), "ns").astype(np.int64))
        except ValueError:
            raise HdiError(f"--at {at!r} is not an ISO time (e.g. 2024-03-05T14:30)") from None
    if warm_up:
        roots = [p.strip() for p in warm_up_products.split(",") if p.strip()] if warm_up_products else None
        produce_ahead(market, market.datasets()[0], [s.strip() for s in warm_up.split(",") if s.strip()], at_ns,
                      at_ns + int(warm_up_hours * 3600 * 1e9), roots)
    state = make_state(market, at_ns, parse_speed(speed), key, faults, control)  # the clock starts here
    serve_forever(state, host, port, announce=_announce, pid_file=pid_file)
