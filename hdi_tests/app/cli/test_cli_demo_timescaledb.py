"""`hdi demo` on TimescaleDB, as a user with an external server runs it: HDI_DATABASE_URL (owner) and
HDI_DATABASE_APP_URL (app role) point at a scratch TimescaleDB database; the whole graph for one product and
window passes, and a second run leaves identical row counts (loads and upserts into compressed chunks)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import scratch_timescale_database, timescale_url_or_skip
from sqlalchemy.engine import make_url

DEMO_ARGS = ["demo", "--ticks-per-session", "300", "--symbol", "ES", "--window", "2024-07-01"]
TIMEOUT_S = 600


def _psycopg2(url: str) -> str:
    """The +psycopg2 driver form HDI expects (conftest's database_env hands it the same way)."""
    from hdi_resources.db.core import url_string

    return url_string(make_url(url).set(drivername="postgresql+psycopg2"))


def _run_demo(home: Path, owner_url: str, app_url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HDI_", "DATABENTO_", "DAGSTER_"))}
    env.update(HDI_HOME=str(home), HDI_DATABASE_URL=_psycopg2(owner_url), HDI_DATABASE_APP_URL=_psycopg2(app_url))
    command = [sys.executable, "-c", "from hdi_app.cli import main; main()", *DEMO_ARGS]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)


def _storage_mode(owner_url: str) -> str:
    import psycopg2

    conn = psycopg2.connect(owner_url.replace("+psycopg2", ""), connect_timeout=15)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT value FROM hdi_meta WHERE key = 'storage_mode'")
            return cur.fetchone()[0]
    finally:
        conn.close()


def _row_counts(output: str) -> dict[str, int]:
    section = output.split("rows per table", 1)[1]
    return {m[1]: int(m[2].replace(",", "")) for m in re.finditer(r"^\s{2}(\w+)\s+([\d,]+)$", section, re.M)}


@pytest.mark.timeout(2 * TIMEOUT_S + 120)
def test_demo_on_timescaledb_passes_and_a_rerun_changes_no_row_count(tmp_path: Path) -> None:
    timescale_url_or_skip()
    with scratch_timescale_database("cli_demo") as (owner_url, app_url):
        first = _run_demo(tmp_path / "home", owner_url, app_url)
        assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
        out = first.stdout
        assert "[1/1] ES 2024-07-01" in out and "done in" in out
        assert "FAILED" not in out and re.search(r"checks passed (\d+)/\1\b", out), out
        assert _storage_mode(owner_url) == "timescaledb"
        counts = _row_counts(out)
        assert counts["continuous_bars"] > 0 and counts["roll_events"] >= 1, counts
        second = _run_demo(tmp_path / "home", owner_url, app_url)
        assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
        assert _row_counts(second.stdout) == counts
        assert "Traceback" not in first.stderr + second.stderr
