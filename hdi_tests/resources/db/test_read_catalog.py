"""The symbol catalogue (0008): kept by the loads, rebuilt when empty over stored data, and the resolution that
reads it (real embedded PostgreSQL)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pytest
from sample_bars import START_NS, minute_bars

from hdi_resources.db import Database
from hdi_resources.db import read as reads
from hdi_resources.db.catalog import refresh_catalog
from hdi_resources.db.readerrors import NotFound
from hdi_resources.db.resolve import resolve
from hdi_resources.db.server import stop_embedded_server


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    home = tmp_path_factory.mktemp("hdi_home")
    database = Database(url="", home=home)
    try:
        yield database
    finally:
        database.close()
        stop_embedded_server(home)


def _catalog(db: Database, target: str) -> list[tuple]:
    with db.raw() as conn, conn.cursor() as cur:
        cur.execute("""SELECT symbol, granularity, adjustment_method, instrument_id, raw_symbol, root_symbol,
                              row_count, min_ts, max_ts, min_trade_date, max_trade_date
                       FROM symbol_catalog WHERE target = %s ORDER BY symbol, granularity""", (target,))
        return cur.fetchall()


def _vendor_bars(instrument_id: int, n: int) -> pa.Table:
    ts = (START_NS + np.arange(n, dtype=np.int64) * 60_000_000_000).astype(np.uint64)
    return pa.table({"ts_event": pa.array(ts), "instrument_id": [instrument_id] * n, "open_price": [1] * n,
                     "high_price": [1] * n, "low_price": [1] * n, "close_price": [1] * n, "volume": [1] * n,
                     "granularity": ["1m"] * n, "data_source": ["databento"] * n})


def test_replacing_bars_keeps_the_catalogue_current(db: Database) -> None:
    key = {"continuous_symbol": "ES.v.0", "granularity": "1m", "window": "2024-07-01"}
    db.replace_partition("continuous_bars", key, minute_bars())
    (row,) = _catalog(db, "continuous_bars")
    assert row[:3] == ("ES.v.0", "1m", "panama") and row[5] == "ES" and row[6] == 5
    assert row[7] == dt.datetime(2024, 7, 1, tzinfo=dt.UTC) and row[8] == dt.datetime(2024, 7, 1, 0, 4, tzinfo=dt.UTC)
    assert row[9] == row[10] == dt.date(2024, 7, 1)
    db.replace_partition("continuous_bars", key, minute_bars().slice(0, 2))
    assert _catalog(db, "continuous_bars")[0][6] == 2
    db.replace_partition("continuous_bars", {**key, "continuous_symbol": "ES.v.1"}, minute_bars())
    assert [r[0] for r in _catalog(db, "continuous_bars")] == ["ES.v.0", "ES.v.1"]
    db.replace_partition("continuous_bars", {**key, "continuous_symbol": "ES.v.1"}, minute_bars().slice(0, 0))
    assert [r[0] for r in _catalog(db, "continuous_bars")] == ["ES.v.0"]  # emptied: gone from the catalogue
    # the storage assets' key (symbol, window, adjustment): a second window adds to the same series
    later = minute_bars().set_column(1, "ts", pa.array(START_NS + 86_400 * 10**9 * 7 + np.arange(5) * 60 * 10**9,
                                                         pa.timestamp("ns", tz="UTC")))
    later = later.set_column(2, "trade_date", pa.array([dt.date(2024, 7, 8)] * 5, pa.date32()))
    assets_key = {"continuous_symbol": "ES.v.0", "window": dt.date(2024, 7, 8), "adjustment_method": "panama"}
    db.replace_partition("continuous_bars", assets_key, later.append_column("granularity", pa.array(["1m"] * 5)))
    (row,) = _catalog(db, "continuous_bars")
    assert row[6] == 7 and row[9] == dt.date(2024, 7, 1) and row[10] == dt.date(2024, 7, 8)
    db.replace_partition("continuous_bars", assets_key, later.slice(0, 0).append_column(
        "granularity", pa.array([], pa.string())))
    assert _catalog(db, "continuous_bars")[0][6] == 2


def test_vendor_rows_get_counts_then_names(db: Database) -> None:
    db.upsert_rows("ohlcv_data", _vendor_bars(9001, 3))
    (row,) = [r for r in _catalog(db, "ohlcv_data") if r[3] == 9001]
    assert row[0] == "9001" and row[1] == "1m" and row[4] is None and row[6] == 3
    db.upsert_rows("ohlcv_data", _vendor_bars(9001, 4))  # one more minute
    db.record_symbols("GLBX.MDP3", [("CLQ4", 9001, dt.date(2024, 7, 1), dt.date(2024, 7, 1))])
    (row,) = [r for r in _catalog(db, "ohlcv_data") if r[3] == 9001]
    assert row[4:7] == ("CLQ4", "CL", 4)  # raw symbol from the mappings, root from the contract code
    assert reads.query(db, "CLQ4", "ohlcv-1m").num_rows == 4
    assert reads.query(db, "CL", "ohlcv-1m").num_rows == 4  # a root on a vendor schema: its contracts


def test_an_empty_catalogue_over_stored_data_is_rebuilt_on_first_read(db: Database) -> None:
    before = sorted(_catalog(db, "continuous_bars") + _catalog(db, "ohlcv_data"))
    with db.raw() as conn, conn.cursor() as cur:
        cur.execute("DELETE FROM symbol_catalog")  # as after upgrading a database loaded before 0008
    assert reads.stats(db, "ES", "ohlcv-1m")["row_count"] == 2
    after = sorted(_catalog(db, "continuous_bars") + _catalog(db, "ohlcv_data"))
    assert [r[:7] for r in after] == [r[:7] for r in before]
    assert refresh_catalog(db) == len(after)


def test_resolution_prefers_the_lead_series_and_lists_the_known(db: Database) -> None:
    key = {"continuous_symbol": "ES.c.1", "granularity": "1m", "window": "2024-07-01"}
    db.replace_partition("continuous_bars", key, minute_bars())
    with db.raw() as conn, conn.cursor() as cur:
        assert resolve(cur, db, "ES", "ohlcv-1m").continuous_symbol == "ES.v.0"
        assert resolve(cur, db, "es.c.1", "ohlcv-1m").continuous_symbol == "ES.c.1"
        assert resolve(cur, db, "9001", "ohlcv-1m").instrument_ids == (9001,)
        listed = r"^unknown symbol 'NQ'; stored ohlcv-1m symbols: CL, CLQ4, ES, ES.c.1, ES.v.0$"
        with pytest.raises(NotFound, match=listed):
            resolve(cur, db, "NQ", "ohlcv-1m")
        with pytest.raises(NotFound, match="unknown symbol"):
            resolve(cur, db, "x" * 500, "ohlcv-1m")


def test_a_bars_load_counts_the_catalogue_as_a_rescan_would(storage_db: Database) -> None:
    """Loads count their window from the rows in hand (both backends); the oracle is the full rebuild, which
    scans the stored table with GROUP BY: unsorted rows of two granularities and two roots in one window, a
    window key naming its granularity, and a reload with fewer rows."""
    from sample_bars import random_walk_bars

    seconds = random_walk_bars(1_704_067_200 + np.arange(3_000) * 7, 1, "ES", "1s", 4_500_000_000_000, 250_000_000)
    minutes = random_walk_bars(1_704_067_200 + np.arange(500) * 60, 2, "ESX", "1m", 4_500_000_000_000, 250_000_000)
    mixed = pa.concat_tables([seconds, minutes])
    mixed = mixed.take(pa.array(np.random.default_rng(3).permutation(mixed.num_rows)))
    storage_db.replace_partition("continuous_bars", {"continuous_symbol": "CAT.v.0", "window": "2024-01-01"}, mixed)
    one = {"continuous_symbol": "CAT.v.1", "granularity": "1s", "window": "2024-01-01"}
    storage_db.replace_partition("continuous_bars", one, seconds)
    storage_db.replace_partition("continuous_bars", one, seconds.slice(100, 1_000))
    loaded = _catalog(storage_db, "continuous_bars")
    assert [(r[0], r[1], r[5], r[6]) for r in loaded] == [("CAT.v.0", "1m", "ESX", 500), ("CAT.v.0", "1s", "ES", 3_000),
                                                          ("CAT.v.1", "1s", "ES", 1_000)]
    refresh_catalog(storage_db)
    assert _catalog(storage_db, "continuous_bars") == loaded
