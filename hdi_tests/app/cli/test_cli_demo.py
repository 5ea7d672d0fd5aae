"""`hdi demo` itself, as a user runs it, on tiny settings: a fresh HDI_HOME, its own gateway process and
embedded PostgreSQL, the whole graph for one product and window; a second run leaves the same rows."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DEMO_ARGS = ["demo", "--ticks-per-session", "300", "--symbol", "ES", "--window", "2024-07-01"]
TIMEOUT_S = 600


def _run_demo(home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HDI_", "DATABENTO_", "DAGSTER_"))}
    env["HDI_HOME"] = str(home)
    command = [sys.executable, "-c", "from hdi_app.cli import main; main()", *DEMO_ARGS]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)


def _row_counts(output: str) -> dict[str, int]:
    section = output.split("rows per table", 1)[1]
    return {m[1]: int(m[2].replace(",", "")) for m in re.finditer(r"^\s{2}(\w+)\s+([\d,]+)$", section, re.M)}


@pytest.mark.timeout(2 * TIMEOUT_S + 60)
def test_demo_builds_checks_and_loads_a_window_and_a_rerun_changes_nothing(tmp_path: Path) -> None:
    first = _run_demo(tmp_path / "home")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    out = first.stdout
    assert "[1/1] ES 2024-07-01" in out and "done in" in out
    assert "Rolls found" in out and "FAILED" not in out
    assert re.search(r"checks passed (\d+)/\1\b", out), out
    counts = _row_counts(out)
    assert counts["continuous_bars"] > 0 and counts["roll_events"] >= 1, counts
    # Idempotent: the same demo again replaces the partition, it does not add to it.
    second = _run_demo(tmp_path / "home")
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert _row_counts(second.stdout) == counts
    assert "Traceback" not in first.stderr + second.stderr
