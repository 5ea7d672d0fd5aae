"""`hdi doctor`: find and remove what killed processes left in the lake and the Databento download cache."""

from __future__ import annotations

import typer

DEFAULT_MIN_AGE_S = 3600.0


def doctor(
    dry_run: bool = typer.Option(False, "--dry-run", help="Report what would be done; change nothing."),
    min_age: float = typer.Option(
        DEFAULT_MIN_AGE_S,
        "--min-age",
        help="Seconds since a leftover was last written before it counts as abandoned (protects running writes).",
    ),
) -> None:
    """Recover partitions a killed write left missing; remove unpublished lake versions, old-layout staging
    folders and partial downloads. Only the lake root (HDI_HOME/lake or the HDI_LAKE_URL prefix) and
    HDI_HOME/cache/databento are looked at."""
    from hdi_resources import lake
    from hdi_resources.settings import hdi_home

    store = lake.lake_store()
    cache = hdi_home() / "cache" / "databento"
    typer.echo(f"lake: {store.url(store.root)}\ncache: {cache}")
    findings = lake.collect_lake(store, min_age, dry_run) + lake.sweep_partials(cache, min_age, dry_run)
    for finding in findings:
        typer.echo(f"  {finding.line()}")
    verb = "would be handled (dry run)" if dry_run else "handled"
    typer.echo(f"{len(findings)} leftover(s) {verb}" if findings else "nothing to clean up")
