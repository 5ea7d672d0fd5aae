"""The storage layer against a real embedded PostgreSQL (one fresh server per module, stopped at the end)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil
import pyarrow as pa
import pytest
from conftest import BACKENDS, backend_database, kill_own_process, scratch_timescale_database, skip_unless_native
from repo_paths import REPO_ROOT, TESTS

from hdi_core.errors import HdiError
from hdi_resources.db import Database
from hdi_resources.db.server import postgres_root, stop_embedded_server
from hdi_resources.settings import hdi_home

PARTITION = {"continuous_symbol": "ES.v.0", "granularity": "1s", "window": "2024-01-01"}
START_UNIX = 1_704_067_200  # 2024-01-01


def make_bars(n: int, start_unix: int = START_UNIX, seed: int = 1) -> pa.Table:
    """n one-second ES bars with int64 1e-9 prices, as the bars asset hands them over."""
    rng = np.random.default_rng(seed)
    ts_ns = (start_unix + np.arange(n, dtype=np.int64)) * 1_000_000_000
    close = 4_500_000_000_000 + np.cumsum(rng.integers(-2, 3, n)) * 250_000_000
    open_ = np.concatenate(([close[0]], close[:-1]))
    high = np.maximum(open_, close) + 250_000_000
    low = np.minimum(open_, close) - 250_000_000
    volume = rng.integers(1, 50, n)
    return pa.table({
        "root_symbol": pa.array(["ES"] * n),
        "ts": pa.array(ts_ns, pa.timestamp("ns", tz="UTC")),
        "trade_date": pa.array((ts_ns // 86_400_000_000_000).astype(np.int32)).cast(pa.date32()),
        "open": open_, "high": high, "low": low, "close": close,
        "volume": volume, "trade_count": volume // 2 + 1, "vwap": close / 1e9,
        "adjustment_method": pa.array(["panama"] * n),
    })


@pytest.fixture(scope="module")
def home() -> Iterator[Path]:
    """A private HDI home under hdi_home() (pytest's tmp dirs are pruned and chmod-ed by concurrent runs)."""
    path = Path(tempfile.mkdtemp(prefix="test-db-", dir=hdi_home()))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module", params=BACKENDS)
def db(request: pytest.FixtureRequest, home: Path):
    """Native: three threads ask for the embedded database at once: one server, one migration, same pid for all.
    TimescaleDB: a scratch database on the test server (skipped with the reason without one)."""
    if request.param != "native":
        with backend_database(request.param, "test_database") as database:
            yield database
        return
    results: list[Database] = []
    errors: list[BaseException] = []

    def open_db() -> None:
        try:
            database = Database(url="", home=home)
            database.migrate()
            results.append(database)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread below
            errors.append(exc)

    threads = [threading.Thread(target=open_db) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert not errors, errors
        assert len({d.embedded.pid for d in results}) == 1
        yield results[0]
    finally:
        for d in results:
            d.close()
        stop_embedded_server(home)


def _count(db: Database, sql: str, params: tuple = ()) -> int:
    with db.raw() as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchone()[0]


def test_migrations_twice_are_a_noop(db: Database) -> None:
    before = _count(db, "SELECT count(*) FROM schema_migrations")
    assert db.migrate() == []
    assert db.migrate() == []
    assert _count(db, "SELECT count(*) FROM schema_migrations") == before >= 3
    assert db.storage_mode in BACKENDS


def test_credentials_file_is_private(db: Database, home: Path) -> None:
    skip_unless_native(db, "the embedded server's credentials file")
    creds = postgres_root(home) / "credentials.json"
    assert creds.stat().st_mode & 0o777 == 0o600
    assert db.embedded.credentials.app_password not in db.describe()
    assert "***" in db.describe()


def test_load_twice_gives_identical_rows(db: Database) -> None:
    bars = make_bars(5_000)
    first = db.replace_partition("continuous_bars", PARTITION, bars)
    rows_first = db.query("ES.v.0", "ohlcv-1s").drop_columns(["loaded_at"])
    second = db.replace_partition("continuous_bars", PARTITION, bars)
    rows_second = db.query("ES.v.0", "ohlcv-1s").drop_columns(["loaded_at"])
    assert (first.inserted, first.deleted) == (5_000, 0)
    assert (second.inserted, second.deleted) == (5_000, 5_000)
    assert rows_first.equals(rows_second)
    assert _count(db, "SELECT count(*) FROM continuous_bars WHERE continuous_symbol = 'ES.v.0'") == 5_000


def test_replacing_with_fewer_rows_removes_the_rest(db: Database) -> None:
    part = {**PARTITION, "continuous_symbol": "NQ.v.0"}
    bars = make_bars(3_000, seed=2)
    db.replace_partition("continuous_bars", part, bars.set_column(0, "root_symbol", pa.array(["NQ"] * 3_000)))
    db.replace_partition("continuous_bars", part, bars.slice(100, 500).set_column(
        0, "root_symbol", pa.array(["NQ"] * 500)))
    assert _count(db, "SELECT count(*) FROM continuous_bars WHERE continuous_symbol = 'NQ.v.0'") == 500


def test_reload_swaps_months_and_keeps_other_rows(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    skip_unless_native(db, "month partitions swapped in")
    from hdi_resources.db import replace
    from hdi_resources.db.binary import to_nanos_fixed
    from hdi_resources.db.tables import from_micros

    monkeypatch.setattr(replace, "SWAP_MIN_ROWS", 1_000)
    part = {**PARTITION, "continuous_symbol": "ZB.v.0"}
    minute = make_bars(50, seed=6).set_column(1, "ts", pa.array(
        (START_UNIX + 60 * np.arange(50, dtype=np.int64)) * 1_000_000_000, pa.timestamp("ns", tz="UTC")))
    db.replace_partition("continuous_bars", part, make_bars(3_000, seed=6))  # new month: built and attached
    db.replace_partition("continuous_bars", {**part, "granularity": "1m"}, minute)  # existing month: routed
    month = replace.symbol_partition_name("ZB.v.0", from_micros(START_UNIX * 1_000_000))
    oid_before = _count(db, "SELECT to_regclass(%s)::oid::bigint", (month,))
    reloaded = make_bars(3_000, seed=7)
    result = db.replace_partition("continuous_bars", part, reloaded)  # mostly replaced: rebuilt and swapped
    assert (result.inserted, result.deleted) == (3_000, 3_000)
    assert _count(db, "SELECT to_regclass(%s)::oid::bigint", (month,)) not in (oid_before, None)
    stored = db.query("ZB.v.0", "ohlcv-1s").column("close").to_pylist()
    assert stored == [to_nanos_fixed(reloaded.column("close").combine_chunks(), "close")[0][i] / 10**9
                      for i in range(3_000)]
    assert db.query("ZB.v.0", "ohlcv-1m").num_rows == 50
    assert _count(db, "SELECT count(*) FROM continuous_bars WHERE continuous_symbol = 'ZB.v.0'") == 3_050


def test_bad_bars_are_quarantined_not_fatal(db: Database) -> None:
    part = {**PARTITION, "continuous_symbol": "CL.v.0"}
    bars = make_bars(1_000, seed=3).to_pydict()
    bars["high"][10] = bars["low"][10] - 1  # high below low: breaks bar_high_is_highest
    bars["volume"][20] = -5
    table = pa.table(bars, schema=make_bars(1, seed=3).schema)
    result = db.replace_partition("continuous_bars", part, table, source="unit-test")
    assert result.inserted == 998 and result.quarantined == 2
    assert result.rules == {"bar_high_is_highest": 1, "bar_volume_not_negative": 1}
    with db.raw() as conn, conn.cursor() as cur:
        cur.execute("SELECT rule, record->>'volume', source FROM quarantine WHERE target = 'continuous_bars' "
                    "ORDER BY rule")
        rows = cur.fetchall()
    assert rows == [("bar_high_is_highest", str(bars["volume"][10]), "unit-test"),
                    ("bar_volume_not_negative", "-5", "unit-test")]
    # a re-run replaces the partition's quarantine entries too
    db.replace_partition("continuous_bars", part, table, source="unit-test")
    assert _count(db, "SELECT count(*) FROM quarantine WHERE target = 'continuous_bars'") == 2


def test_duplicate_keys_are_quarantined(db: Database) -> None:
    part = {**PARTITION, "continuous_symbol": "GC.v.0"}
    bars = make_bars(100, seed=4)
    doubled = pa.concat_tables([bars, bars.slice(0, 3)])
    result = db.replace_partition("continuous_bars", part, doubled)
    assert (result.inserted, result.quarantined, result.rules) == (100, 3, {"duplicate_key": 3})


@pytest.mark.parametrize(("symbol", "swap_min_rows", "forget_first"), [("HG.v.0", None, False),
                                                                       ("HG.v.1", 500, True)])
def test_keys_held_by_another_partition_are_quarantined(db: Database, monkeypatch: pytest.MonkeyPatch,
                                                        symbol: str, swap_min_rows: int | None,
                                                        forget_first: bool) -> None:
    """Windows overlapping in time: the second load's rows whose key the first window holds are duplicates.
    Cases: the month is routed (DELETE + COPY), or rebuilt and swapped with the bookkeeping of the first
    window missing (so the clash surfaces at the index build and the load re-runs with a full check)."""
    from hdi_resources.db import replace

    if swap_min_rows:
        monkeypatch.setattr(replace, "SWAP_MIN_ROWS", swap_min_rows)
    first = {**PARTITION, "continuous_symbol": symbol}
    second = {**first, "window": "2024-01-02"}
    db.replace_partition("continuous_bars", first, make_bars(1_000, seed=10))
    before = db.query(symbol, "ohlcv-1s").drop_columns(["loaded_at"])
    if forget_first:
        with db.raw() as conn, conn.cursor() as cur:
            cur.execute("DELETE FROM hdi_loaded_partitions WHERE \"partition\" LIKE %s", (f"%{symbol}%",))
    later = make_bars(1_000, START_UNIX + 600, seed=11)  # its first 400 seconds are the first window's last
    for _ in range(2):  # and a re-run does the same
        result = db.replace_partition("continuous_bars", second, later)
        assert (result.inserted, result.quarantined, result.rules) == (600, 400, {"duplicate_key": 400})
    stored = db.query(symbol, "ohlcv-1s").drop_columns(["loaded_at"])
    assert stored.num_rows == 1_600
    assert stored.slice(0, 1_000).equals(before)  # the first window is untouched
    assert _count(db, "SELECT count(*) FROM quarantine WHERE rule = 'duplicate_key' AND \"partition\" LIKE %s",
                  (f"%{symbol}%",)) == 400


KILL_SCRIPT = textwrap.dedent("""
    import sys
    sys.path[:0] = [{tests!r}, {test_root!r}]  # this module, and the helpers it imports (conftest, repo_paths)
    from test_database import make_bars, PARTITION
    from hdi_resources.db import Database
    from hdi_resources.db import copy
    copy.BATCH_ROWS = 20_000  # many COPY statements, so the kill lands mid-load
    db = Database(url="", home={home!r})
    print("loading", flush=True)
    zn = {{**PARTITION, "continuous_symbol": "ZN.v.0"}}
    db.replace_partition("continuous_bars", zn, make_bars(600_000, seed=9))
    print("finished", flush=True)
""")


def test_killed_load_leaves_previous_state(db: Database, home: Path) -> None:
    skip_unless_native(db, "a load killed on the embedded server")
    part = {**PARTITION, "continuous_symbol": "ZN.v.0"}
    db.replace_partition("continuous_bars", part, make_bars(2_000, seed=8))
    before = db.query("ZN.v.0", "ohlcv-1s").drop_columns(["loaded_at"])
    script = KILL_SCRIPT.format(tests=str(Path(__file__).resolve().parent), test_root=str(TESTS), home=str(home))
    env = {k: v for k, v in os.environ.items() if k != "HDI_DATABASE_URL"}
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env, cwd=REPO_ROOT)
    try:
        deadline = time.monotonic() + 60
        copying = 0
        while time.monotonic() < deadline and proc.poll() is None:
            copying = _count(db, "SELECT coalesce(max(tuples_processed), 0) FROM pg_stat_progress_copy")
            if copying > 0:
                break
            time.sleep(0.02)
        assert copying > 0, proc.communicate(timeout=5)
        kill_own_process(proc.pid, signal.SIGKILL, "copy.BATCH_ROWS")  # the KILL_SCRIPT child
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert b"finished" not in proc.stdout.read()
    after = db.query("ZN.v.0", "ohlcv-1s").drop_columns(["loaded_at"])
    assert after.equals(before)
    rerun = db.replace_partition("continuous_bars", part, make_bars(30_000, seed=9))
    assert rerun.inserted == 30_000 and rerun.deleted == 2_000
    assert _count(db, "SELECT count(*) FROM continuous_bars WHERE continuous_symbol = 'ZN.v.0'") == 30_000


def test_stage_left_by_a_killed_load_is_invisible_then_dropped(db: Database) -> None:
    """A killed parallel load can leave a committed, never attached month stage: readers never see it and the
    next load of that month drops it. The month's defaults used by the COPY do not stay on the partition."""
    skip_unless_native(db, "month stage tables")
    from hdi_resources.db.replace import symbol_partition_name
    from hdi_resources.db.tables import from_micros

    part = {**PARTITION, "continuous_symbol": "ZF.v.0"}
    db.replace_partition("continuous_bars", part, make_bars(2_000, seed=12))
    before = db.query("ZF.v.0", "ohlcv-1s").drop_columns(["loaded_at"])
    month = from_micros(START_UNIX * 1_000_000)
    stage = f"{symbol_partition_name('ZF.v.0', month)}_stage"
    with db.raw() as conn, conn.cursor() as cur:  # what a worker had committed when its load was killed
        cur.execute("SELECT hdi.hdi_stage_bar_month(%s, %s, %s, false, '{}')",
                    ("ZF.v.0", month, '{"window": "1999-01-01"}'))
        cur.execute(f"INSERT INTO {stage} SELECT * FROM {stage}")  # rows a reader must never see
    assert db.query("ZF.v.0", "ohlcv-1s").drop_columns(["loaded_at"]).equals(before)
    rerun = db.replace_partition("continuous_bars", part, make_bars(3_000, seed=13))
    assert (rerun.inserted, rerun.deleted) == (3_000, 2_000)
    assert _count(db, "SELECT count(*) FROM continuous_bars WHERE continuous_symbol = 'ZF.v.0'") == 3_000
    assert _count(db, "SELECT count(*) FROM pg_class WHERE relname = %s", (stage,)) == 0
    assert _count(db, "SELECT count(*) FROM pg_attribute WHERE attrelid = to_regclass(%s) AND atthasdef",
                  (stage[: -len("_stage")],)) == 1  # loaded_at's, as on continuous_bars


def _spread(bars: pa.Table, first_unix: int, step_s: int) -> pa.Table:
    ts = (first_unix + np.arange(bars.num_rows, dtype=np.int64) * step_s) * 1_000_000_000
    return bars.set_column(bars.schema.get_field_index("ts"), "ts", pa.array(ts, pa.timestamp("ns", tz="UTC")))


def test_concurrent_loads_of_one_symbol_sharing_a_month_both_finish(db: Database) -> None:
    """Two windows of one symbol loading at once, both touching February (as a session straddling a window
    boundary does): the month lock serializes them, neither hangs nor fails, a leftover stage included."""

    first = _spread(make_bars(2_000, seed=21), 1_706_659_200, 60)  # Jan 31 -> Feb 1
    second = _spread(make_bars(2_000, seed=22), 1_706_788_800, 1_800)  # Feb 1 -> mid March
    keys = [{**PARTITION, "continuous_symbol": "ZN.v.0", "window": w} for w in ("2023-07-01", "2024-01-01")]
    errors: list[BaseException] = []

    def load(key: dict, bars: pa.Table) -> None:
        try:
            db.replace_partition("continuous_bars", key, bars)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    for _ in range(2):  # the second round finds the first round's state and any stage it left
        threads = [threading.Thread(target=load, args=args) for args in zip(keys, (first, second), strict=True)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=180)
        assert not any(t.is_alive() for t in threads), "a load hung"
        assert not errors, errors
        assert _count(db, "SELECT count(*) FROM continuous_bars WHERE continuous_symbol = 'ZN.v.0'") == 4_000


def test_app_role_has_row_rights_only(db: Database) -> None:
    import psycopg2

    for statement in ("CREATE TABLE evil (x int)", "DROP TABLE continuous_bars", "CREATE DATABASE evil",
                      "ALTER TABLE continuous_bars ADD COLUMN x int", "TRUNCATE continuous_bars",
                      "CREATE ROLE evil"):
        with pytest.raises(psycopg2.errors.InsufficientPrivilege), db.raw() as conn:
            conn.autocommit = True  # CREATE DATABASE refuses to run inside a transaction
            with conn.cursor() as cur:
                cur.execute(statement)
    with db.raw() as conn, conn.cursor() as cur:
        cur.execute("SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = current_user")
        assert cur.fetchone() == (False, False, False)


def test_messages_redact_passwords(tmp_path: Path) -> None:
    bad = Database(url="postgresql://hdi:s3cr3t-pw@127.0.0.1:9/hdi", home=tmp_path)
    with pytest.raises(HdiError) as info:
        bad.migrate()
    assert "s3cr3t-pw" not in str(info.value) and "***" in str(info.value)
    assert "s3cr3t-pw" not in bad.describe()
    assert "+psycopg2" in bad.dagster_url()


def test_upsert_vendor_rows_is_idempotent(db: Database) -> None:
    n = 1_000
    ts = (START_UNIX + np.arange(n, dtype=np.int64)) * 1_000_000_000
    trades = pa.table({
        "ts_event": pa.array(ts, pa.uint64()), "ts_recv": pa.array(ts + 5_000, pa.uint64()),
        "publisher_id": np.full(n, 1, np.int16), "instrument_id": np.full(n, 4242, np.int32),
        "price": 4_500_250_000_000 + np.arange(n, dtype=np.int64) * 250_000_000,
        "size": np.ones(n, np.int32), "action": ["T"] * n, "side": ["A", "B"] * (n // 2),
        "flags": np.zeros(n, np.int16), "depth": np.zeros(n, np.int16),
        "sequence": np.arange(n, dtype=np.int64), "ts_in_delta": np.full(n, 100, np.int32),
        "rtype": np.zeros(n, np.int8),  # an extra DBN column: ignored
    })
    first = db.upsert_rows("trades_data", trades)
    second = db.upsert_rows("trades_data", trades)
    assert (first.inserted, first.updated, first.unchanged) == (n, 0, 0)
    assert (second.inserted, second.updated, second.unchanged) == (0, 0, n)
    changed = trades.set_column(trades.schema.get_field_index("flags"), "flags",
                                pa.array(np.where(np.arange(n) < 7, 128, 0).astype(np.int16)))
    third = db.upsert_rows("trades_data", pa.concat_tables([changed, changed.slice(0, 2)]))
    assert (third.inserted, third.updated, third.unchanged, third.duplicates) == (0, 7, n - 7, 2)
    assert _count(db, "SELECT count(*) FROM trades_data WHERE instrument_id = 4242") == n


def test_roll_events_with_nulls_and_uneven_text_round_trip(db: Database) -> None:
    """Rows of different byte lengths (NULLs, varying text) take the general COPY encoder."""
    events = pa.table({
        "switch_ts": pa.array([START_UNIX * 10**9, (START_UNIX + 86_400 * 70) * 10**9],
                              pa.timestamp("ns", tz="UTC")),
        "old_instrument_id": pa.array([None, 1001], pa.int64()),
        "new_instrument_id": [1001, 2002],
        "old_raw_symbol": [None, "ESH4"],
        "new_raw_symbol": ["ESH4", "ESM24-long"],
        "old_price": pa.array([None, 4_500_250_000_000], pa.int64()),
        "new_price": [4_510_000_000_000, np.iinfo(np.int64).max],  # UNDEF_PRICE stores as NULL
        "roll_gap": pa.array([None, -9_750_000_000], pa.int64()),
        "method": ["volume", "volume"],
        "reference_ts": pa.array([None, START_UNIX * 10**9], pa.timestamp("ns", tz="UTC")),
    })
    key = {"continuous_symbol": "ES.v.0", "window": "2024-01-01"}
    assert db.replace_partition("roll_events", key, events).inserted == 2
    assert db.replace_partition("roll_events", key, events).deleted == 2
    with db.raw() as conn, conn.cursor() as cur:
        cur.execute("SELECT old_instrument_id, old_raw_symbol, new_raw_symbol, old_price, new_price, "
                    "roll_gap, reference_ts IS NULL FROM roll_events ORDER BY switch_ts")
        rows = cur.fetchall()
    from decimal import Decimal

    assert rows == [(None, None, "ESH4", None, Decimal("4510.000000000"), None, True),
                    (1001, "ESH4", "ESM24-long", Decimal("4500.250000000"), None, Decimal("-9.750000000"),
                     False)]


def test_ingest_runs_are_audited(db: Database) -> None:
    with db.record_ingest_run(dataset="GLBX.MDP3", file_name="a.dbn.zst", file_sha256="ab" * 32) as run:
        run.add(db.replace_partition("continuous_bars", {**PARTITION, "continuous_symbol": "SI.v.0"},
                                     make_bars(10, seed=5)))
    with pytest.raises(HdiError), db.record_ingest_run(dataset="GLBX.MDP3", file_name="b.dbn.zst"):
        raise HdiError("postgresql://u:pw123@h/db broke")
    with db.raw() as conn, conn.cursor() as cur:
        cur.execute("SELECT file_name, status, inserted_count, error, finished_at IS NOT NULL "
                    "FROM data_ingest_runs ORDER BY id")
        rows = cur.fetchall()
    assert rows[0] == ("a.dbn.zst", "success", 10, None, True)
    assert rows[1][:3] == ("b.dbn.zst", "failed", None) and "pw123" not in rows[1][3]


def test_server_left_from_a_crash_is_restarted(db: Database, home: Path) -> None:
    """Last on purpose: SIGKILL the postmaster, then a new Database recovers the same data."""
    skip_unless_native(db, "the embedded server restarted")
    pid = db.embedded.pid
    count = _count(db, "SELECT count(*) FROM continuous_bars")
    db.close()
    kill_own_process(pid, signal.SIGKILL, str(db.embedded.data_dir))  # this module's postmaster, by its -D
    psutil.wait_procs([psutil.Process(pid)] if psutil.pid_exists(pid) else [], timeout=10)
    again = Database(url="", home=home)
    try:
        assert again.embedded.pid != pid and again.started_here
        assert _count(again, "SELECT count(*) FROM continuous_bars") == count
    finally:
        again.close()


def test_timescaledb_hypertables() -> None:
    """On a fresh database of the TimescaleDB test server (skipped with the reason without one)."""
    with scratch_timescale_database("hypertables") as (owner_url, app_url):
        ts_db = Database(url=owner_url, app_url=app_url)
        try:
            ts_db.migrate()
            assert ts_db.storage_mode == "timescaledb"
            with ts_db.raw() as conn, conn.cursor() as cur:
                cur.execute("SELECT hypertable_name FROM timescaledb_information.hypertables")
                names = {row[0] for row in cur.fetchall()}
            assert {"continuous_bars", "trades_data", "tbbo_data", "definitions_data"} <= names
            part = {**PARTITION, "continuous_symbol": "TS.v.0"}
            assert ts_db.replace_partition("continuous_bars", part, make_bars(1_000)).inserted == 1_000
            assert ts_db.replace_partition("continuous_bars", part, make_bars(1_000)).deleted == 1_000
        finally:
            ts_db.close()
