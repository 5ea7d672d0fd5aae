"""A load killed with SIGKILL while it copies leaves the previous rows intact, and the next load succeeds and
removes what the killed one left (a committed, never attached month stage in the native layout). On the
embedded PostgreSQL and, with HDI_TEST_TIMESCALE_URL, on TimescaleDB (into compressed chunks when
continuous_bars has compression)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
from conftest import reopen
from repo_paths import REPO_ROOT, TESTS
from sample_bars import random_walk_bars

from hdi_resources.db import Database
from hdi_resources.db.core import url_string

SYMBOL = "GC.c.0"
KEY = {"continuous_symbol": SYMBOL, "window": "2024-01-01", "adjustment_method": "panama"}
JAN_1 = 1_704_067_200
FEB_1 = 1_706_745_600

KILL_SCRIPT = """
import sys
sys.path[:0] = [{repo!r}, {tests!r}, {test_root!r}]
from hdi_resources.db import Database
from test_db_kill_safety import KEY, reload_bars
db = Database(url={url!r}, app_url={app_url!r}, home={home!r})
db.replace_partition("continuous_bars", KEY, reload_bars())
print("finished", flush=True)
"""


def bars_at(ts_s: np.ndarray, seed: int) -> pa.Table:
    return random_walk_bars(ts_s, seed, "GC", "1s", 2_000_000_000_000, 100_000_000)


def first_bars() -> pa.Table:
    """The rows that must survive: 100k in January, 20k in February."""
    return bars_at(np.concatenate([JAN_1 + 3 * np.arange(100_000), FEB_1 + np.arange(20_000)]), seed=1)


def reload_bars() -> pa.Table:
    """The killed load: a big January (its copy still running at the kill) and a small February (its stage
    committed by then in the native layout; on TimescaleDB, January's chunk-less weeks are stages)."""
    return bars_at(np.concatenate([JAN_1 + 3 * np.arange(800_000), FEB_1 + np.arange(60_000)]), seed=2)


def _one(db: Database, query: str, params: tuple = (), role: str = "app") -> tuple:
    with db.raw(role) as conn, conn.cursor() as cur:
        cur.execute(query, params)
        return cur.fetchone()


def _state(db: Database) -> tuple:
    return _one(db, "SELECT count(*), sum(close), min(ts), max(ts), count(DISTINCT ts) FROM continuous_bars "
                    "WHERE continuous_symbol = %s", (SYMBOL,))


def _stages(db: Database) -> int:
    """Stage tables: of months (native layout) and of chunk slices with their pieces' staging hypertables and
    batch tables (TimescaleDB)."""
    return _one(db, "SELECT count(*) FROM pg_class WHERE relname LIKE 'continuous\\_bars\\_%%\\_stage' "
                    "OR relname ~ '^continuous_bars_stage_[0-9]{8}(_[0-9]+_(c|ht))?$'")[0]


def _compress_if_configured(db: Database) -> bool:
    """TimescaleDB with compression on continuous_bars: compress every chunk (the killed load then writes
    into compressed ones). Returns whether it did."""
    if db.storage_mode != "timescaledb":
        return False
    configured = _one(db, "SELECT count(*) FROM timescaledb_information.compression_settings "
                          "WHERE hypertable_name = 'continuous_bars'")[0]
    if not configured:
        return False
    _one(db, "SELECT count(compress_chunk(c, if_not_compressed => true)) FROM show_chunks('continuous_bars') c",
         role="owner")  # compression is the table owner's, as in compression.py
    return _one(db, "SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_name = "
                    "'continuous_bars' AND is_compressed")[0] > 0


def test_killed_load_leaves_previous_rows_and_next_load_succeeds(storage_db: Database) -> None:
    db = reopen(storage_db)
    native = db.storage_mode == "native"
    proc = None
    try:
        db.replace_partition("continuous_bars", KEY, first_bars())
        compressed = _compress_if_configured(db)
        before = _state(db)
        assert before[0] == 120_000
        env = {k: v for k, v in os.environ.items() if k != "HDI_DATABASE_URL"}
        embedded = db.mode == "embedded"
        script = KILL_SCRIPT.format(repo=str(REPO_ROOT), tests=str(Path(__file__).resolve().parent),
                                    test_root=str(TESTS),
                                    url="" if embedded else url_string(db.owner_url),
                                    app_url="" if embedded else url_string(db.app_url),
                                    home=str(db.home) if embedded else None)
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=env, cwd=REPO_ROOT)
        deadline = time.monotonic() + 120
        ready = False
        while time.monotonic() < deadline and proc.poll() is None:
            copying = _one(db, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                               "AND state = 'active' AND query LIKE 'COPY %%'")[0]
            # Kill once a stage is committed (native: February's) and another's rows are still copying.
            if copying and _stages(db):
                ready = True
                break
            time.sleep(0.02)
        assert ready, proc.communicate(timeout=30)
        proc.kill()  # SIGKILL to the child this test started (Popen signals only its own, live pid)
        proc.wait(10)
        assert b"finished" not in proc.stdout.read()
        assert _state(db) == before  # readers never see the killed load's rows, not even a committed stage
        assert _stages(db) == 1 if native else _stages(db) >= 1  # committed, never attached, never seen
        rerun = db.replace_partition("continuous_bars", KEY, reload_bars())
        assert (rerun.inserted, rerun.deleted) == (860_000, 120_000)
        after = _state(db)
        assert after[0] == after[4] == 860_000
        assert after[1] == Decimal(int(reload_bars().column("close").to_numpy().sum())) / 10**9
        assert _stages(db) == 0
        if compressed:
            assert db.replace_partition("continuous_bars", KEY, first_bars()).inserted == 120_000
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)
        db.close()
