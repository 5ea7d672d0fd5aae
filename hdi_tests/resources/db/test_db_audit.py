"""hdi_resources.db.audit: ingest runs, files already ingested and the symbols seen, on a real embedded PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest

from hdi_resources.db import Database

SHA = "cd" * 32


@pytest.fixture(scope="module")
def db(storage_db: Database) -> Database:
    """This module's database, on each backend in turn."""
    return storage_db


def test_a_file_counts_as_ingested_only_after_a_successful_run_of_the_same_selection(db: Database) -> None:
    run = db.start_ingest_run(dataset="GLBX.MDP3", file_name="t.dbn", file_sha256=SHA, target_table="trades_data",
                              schema_name="trades", selection="limit=5")
    assert db.previous_ingest(SHA, "trades", "limit=5") is None  # still running
    db.finish_ingest_run(run, status="failed", error="boom")
    assert db.previous_ingest(SHA, "trades", "limit=5") is None
    done = db.start_ingest_run(file_sha256=SHA, schema_name="trades", selection="limit=5")
    db.finish_ingest_run(done, row_count=5, inserted_count=5)
    assert db.previous_ingest(SHA, "trades", "limit=5") == done
    assert db.previous_ingest(SHA, "trades", None) is None
    assert db.previous_ingest(SHA, "tbbo", "limit=5") is None
    with db.raw() as conn, conn.cursor() as cur:
        cur.execute("SELECT schema_name, selection, status, row_count FROM data_ingest_runs WHERE id = %s", (done,))
        assert cur.fetchone() == ("trades", "limit=5", "success", 5)


def test_a_run_recorded_without_a_schema_matches_any_schema(db: Database) -> None:
    sha = "ef" * 32
    run = db.start_ingest_run(file_sha256=sha)
    db.finish_ingest_run(run)
    assert db.previous_ingest(sha, "ohlcv-1m", None) == run


def test_symbol_dates_widen_with_each_sighting(db: Database) -> None:
    day = dt.date(2024, 1, 10)
    db.record_symbols("GLBX.MDP3", [("ESH4", 4001, day, day)])
    db.record_symbols("GLBX.MDP3", [("ESH4", 4001, day - dt.timedelta(days=3), day),
                                    ("ESM4", 4002, day, day + dt.timedelta(days=1))])
    db.record_symbols("GLBX.MDP3", [])
    with db.raw() as conn, conn.cursor() as cur:
        cur.execute("SELECT symbol, instrument_id, first_date, last_date FROM vendor_symbols ORDER BY symbol")
        assert cur.fetchall() == [("ESH4", 4001, dt.date(2024, 1, 7), day),
                                  ("ESM4", 4002, day, dt.date(2024, 1, 11))]
