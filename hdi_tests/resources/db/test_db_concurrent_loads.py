"""Concurrent loads of overlapping windows of one symbol (what a UI backfill of several windows does) never
hang: they queue on the months they share, a wait that runs out is a retryable LoadBusyError, and every
round ends with exact rows. On the embedded PostgreSQL and, with HDI_TEST_TIMESCALE_URL, on TimescaleDB."""

from __future__ import annotations

import datetime as dt
import random
import threading
import time

import numpy as np
import pyarrow as pa
import pytest
from conftest import reopen
from sample_bars import random_walk_bars

from hdi_core.errors import LoadBusyError
from hdi_resources.db import Database, chunks, replace

STEP_S = 120  # two-minute bars: ~29k rows a window, enough for stage swaps with SWAP_MIN_ROWS lowered
# Three windows of one symbol, sharing February and March as sessions straddling a window boundary do.
WINDOWS = {"2023-07-01": ("2024-01-01", "2024-02-10"), "2024-01-01": ("2024-02-10", "2024-03-20"),
           "2024-07-01": ("2024-03-20", "2024-04-30")}
LOADS = ["2023-07-01", "2024-01-01", "2024-07-01", "2023-07-01", "2024-01-01", "2024-07-01", "2023-07-01",
         "2024-01-01"]  # 8 loads over the 3 windows


def window_bars(window: str, seed: int) -> pa.Table:
    """The window's bars; every seed gives the same timestamps and its own prices."""
    first, end = (dt.datetime.fromisoformat(d).replace(tzinfo=dt.UTC) for d in WINDOWS[window])
    ts_s = np.arange(int(first.timestamp()), int(end.timestamp()), STEP_S, dtype=np.int64)
    return random_walk_bars(ts_s, seed, "CL", "1m", 80_000_000_000, 10_000_000)


def open_database(database: Database) -> Database:
    """One Database per loader on the module's database, as each Dagster step process has."""
    db = reopen(database)
    db.migrate()
    return db


def _one_value(db: Database, query: str, params: tuple = ()) -> object:
    with db.raw() as conn, conn.cursor() as cur:
        cur.execute(query, params)
        return cur.fetchone()[0]


def test_concurrent_overlapping_windows_all_finish_exact(storage_db: Database,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(replace, "SWAP_MIN_ROWS", 5_000)  # months of ~10k rows: fresh, swap and route all run
    monkeypatch.setattr(chunks, "FRESH_CHUNK_MIN_ROWS", 1_000)  # TimescaleDB: new chunks attached, and routed rows
    monkeypatch.setattr(replace, "LOCK_TIMEOUT_S", 10.0)  # queued loads give up sometimes: the retry path runs
    symbol = "CL.c.0"
    variants = {w: [window_bars(w, seed) for seed in range(3)] for w in WINDOWS}
    close_sums = {w: {int(np.sum(b.column("close").to_numpy()) // 1_000_000) for b in v} for w, v in variants.items()}
    databases = [open_database(storage_db) for _ in LOADS]
    busy: list[str] = []
    errors: list[BaseException] = []

    def load(db: Database, window: str, bars: pa.Table) -> None:
        key = {"continuous_symbol": symbol, "window": window, "adjustment_method": "panama"}
        try:
            for attempt in range(30):
                try:
                    db.replace_partition("continuous_bars", key, bars)
                    return
                except LoadBusyError as exc:  # what the assets' RetryPolicy does, faster
                    busy.append(str(exc))
                    time.sleep(random.uniform(0.1, 0.5) * (attempt + 1))
            raise AssertionError(f"window {window} still busy after 30 attempts")
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    check = databases[0]
    try:
        started = time.monotonic()
        for round_no in range(3):
            threads = [threading.Thread(target=load, args=(db, w, variants[w][random.randrange(3)]), daemon=True)
                       for db, w in zip(databases, LOADS, strict=True)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=max(1.0, started + 600 - time.monotonic()))
            assert not any(t.is_alive() for t in threads), f"round {round_no}: a load hung"
            assert not errors, errors
            per_window = {r[0]: r[1:] for r in _rows(check, """SELECT "window"::text, count(*), count(DISTINCT ts),
                                                     (sum(close) * 1000)::bigint
                                              FROM continuous_bars WHERE continuous_symbol = %s
                                              GROUP BY 1""", (symbol,))}
            for window, bars in variants.items():
                rows, distinct, close_sum = per_window[window]
                assert rows == distinct == bars[0].num_rows, (round_no, window)
                assert close_sum in close_sums[window], f"window {window} mixes two loads' rows"
            months = [r[0] for r in _rows(check, """SELECT DISTINCT date_trunc('month', ts, 'UTC')::date::text
                                                    FROM continuous_bars WHERE continuous_symbol = %s ORDER BY 1""",
                                          (symbol,))]
            assert months == ["2024-01-01", "2024-02-01", "2024-03-01", "2024-04-01"]
            assert _one_value(check, "SELECT count(*) FROM quarantine") == 0
            recorded = _one_value(check, "SELECT sum(row_count) FROM hdi_loaded_partitions WHERE target = %s",
                                  ("continuous_bars",))
            assert recorded == sum(v[0].num_rows for v in variants.values())
        if check.storage_mode == "native":
            assert _one_value(check, "SELECT count(*) FROM pg_class WHERE relname LIKE '%%\\_stage'") == 0
        for message in busy:
            assert message.startswith(f"continuous_bars {symbol}: ") and message.endswith("safe to retry")
    finally:
        for db in databases:
            db.close()


def _rows(db: Database, query: str, params: tuple = ()) -> list[tuple]:
    with db.raw() as conn, conn.cursor() as cur:
        cur.execute(query, params)
        return cur.fetchall()


def test_a_month_held_too_long_is_a_retryable_error_naming_it(storage_db: Database,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from hdi_resources.db.replace import symbol_partition_name

    monkeypatch.setattr(replace, "LOCK_TIMEOUT_S", 1.0)
    db = open_database(storage_db)
    holder = open_database(storage_db)
    key = {"continuous_symbol": "CL.c.1", "window": "2024-01-01", "adjustment_method": "panama"}
    bars = window_bars("2024-01-01", 7)
    try:
        with holder.raw() as conn, conn.cursor() as cur:  # another load busy with March
            cur.execute("SELECT pg_advisory_xact_lock(hashtext('hdi_bar_month'), hashtext(%s))",
                        (symbol_partition_name("CL.c.1", dt.datetime(2024, 3, 1, tzinfo=dt.UTC)),))
            with pytest.raises(LoadBusyError) as caught:
                db.replace_partition("continuous_bars", key, bars)
        message = str(caught.value)
        assert "continuous_bars CL.c.1" in message and "month 2024-03" in message and "safe to retry" in message
        assert "\n" not in message
        assert _one_value(db, "SELECT count(*) FROM continuous_bars WHERE continuous_symbol = 'CL.c.1'") == 0
        assert db.replace_partition("continuous_bars", key, bars).inserted == bars.num_rows
    finally:
        db.close()
        holder.close()


def test_load_assets_retry_a_busy_load() -> None:
    """Dagster runs a load that raised LoadBusyError again (after a jittered delay) instead of failing the run."""
    from hdi_assets.storage.assets import continuous_bars_table, roll_events_table

    for asset_def in (continuous_bars_table, roll_events_table):
        policy = asset_def.node_def.retry_policy
        assert policy is not None and policy.max_retries >= 3 and policy.jitter is not None
