"""`hdi demo`: the whole graph on a fresh machine, with no API key and no database server."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import typer

from hdi_resources.settings import ENV_API_KEY, REPO_ROOT, hdi_home

DEMO_SYMBOLS = ("ES", "NQ")
DEMO_WINDOWS = ("2024-01-01", "2024-07-01")
DEMO_TICKS_PER_SESSION = 20_000
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def dagster_home() -> Path:
    """DAGSTER_HOME under HDI_HOME, holding the repo's dagster.yaml, so `dagster dev` shows the demo's runs."""
    home = hdi_home() / "dagster"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def demo(
    ticks_per_session: int = typer.Option(DEMO_TICKS_PER_SESSION, help="Synthetic trades per session per product."),
    symbols: list[str] = typer.Option(list(DEMO_SYMBOLS), "--symbol", help="Products to build."),
    windows: list[str] = typer.Option(list(DEMO_WINDOWS), "--window", help="Half-year windows to build."),
) -> None:
    """Start the gateway over the synthetic market and materialize the whole graph for two windows."""
    from hdi_resources.replay.server import start_gateway_process

    home = dagster_home()
    typer.echo(f"HDI demo: HDI_HOME={hdi_home()}  (synthetic market, {ticks_per_session:,} trades/session)")
    gateway = start_gateway_process(["--ticks-per-session", str(ticks_per_session)])
    try:
        os.environ.update(gateway.client_env())
        if not os.environ.get(ENV_API_KEY):
            # The local gateway accepts any key starting with "db-"; a real key is never needed here.
            os.environ[ENV_API_KEY] = "db-hdi-local-demo"
        typer.echo(f"gateway: {gateway.url} (pid {gateway.pid})")
        summary = run_pipeline(symbols, windows)
    finally:
        gateway.stop()
    print_summary(summary)
    typer.echo(f"\nOpen the UI on these runs:\n  DAGSTER_HOME={home} .venv/bin/dagster dev -m hdi_assets.definitions\n"
               "  (start `hdi replay serve` and export its lines first if you launch new runs from the UI)")


def run_pipeline(symbols: list[str], windows: list[str]) -> dict:
    from dagster import DagsterInstance, materialize

    from hdi_assets.definitions import PIPELINE_ASSETS, build_resources
    from hdi_assets.partitions import partition_key

    instance = DagsterInstance.get()
    resources = build_resources()
    summary: dict = {"partitions": [], "checks": {}}
    # Later windows first: backward adjustment of a window needs the rolls of every later window.
    steps = [(s, w) for s in symbols for w in sorted(windows, reverse=True)]
    for n, (symbol, window) in enumerate(steps, 1):
        started = time.monotonic()
        typer.echo(f"[{n}/{len(steps)}] {symbol} {window}: fetching, rolling, adjusting, resampling, checking ...")
        result = materialize(PIPELINE_ASSETS, partition_key=partition_key(symbol, window), instance=instance,
                             resources=resources, run_config=QUIET_RUN_CONFIG, raise_on_error=False,
                             tags={"hdi/demo": "true"})
        evaluations = result.get_asset_check_evaluations()
        passed = sum(e.passed for e in evaluations)
        meta = {str(m.asset_key.to_user_string()): {k: v.value for k, v in m.metadata.items()}
                for m in result.get_asset_materialization_events() for m in [m.materialization]}
        summary["partitions"].append({"symbol": symbol, "window": window, "ok": result.success, "meta": meta,
                                      "checks": (passed, len(evaluations))})
        state = "done" if result.success else "FAILED"
        typer.echo(f"      {state} in {time.monotonic() - started:.1f}s: {meta.get('raw_ticks', {}).get('rows', 0):,} "
                   f"ticks, {meta.get('ohlcv_1s', {}).get('bars', 0):,} 1s bars, checks {passed}/{len(evaluations)}")
        if not result.success:
            failed = [e for e in evaluations if not e.passed]
            for e in failed:
                typer.echo(f"      check failed: {e.asset_key.to_user_string()} {e.check_name}")
    return summary


def print_summary(summary: dict) -> None:
    typer.echo("\nWhat the demo made:")
    for part in summary["partitions"]:
        meta = part["meta"]
        counts = ", ".join(f"{asset}={info.get('rows', info.get('bars', info.get('rolls', '')))}"
                           for asset, info in meta.items())
        typer.echo(f"  {part['symbol']} {part['window']}: {counts}; checks passed {part['checks'][0]}/"
                   f"{part['checks'][1]}")
        table = meta.get("roll_events", {}).get("roll_table")
        if table:
            typer.echo("    " + str(table).replace("\n", "\n    "))
    failed = [p for p in summary["partitions"] if not p["ok"]]
    if failed:
        raise typer.Exit(1)
