"""TimescaleDB: vendor hypertables are compressed the way HDI writes them (migration 0011): no age-based policy;
after an upsert commits, the closed chunks it wrote (history) are compressed, today's open chunk is not; upserts
into compressed chunks still count and write right, and leave the chunks compressed."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest
from sample_bars import rows, trades_at

from hdi_resources.db import Database
from hdi_resources.db.compression import VENDOR_TABLES

SECOND = 1_000_000_000
HISTORY = dt.datetime(2024, 3, 4, tzinfo=dt.UTC)  # a Monday: two whole days of history, two 1-day chunks
INSTRUMENT = 9101


@pytest.fixture(scope="module")
def db(storage_db: Database) -> Database:
    if storage_db.storage_mode != "timescaledb":
        pytest.skip("columnstore compression is TimescaleDB's; native partitions are plain tables")
    return storage_db


def trades(start: dt.datetime, seconds: np.ndarray, flags: int = 0) -> pa.Table:
    """One trade per given second after `start`, sequence numbered by that second."""
    return trades_at(int(start.timestamp()), seconds, INSTRUMENT, 5_100_250_000_000, flags)




def chunk_states(db: Database, table: str) -> dict[dt.date, str]:
    """Each chunk's first day -> 'compressed', 'partial' (rows written since) or 'plain'."""
    found = rows(db, """SELECT c.range_start, c.is_compressed, k.status & 8 = 8
                        FROM timescaledb_information.chunks c JOIN _timescaledb_catalog.chunk k
                          ON k.schema_name = c.chunk_schema AND k.table_name = c.chunk_name
                        WHERE c.hypertable_name = %s""", (table,))
    return {start.astimezone(dt.UTC).date(): ("partial" if partial else "compressed" if compressed else "plain")
            for start, compressed, partial in found}


def counts(result: object) -> tuple[int, ...]:
    return tuple(getattr(result, k) for k in ("inserted", "updated", "unchanged", "quarantined", "duplicates"))


def test_no_age_policy_and_every_vendor_table_has_a_columnstore(db: Database) -> None:
    policies = rows(db, "SELECT hypertable_name FROM timescaledb_information.jobs "
                        "WHERE proc_name = 'policy_compression'")
    assert policies == []
    enabled = rows(db, "SELECT hypertable_name FROM timescaledb_information.hypertables WHERE compression_enabled")
    assert set(VENDOR_TABLES) <= {r[0] for r in enabled}
    segments = rows(db, "SELECT DISTINCT hypertable_name FROM timescaledb_information.compression_settings "
                        "WHERE attname = 'instrument_id' AND segmentby_column_index = 1")
    assert set(VENDOR_TABLES) <= {r[0] for r in segments}


def test_history_is_compressed_after_the_upsert_and_todays_chunk_is_not(db: Database) -> None:
    history = trades(HISTORY, np.arange(0, 2 * 86_400, 60))  # two days, one trade a minute
    today = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    elapsed = max(int((dt.datetime.now(dt.UTC) - today).total_seconds()) - 5, 1)
    now_rows = trades(today, np.arange(0, elapsed, max(elapsed // 20, 1)))
    n_hist, n_now = history.num_rows, now_rows.num_rows
    assert counts(db.upsert_rows("trades_data", history)) == (n_hist, 0, 0, 0, 0)
    assert counts(db.upsert_rows("trades_data", now_rows)) == (n_now, 0, 0, 0, 0)
    states = chunk_states(db, "trades_data")
    assert states[HISTORY.date()] == states[(HISTORY + dt.timedelta(days=1)).date()] == "compressed", states
    assert states[today.date()] == "plain", states

    # The same rows again, changed (flags), with new trades between them: counts right, history compressed again.
    changed = trades(HISTORY, np.arange(0, 2 * 86_400, 60), flags=128)
    between = trades(HISTORY, np.arange(30, 2 * 86_400, 3_600))
    again = pa.concat_tables([changed, between])
    assert counts(db.upsert_rows("trades_data", again)) == (between.num_rows, n_hist, 0, 0, 0)
    states = chunk_states(db, "trades_data")
    assert states[HISTORY.date()] == states[(HISTORY + dt.timedelta(days=1)).date()] == "compressed", states
    assert states[today.date()] == "plain", states
    stored = rows(db, "SELECT count(*), count(*) FILTER (WHERE flags = 128) FROM trades_data "
                      "WHERE instrument_id = %s AND ts_event < %s", (INSTRUMENT, today))
    assert stored == [(n_hist + between.num_rows, n_hist)]
    # Unchanged on a third run: nothing rewritten, nothing left partial.
    assert counts(db.upsert_rows("trades_data", again)) == (0, 0, again.num_rows, 0, 0)
    assert chunk_states(db, "trades_data")[HISTORY.date()] == "compressed"


def test_db_info_reports_the_vendor_tables(db: Database) -> None:
    sizes = db.info()["compression"]
    assert set(VENDOR_TABLES) <= set(sizes)
    trades_size = sizes["trades_data"]
    assert trades_size["compressed_chunks"] >= 2 and trades_size["chunks"] >= 3
    assert 0 < trades_size["after_compression_bytes"] < trades_size["before_compression_bytes"]
