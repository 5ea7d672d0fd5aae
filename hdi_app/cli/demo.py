"""`hdi demo`: the whole graph on a fresh machine, with no API key and no database server."""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path

import typer

from hdi_resources.settings import ENV_API_KEY, hdi_home

DEMO_SYMBOLS = ("ES", "NQ", "GC", "ZB", "ZC")  # the five products of seed 000
DEMO_WINDOWS = ("2024-01-01", "2024-07-01")
# By default: ES and NQ over both windows (rolls across a window edge), the others over the later one (~5 min).
DEMO_PLAN = (("ES", DEMO_WINDOWS), ("NQ", DEMO_WINDOWS), ("GC", DEMO_WINDOWS[1:]), ("ZB", DEMO_WINDOWS[1:]),
             ("ZC", DEMO_WINDOWS[1:]))
DEMO_TICKS_PER_SESSION = 20_000
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def dagster_home() -> Path:
    """DAGSTER_HOME under HDI_HOME with the rendered instance config, so `dagster dev` shows the demo's runs."""
    from hdi_resources.instance import prepare_dagster_home

    return prepare_dagster_home()


def demo(
    ticks_per_session: int = typer.Option(
        DEMO_TICKS_PER_SESSION, help="Synthetic trades per session per product."
    ),
    symbols: list[str] = typer.Option([], "--symbol", help="Products to build (default: all five)."),
    windows: list[str] = typer.Option([], "--window", help="Half-year windows to build (default: ES and NQ "
                                      "2024-01-01 and 2024-07-01, the others 2024-07-01)."),
) -> None:
    """Start the gateway over the synthetic market and materialize the whole graph, checks and loads included."""
    from hdi_gateway.server import start_gateway_process
    from hdi_resources.db.server import stop_embedded_server

    warnings.filterwarnings("ignore", module="dagster")
    warnings.filterwarnings("ignore", message=".*(preview|beta).*")
    home = dagster_home()
    typer.echo(
        f"HDI demo: HDI_HOME={hdi_home()}  (synthetic CME market, {ticks_per_session:,} trades/session)"
    )
    gateway = start_gateway_process(["--ticks-per-session", str(ticks_per_session)])
    try:
        os.environ.update(gateway.client_env())
        if not os.environ.get(ENV_API_KEY):
            # The local gateway accepts any key starting with "db-"; a real key is never needed here.
            os.environ[ENV_API_KEY] = "db-hdi-local-demo"
        typer.echo(f"gateway: {gateway.url} (pid {gateway.pid})")
        plan = [(s, tuple(windows) or dict(DEMO_PLAN).get(s, DEMO_WINDOWS)) for s in symbols or DEMO_SYMBOLS]
        partitions = run_pipeline(plan)
        print_summary(partitions)
    finally:
        gateway.stop()
        stop_embedded_server()
    typer.echo(
        f"\nOpen the UI on these runs:\n  DAGSTER_HOME={home} .venv/bin/dagster dev -m hdi_assets.definitions\n"
        "  (to launch new runs from the UI, first run `hdi replay serve` and export the lines it prints)"
    )
    if not all(p["ok"] for p in partitions):
        raise typer.Exit(1)


def run_pipeline(plan: list[tuple[str, tuple[str, ...]]]) -> list[dict]:
    """Materialize every partition, in the order the product's adjustment reads rolls: later windows first for a
    backward method (a window needs the rolls of every later one), earlier windows first for a forward one."""
    from dagster import DagsterInstance, materialize

    from hdi_assets.definitions import PIPELINE_ASSETS, build_resources
    from hdi_assets.partitions import partition_key, products
    from hdi_core.continuous.adjust import DIRECTION

    instance = DagsterInstance.get()
    resources = build_resources()
    partitions = []
    steps = [(s, w) for s, windows in plan
             for w in sorted(windows, reverse=DIRECTION[products()[s].adjustment] == "backward")]
    for n, (symbol, window) in enumerate(steps, 1):
        started = time.monotonic()
        typer.echo(f"[{n}/{len(steps)}] {symbol} {window}: fetch, rolls, adjust, bars, checks, load ...")
        result = materialize(
            PIPELINE_ASSETS,
            partition_key=partition_key(symbol, window),
            instance=instance,
            resources=resources,
            run_config=QUIET_RUN_CONFIG,
            raise_on_error=False,
            tags={"hdi/demo": "true"},
        )
        evaluations = result.get_asset_check_evaluations()
        meta = {
            event.materialization.asset_key.to_user_string(): {
                k: v.value for k, v in event.materialization.metadata.items()
            }
            for event in result.get_asset_materialization_events()
        }
        passed = sum(e.passed for e in evaluations)
        partitions.append(
            {
                "symbol": symbol,
                "window": window,
                "ok": result.success,
                "meta": meta,
                "checks": f"{passed}/{len(evaluations)}",
                "failed_checks": [e.check_name for e in evaluations if not e.passed],
            }
        )
        ticks = meta.get("raw_ticks", {}).get("rows", 0)
        state = "done" if result.success else "FAILED"
        typer.echo(
            f"      {state} in {time.monotonic() - started:.1f}s: {ticks:,} ticks, checks passed "
            f"{passed}/{len(evaluations)}"
        )
    return partitions


def print_summary(partitions: list[dict]) -> None:
    from hdi_resources.db import get_database

    typer.echo("\nRolls found (gap = new - old, both prices at the same moment):")
    for part in partitions:
        table = part["meta"].get("roll_events", {}).get("roll_table")
        typer.echo(
            f"  {part['symbol']} {part['window']}  checks passed {part['checks']}"
            + (f"  FAILED: {', '.join(part['failed_checks'])}" if part["failed_checks"] else "")
        )
        if table:
            typer.echo("    " + str(table).strip().replace("\n", "\n    "))
    info = get_database().info()
    typer.echo(
        f"\nDatabase ({info['mode']} PostgreSQL {info['server_version']}, {info['url']}): rows per table"
    )
    for name, count in info["row_counts"].items():
        typer.echo(f"  {name:<18} {count:>12,}")
    per_granularity: dict[str, int] = {}
    for part in partitions:
        for g, n in part["meta"].get("continuous_bars_table", {}).get("rows_per_granularity", {}).items():
            per_granularity[g] = per_granularity.get(g, 0) + n
    typer.echo(
        "  continuous_bars by granularity: " + ", ".join(f"{g} {n:,}" for g, n in per_granularity.items())
    )
