"""`hdi ingest-file` and `hdi ingest` as a user runs them (subprocesses, embedded PostgreSQL, local gateway)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from repo_paths import DBN_SAMPLES

from hdi_resources.db.server import stop_embedded_server

SAMPLES = DBN_SAMPLES
GLBX = SAMPLES / "databento-python" / "GLBX.MDP3"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("hdi_home")
    try:
        yield path
    finally:
        stop_embedded_server(path)


def hdi(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from hdi_app.cli import main; main()", *args],
                          capture_output=True, text=True, timeout=240,
                          env={**os.environ, "HDI_HOME": str(home), **(env or {})})


def test_ingest_file_then_again_then_dry_run(home: Path) -> None:
    files = [str(GLBX / "test_data.trades.dbn.zst"), str(SAMPLES / "dbn" / "test_data.ohlcv-1m.v1.dbn.zst")]
    first = hdi(home, "ingest-file", *files)
    assert first.returncode == 0, first.stderr
    assert "fetched 4, stored 4 (inserted 4" in first.stdout and "DBN v1" in first.stdout
    assert "summary: 2 file(s), 0 failed, 0 already ingested; stored 6 rows" in first.stdout
    second = hdi(home, "ingest-file", *files)
    assert second.returncode == 0 and second.stdout.count("already ingested by run") == 2
    tbbo = str(GLBX / "test_data.tbbo.dbn.zst")
    dry = hdi(home, "ingest-file", "--dry-run", "--limit", "1", "--symbol", "ESH1", tbbo)
    assert dry.returncode == 0 and "would store 1" in dry.stdout


def test_bad_files_fail_with_one_line(home: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.dbn"
    junk.write_bytes(b"not a dbn file")
    done = hdi(home, "ingest-file", str(junk), str(GLBX / "test_data.mbo.dbn.zst"))
    assert done.returncode == 1
    assert "junk.dbn" in done.stdout and "not a DBN file" in done.stdout
    assert "schema mbo is not supported" in done.stdout and "Traceback" not in done.stdout + done.stderr
    missing = hdi(home, "ingest-file", str(tmp_path / "nope.dbn"))
    assert missing.returncode == 1 and missing.stderr.strip().startswith("error:") and "nope.dbn" in missing.stderr


def test_ingest_from_the_gateway_with_a_summary(home: Path, synthetic_gateway_env: dict[str, str]) -> None:
    args = ["ingest", "--dataset", "GLBX.MDP3", "--schema", "trades", "--symbols", "ESH4,NQH4",
            "--start", "2024-03-04", "--end", "2024-03-06"]
    first = hdi(home, *args, env=synthetic_gateway_env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("  2024-03-04..2024-03-06: fetched")
    assert "summary: GLBX.MDP3 trades ESH4,NQH4 2024-03-04..2024-03-06" in first.stdout
    assert "quarantined 0" in first.stdout
    again = hdi(home, *args, env=synthetic_gateway_env)
    assert again.returncode == 0 and "inserted 0, updated 0" in again.stdout
    bad = hdi(home, *args[:-1], "2024-03-01", env=synthetic_gateway_env)
    assert bad.returncode == 1 and "end_date: must be after start_date" in bad.stderr
