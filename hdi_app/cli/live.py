"""`hdi live capture` (the long-running capture service) and `hdi live status` (its health, non-zero when
stalled or not running)."""

from __future__ import annotations

import datetime as dt
import gc
import json
import logging
import signal
import sys
import time
from typing import Annotated

import typer

live_app = typer.Typer(no_args_is_help=True, help="Live capture of Databento's feed into the lake and tables.")


def _time_ns(text: str | None, name: str) -> int | None:
    import numpy as np

    from hdi_core.errors import HdiError

    if text is None or not text.strip():
        return None
    if text.strip().isdigit():
        return int(text)
    try:
        return int(np.datetime64(text.strip().rstrip("Z"), "ns").astype(np.int64))
    except ValueError:
        raise HdiError(f"--{name} {text!r} is neither ns since the epoch nor an ISO time (UTC)") from None


def _list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


@live_app.command("capture")
def capture(
    products: Annotated[str, typer.Option(help="Products of configs/symbols.yaml, comma-separated.")] = "ES",
    schemas: Annotated[str, typer.Option(help="Schemas: trades, tbbo (or mbp-1), mbp-10, mbo.")] = "trades",
    gateway: Annotated[str | None, typer.Option(help="host:port of a live gateway (env HDI_DATABENTO_LIVE); "
                                                     "unset: Databento's own.")] = None,
    start: Annotated[str | None, typer.Option(help="Replay from this time first (ISO UTC or ns; intraday "
                                                   "replay). Default: from now.")] = None,
    end: Annotated[str | None, typer.Option(help="Stop when the market clock reaches this time, closing the "
                                                 "bars and compacting the lake (ISO UTC or ns).")] = None,
    metrics_port: Annotated[int, typer.Option(help="Port of GET /metrics on 127.0.0.1 (0: any free one).")] = 0,
    stall_after: Annotated[float, typer.Option(help="Seconds without a record or heartbeat that make the feed "
                                                    "STALLED.")] = 15.0,
    flush_interval: Annotated[float, typer.Option(help="Seconds between lake chunk files.")] = 2.0,
    no_database: Annotated[bool, typer.Option("--no-database", help="Lake only: no bars in PostgreSQL.")] = False,
) -> None:
    """Capture live records into today's lake partitions and 1 s bars into PostgreSQL (with NOTIFY for the
    API's /live/bars push), reconnecting and filling gaps, until SIGTERM or Ctrl-C."""
    from hdi_app.live.health import Health, MetricsServer, claim_pid_file, release_pid_file
    from hdi_app.live.service import CaptureConfig, CaptureService

    logging.getLogger("hdi").setLevel(logging.INFO)
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.getLogger("hdi").addHandler(console)
    config = CaptureConfig(products=_list(products), schemas=_list(schemas), gateway=gateway,
                           start_ns=_time_ns(start, "start"), end_ns=_time_ns(end, "end"),
                           flush_interval_s=flush_interval, stall_after_s=stall_after)
    pid_file = claim_pid_file()
    db = None
    metrics = None
    try:
        if not no_database:
            from hdi_resources.db import Database

            db = Database()
            db.ensure_migrated()
        service = CaptureService(config, db)
        _hook_order_flow(service, db)
        metrics = MetricsServer(service.health, metrics_port)
        service.health.metrics_url = metrics.url
        typer.echo(f"capturing {', '.join(service.symbols.values())} ({', '.join(config.schemas)}) from "
                   f"{service.feed.where}; metrics {metrics.url}; SIGTERM or Ctrl-C stops", err=True)

        def _stop(_signum: int, _frame: object) -> None:
            service.stop()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        gc.freeze()  # the libraries' objects, loaded once, leave the collector: no long full collections mid-stream
        service.run()
        h: Health = service.health
        typer.echo(f"stopped: {h.messages} records, {h.reconnects} reconnects, {h.duplicates_dropped} replayed "
                   f"duplicates dropped, {h.bars_published} bar updates, {h.lake_files} lake files", err=True)
    finally:
        if metrics is not None:
            metrics.stop()
        if db is not None:
            db.close(stop_if_started=True)
        release_pid_file(pid_file)


def _hook_order_flow(service: object, db: object) -> None:
    """Order flow on the stream (hdi_app/live/orderflow.py): every measure, published as results close."""
    from hdi_app.live.orderflow import attach

    attach(service, db)  # type: ignore[arg-type]


@live_app.command("status")
def status(as_json: Annotated[bool, typer.Option("--json", help="The whole status as JSON.")] = False) -> None:
    """The capture's state, lag, message rate, last record time and reconnects; exit 2 when STALLED, 1 when
    no capture is running."""
    from hdi_app.live.health import judge, read_status

    doc = read_status()
    if doc is None:
        typer.echo("no live capture has run here (start one with `hdi live capture`)", err=True)
        raise typer.Exit(1)
    state, code = judge(doc)
    doc["judged_state"] = state
    if as_json:
        typer.echo(json.dumps(doc, indent=1))
        raise typer.Exit(code)
    last = doc.get("last_ts_recv_ns")
    last_text = dt.datetime.fromtimestamp(last / 1e9, dt.UTC).isoformat() if last else "none yet"
    silent = time.time() - float(doc.get("last_data_at") or doc.get("started_at") or 0)
    lag = doc.get("lag_s")
    typer.echo(f"state        {state}\n"
               f"gateway      {doc.get('gateway')}\n"
               f"products     {', '.join(doc.get('products') or [])} ({', '.join(doc.get('schemas') or [])})\n"
               f"last record  {last_text} (market time); {silent:.1f} s since the last record or heartbeat\n"
               f"lag          {'unknown' if lag is None else f'{lag:.3f} s'}\n"
               f"rate         {doc.get('message_rate', 0):.0f} records/s ({doc.get('messages', 0)} in all)\n"
               f"reconnects   {doc.get('reconnects', 0)} (replayed duplicates dropped: "
               f"{doc.get('duplicates_dropped', 0)})\n"
               f"metrics      {doc.get('metrics_url')}")
    if state == "STALLED":
        typer.echo(f"ALERT: the live feed is stalled (no record or heartbeat for over {doc.get('stall_after_s')} s)",
                   err=True)
    raise typer.Exit(code)
