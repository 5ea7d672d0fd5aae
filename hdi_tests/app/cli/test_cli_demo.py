"""`hdi demo` itself, as a user runs it, on tiny settings: a fresh HDI_HOME, its own gateway process, the whole
graph for one product and window; a second run leaves the same rows. On the embedded PostgreSQL and, with
HDI_TEST_TIMESCALE_URL, on a scratch TimescaleDB database reached through HDI_DATABASE_URL (owner) and
HDI_DATABASE_APP_URL (app role), as a user with an external server runs it."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import BACKENDS, scratch_timescale_database, timescale_url_or_skip
from sqlalchemy.engine import make_url

# Thin enough to be quick, liquid enough that regular hours have no half-hour silence (timestamp_continuity).
DEMO_ARGS = ["demo", "--ticks-per-session", "1000", "--symbol", "ES", "--window", "2024-07-01"]
TIMEOUT_S = 600


def _psycopg2(url: str) -> str:
    from hdi_resources.db.core import url_string

    return url_string(make_url(url).set(drivername="postgresql+psycopg2"))


@contextlib.contextmanager
def _database_env(backend: str) -> Iterator[dict[str, str]]:
    """Nothing for the embedded server; the URLs of a scratch TimescaleDB database (dropped after)."""
    if backend == "native":
        yield {}
        return
    timescale_url_or_skip()
    with scratch_timescale_database("cli_demo") as (owner_url, app_url):
        yield {"HDI_DATABASE_URL": _psycopg2(owner_url), "HDI_DATABASE_APP_URL": _psycopg2(app_url)}


def _run_demo(home: Path, database: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HDI_", "DATABENTO_", "DAGSTER_"))}
    env.update(HDI_HOME=str(home), **database)
    command = [sys.executable, "-c", "from hdi_app.cli import main; main()", *DEMO_ARGS]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)


def _row_counts(output: str) -> dict[str, int]:
    section = output.split("rows per table", 1)[1]
    return {m[1]: int(m[2].replace(",", "")) for m in re.finditer(r"^\s{2}(\w+)\s+([\d,]+)$", section, re.M)}


@pytest.mark.timeout(2 * TIMEOUT_S + 120)
@pytest.mark.parametrize("backend", BACKENDS)
def test_demo_builds_checks_and_loads_a_window_and_a_rerun_changes_nothing(backend: str, tmp_path: Path) -> None:
    with _database_env(backend) as database:
        first = _run_demo(tmp_path / "home", database)
        assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
        out = first.stdout
        assert "[1/1] ES 2024-07-01" in out and "done in" in out
        assert "Rolls found" in out and "FAILED" not in out
        assert re.search(r"checks passed (\d+)/\1\b", out), out
        assert ("timescaledb PostgreSQL" in out) == (backend == "timescaledb")
        counts = _row_counts(out)
        assert counts["continuous_bars"] > 0 and counts["roll_events"] >= 1, counts
        # Idempotent: the same demo again replaces the partition (into compressed chunks on TimescaleDB).
        second = _run_demo(tmp_path / "home", database)
        assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
        assert _row_counts(second.stdout) == counts
        assert "Traceback" not in first.stderr + second.stderr
