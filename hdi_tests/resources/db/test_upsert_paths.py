"""upsert_rows on a vendor table's primary key: each path (fresh month attached, COPY past the stored rows,
staged comparison, INSERT .. ON CONFLICT fallback) gives the same counts and rows; native PostgreSQL and TimescaleDB."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time

import numpy as np
import pyarrow as pa
import pytest
from conftest import skip_unless_native
from sample_bars import rows, trades_at

from hdi_resources.db import Database

MAY_30 = int(dt.datetime(2023, 5, 30, tzinfo=dt.UTC).timestamp())
SECOND = 1_000_000_000


@pytest.fixture(scope="module")
def db(storage_db: Database) -> Database:
    return storage_db


def trades(instrument: int, seconds: np.ndarray, flags: int = 0) -> pa.Table:
    """Trades one per given second after 2023-05-30 (so a few days span May and June)."""
    return trades_at(MAY_30, seconds, instrument, 4_500_250_000_000, flags)




def counts(result: object) -> tuple[int, ...]:
    return tuple(getattr(result, k) for k in ("inserted", "updated", "unchanged", "quarantined", "duplicates"))


def test_fresh_month_is_attached_with_the_parents_indexes(db: Database) -> None:
    skip_unless_native(db, "month partitions attached")
    data = trades(7001, np.arange(0, 3 * 86_400, 300))  # May 30 .. June 1: two fresh months
    n = data.num_rows
    assert counts(db.upsert_rows("trades_data", data)) == (n, 0, 0, 0, 0)
    attached = rows(db, """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                           WHERE i.inhparent = 'trades_data'::regclass ORDER BY 1""")
    assert [r[0] for r in attached] == ["trades_data_p202305", "trades_data_p202306"]
    primary = rows(db, """SELECT count(*) FROM pg_index WHERE indisprimary
                          AND indrelid IN ('trades_data_p202305'::regclass, 'trades_data_p202306'::regclass)""")
    assert primary == [(2,)]
    assert rows(db, "SELECT to_regclass('trades_data_p202305_stage')") == [(None,)]
    assert counts(db.upsert_rows("trades_data", data)) == (0, 0, n, 0, 0)
    assert rows(db, "SELECT count(*) FROM trades_data WHERE instrument_id = 7001") == [(n,)]


def test_mixed_input_counts_new_changed_and_unchanged_rows(db: Database) -> None:
    db.upsert_rows("trades_data", trades(7002, np.arange(0, 1_000)))
    earlier = trades(7002, np.arange(0, 500))  # before the stored span's end: compared
    changed = trades(7002, np.arange(500, 600), flags=128)
    later = trades(7002, np.arange(5_000, 5_400))  # after every stored row: COPYed
    other = trades(7003, np.arange(0, 50))  # another instrument in the same span: nothing stored for it
    result = db.upsert_rows("trades_data", pa.concat_tables([earlier, changed, later, other]))
    assert counts(result) == (450, 100, 500, 0, 0)
    assert rows(db, "SELECT count(*), sum(flags) FROM trades_data WHERE instrument_id = 7002") == [(1_400, 12_800)]
    assert counts(db.upsert_rows("trades_data", pa.concat_tables([earlier, changed, later, other]))) == \
        (0, 0, 1_050, 0, 0)


def test_repeated_keys_keep_the_last_row_in_any_input_order(db: Database) -> None:
    seconds = np.array([40, 10, 30, 10, 20, 40, 10])  # unsorted; 10 three times, 40 twice
    flags = np.arange(len(seconds), dtype=np.int16)
    data = trades(7004, seconds).set_column(8, "flags", pa.array(flags))
    assert counts(db.upsert_rows("trades_data", data)) == (4, 0, 0, 0, 3)
    stored = rows(db, "SELECT sequence, flags FROM trades_data WHERE instrument_id = 7004 ORDER BY 1")
    assert stored == [(10, 6), (20, 4), (30, 2), (40, 5)]
    again = data.set_column(8, "flags", pa.array(flags[::-1].copy()))  # every key's last row changes
    assert counts(db.upsert_rows("trades_data", again)) == (0, 4, 0, 0, 3)
    stored = rows(db, "SELECT sequence, flags FROM trades_data WHERE instrument_id = 7004 ORDER BY 1")
    assert stored == [(10, 0), (20, 2), (30, 4), (40, 1)]
    assert counts(db.upsert_rows("trades_data", again)) == (0, 0, 4, 0, 3)


def test_char_keys_differing_by_trailing_spaces_are_one_key(db: Database) -> None:
    data = trades(7007, np.array([3, 3])).set_column(7, "side", pa.array(["B", "B "]))
    assert counts(db.upsert_rows("trades_data", data)) == (1, 0, 0, 0, 1)
    assert counts(db.upsert_rows("trades_data", data)) == (0, 0, 1, 0, 1)


def test_a_row_committed_during_the_load_sends_it_to_insert_on_conflict(db: Database,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    """Another transaction holds a row of the input uncommitted: the COPY waits for it, meets a unique violation
    once it commits, and the upsert starts over with INSERT .. ON CONFLICT (same counts, nothing lost)."""
    data = trades(7005, np.arange(0, 100) + 60 * 86_400)  # late July 2023
    db.upsert_rows("trades_data", trades(7099, np.array([60 * 86_400])))  # the month's partition exists
    outcome: list[object] = []
    with db.raw() as conn, conn.cursor() as cur:
        first = data.slice(0, 1).to_pylist()[0]  # the key of the input's first row, with other flags
        cur.execute("""INSERT INTO trades_data VALUES (to_timestamp(%s), to_timestamp(%s), 1, 7005, %s, 1, 'T',
                       %s, 1, 0, %s, 100, %s, %s)""",
                    (first["ts_event"] / SECOND, first["ts_recv"] / SECOND, first["price"] / SECOND, first["side"],
                     first["sequence"], first["ts_event"], first["ts_recv"]))  # ns columns: migration 0010
        loader = threading.Thread(target=lambda: outcome.append(db.upsert_rows("trades_data", data)))
        with caplog.at_level(logging.INFO, logger="hdi_resources.db.upsert"):
            loader.start()
            deadline = time.monotonic() + 30
            # The loader's COPY itself waits on the uncommitted row (not merely any lock wait on the server).
            waiting = "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query ILIKE %s"
            while not rows(db, waiting, ("COPY %trades_data%",)) and time.monotonic() < deadline:
                time.sleep(0.05)
            conn.commit()
            loader.join(60)
    assert "retrying with INSERT .. ON CONFLICT" in caplog.text
    assert counts(outcome[0]) == (99, 1, 0, 0, 0)
    assert rows(db, "SELECT count(*) FROM trades_data WHERE instrument_id = 7005") == [(100,)]


def test_bad_rows_are_quarantined_on_the_set_wise_path(db: Database) -> None:
    data = trades(7006, np.arange(0, 10))
    prices = pa.array([None] + list(range(1, 10)), pa.int64())
    result = db.upsert_rows("trades_data", data.set_column(4, "price", prices), source="test-upsert")
    assert counts(result) == (9, 0, 0, 1, 0) and result.rules == {"not_null(price)": 1}
    assert rows(db, "SELECT rule FROM quarantine WHERE source = 'test-upsert'") == [("not_null(price)",)]


def test_partition_creation_waits_for_a_month_being_filled(db: Database) -> None:
    """hdi_ensure_partitions (used by other loads) waits for the upsert filling the month as a fresh table and
    then finds the attached partition, rather than failing on its name."""
    skip_unless_native(db, "hdi_stage_vendor_month")
    created: list[int] = []

    def ensure() -> None:
        with db.raw() as conn, conn.cursor() as cur:
            cur.execute("SELECT hdi.hdi_ensure_partitions('trades_data', '2023-09-05', '2023-09-06')")
            created.append(cur.fetchone()[0])

    with db.raw() as conn, conn.cursor() as cur:
        cur.execute("SELECT hdi.hdi_stage_vendor_month('trades_data', '2023-09-10')")
        assert cur.fetchone()[0] == "trades_data_p202309_stage"
        other = threading.Thread(target=ensure)
        other.start()
        deadline = time.monotonic() + 30
        while not rows(db, "SELECT 1 FROM pg_locks WHERE NOT granted") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not created
        cur.execute("SELECT hdi.hdi_attach_vendor_month('trades_data', '2023-09-10')")
    other.join(60)
    assert created == [0]
    assert rows(db, "SELECT to_regclass('trades_data_p202309') IS NOT NULL") == [(True,)]
