"""Migration 0010 on a database that already holds vendor rows (native partitions, TimescaleDB with a compressed
chunk): exact-ns columns are added and backfilled with what the old rows kept (their microsecond), ts_event_ns
joins the primary keys, definitions' expiration/activation accept NULL, and new loads keep nanoseconds."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from conftest import BACKENDS, backend_database

from hdi_resources.db import core

START = 1_685_404_800 * 10**9  # 2023-05-30 00:00 UTC


def _trades(instrument: int, offsets_ns: np.ndarray) -> pa.Table:
    n = len(offsets_ns)
    ts = START + offsets_ns.astype(np.int64)
    return pa.table({
        "ts_event": pa.array(ts, pa.uint64()), "ts_recv": pa.array(ts + 5_000, pa.uint64()),
        "publisher_id": np.full(n, 1, np.int16), "instrument_id": np.full(n, instrument, np.int32),
        "price": np.full(n, 4_500_250_000_000, np.int64), "size": np.ones(n, np.int32), "action": ["T"] * n,
        "side": ["A"] * n, "flags": np.zeros(n, np.int16), "depth": np.zeros(n, np.int16),
        "sequence": np.full(n, 7, np.int64), "ts_in_delta": np.full(n, 100, np.int32),
    })


def _rows(db: core.Database, sql: str, which: str = "app") -> list[tuple]:
    with db.raw(which) as conn, conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


@pytest.mark.parametrize("backend", BACKENDS)
def test_0010_upgrades_a_database_holding_vendor_rows(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    shipped = core.load_migrations()
    # A database from before 0010 as today's code reaches it: every other migration applied (the code calls
    # functions later migrations moved), then 0010 on its own over the stored rows.
    monkeypatch.setattr(core, "load_migrations", lambda: [m for m in shipped if m.version != "0010"])
    with backend_database(backend, "mig0010") as db:
        old = _trades(9001, np.array([0, 1_000, 2_000_123]))  # sub-microsecond digits are lost before 0010
        assert db.upsert_rows("trades_data", old).inserted == 3
        if db.storage_mode == "timescaledb":
            # history is compressed once written (compression.py); either way the old rows sit in a compressed chunk
            _rows(db, "SELECT count(compress_chunk(c, if_not_compressed => true)) FROM show_chunks('trades_data') c",
                  "owner")
            assert _rows(db, "SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_name = "
                             "'trades_data' AND is_compressed") == [(1,)]
        monkeypatch.setattr(core, "load_migrations", lambda: shipped)
        db._migrated = False
        assert db.migrate() == [f"{m.version}_{m.name}" for m in shipped if m.version == "0010"]
        db._columns_cache.clear()  # the loader read the tables' columns before the migration added some
        assert _rows(db, "SELECT ts_event_ns - " + str(START) + ", ts_recv_ns FROM trades_data "
                         "WHERE instrument_id = 9001 ORDER BY ts_event_ns") == [(0, None), (1_000, None),
                                                                                  (2_000_000, None)]
        key = _rows(db, """SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid
                           AND a.attnum = ANY(i.indkey) WHERE i.indrelid = 'trades_data'::regclass
                           AND i.indisprimary""")
        assert "ts_event_ns" in {r[0] for r in key}
        assert _rows(db, """SELECT attname, attnotnull FROM pg_attribute WHERE attrelid = 'definitions_data'::regclass
                            AND attname IN ('expiration', 'activation') ORDER BY 1""") == [
            ("activation", False), ("expiration", False)]
        # After 0010: two trades in one microsecond, equal in every other key field, are both kept.
        new = _trades(9001, np.array([5_000_100, 5_000_700]))
        result = db.upsert_rows("trades_data", new)
        assert (result.inserted, result.duplicates) == (2, 0)
        assert _rows(db, "SELECT ts_event_ns - " + str(START) + " FROM trades_data WHERE instrument_id = 9001 "
                         "AND ts_event_ns > " + str(START + 5_000_000) + " ORDER BY ts_event, ts_event_ns") == [
            (5_000_100,), (5_000_700,)]
