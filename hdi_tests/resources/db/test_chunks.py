"""TimescaleDB bar loads written as compressed batches (migration 0013, hdi_resources/db/chunks.py): a load's
slices are compressed when it commits, with no compression pass; a reload into compressed chunks replaces its
rows exactly and leaves another symbol's rows of the same chunks alone; the primary key still guards the
chunks; unsorted rows of several series per window are stored right; leftovers of a killed worker are dropped.
Oracles: the input columns summed by NumPy, and plain SQL counts."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pytest
from sample_bars import random_walk_bars, rows

from hdi_resources.db import Database
from hdi_resources.db.chunks import FRESH_CHUNK_MIN_ROWS
from hdi_resources.db.replace import replace_partition

START_S = 1_704_326_400  # 2024-01-04 00:00 UTC: the first day of a 7-day chunk (TimescaleDB's default origin)
WEEK_S = 7 * 86_400


@pytest.fixture(scope="module")
def db(storage_db: Database) -> Database:
    if storage_db.storage_mode != "timescaledb":
        pytest.skip("compressed batches are TimescaleDB's; native partitions are plain tables")
    return storage_db


def bars(symbol_seed: int, first_s: int, n: int, step_s: int = 1, granularity: str = "1s") -> pa.Table:
    return random_walk_bars(first_s + step_s * np.arange(n, dtype=np.int64), symbol_seed, "ES", granularity,
                            4_500_000_000_000, 250_000_000)


def key(symbol: str, window: str = "2024-01-04", **more: str) -> dict[str, str]:
    return {"continuous_symbol": symbol, "window": window, **more}


def stored(db: Database, symbol: str) -> tuple[int, Decimal | None, int | None]:
    """Rows, sum of closes and of volumes of one symbol, as the database counts them."""
    return rows(db, "SELECT count(*), sum(close), sum(volume) FROM continuous_bars WHERE continuous_symbol = %s",
                (symbol,))[0]


def expected(table: pa.Table) -> tuple[int, Decimal, int]:
    return (table.num_rows, Decimal(int(table.column("close").to_numpy().sum())) / 10**9,
            int(table.column("volume").to_numpy().sum()))


def chunk_states(db: Database) -> dict[dt.date, str]:
    found = rows(db, """SELECT c.range_start, c.is_compressed, k.status & 8 = 8
                        FROM timescaledb_information.chunks c JOIN _timescaledb_catalog.chunk k
                          ON k.schema_name = c.chunk_schema AND k.table_name = c.chunk_name
                        WHERE c.hypertable_name = 'continuous_bars'""")
    return {start.astimezone(dt.UTC).date(): ("partial" if partial else "compressed" if compressed else "plain")
            for start, compressed, partial in found}


def test_a_fresh_load_is_compressed_when_it_commits(db: Database) -> None:
    new = bars(1, START_S, 2 * WEEK_S // 10, step_s=10)  # two whole chunks, 60,480 rows each
    result = replace_partition(db, "continuous_bars", key("ES.v.0"), new)  # without the compression pass
    assert result.inserted == new.num_rows
    assert chunk_states(db) == {dt.date(2024, 1, 4): "compressed", dt.date(2024, 1, 11): "compressed"}
    assert stored(db, "ES.v.0") == expected(new)
    read = db.query("ES.v.0", "ohlcv-1s", start="2024-01-04", end="2024-01-19")
    assert read.num_rows == new.num_rows
    micros = pa.timestamp("us", tz="UTC")
    assert read.column("ts").cast(micros).equals(new.column("ts").cast(micros))  # in time order, every row
    sizes = db.info()["compression"]["continuous_bars"]
    assert sizes["compressed_chunks"] == 2
    assert sizes["before_compression_bytes"] > 5 * sizes["after_compression_bytes"] > 0


def test_reload_into_compressed_chunks_keeps_the_other_symbols_rows(db: Database) -> None:
    other = bars(2, START_S, WEEK_S // 5, step_s=5)  # a second series in the first chunk, appended as batches
    db.replace_partition("continuous_bars", key("NQ.v.0"), other)
    assert chunk_states(db)[dt.date(2024, 1, 4)] == "compressed"
    shorter = bars(3, START_S + 3_600, WEEK_S // 10, step_s=10)  # only the first chunk, an hour later on
    again = db.replace_partition("continuous_bars", key("ES.v.0"), shorter)
    assert (again.inserted, again.deleted) == (shorter.num_rows, 2 * WEEK_S // 10)
    assert stored(db, "ES.v.0") == expected(shorter)
    assert stored(db, "NQ.v.0") == expected(other)
    assert set(chunk_states(db).values()) == {"compressed"}
    with pytest.raises(Exception, match="duplicate key"):  # the chunk's primary key still guards it
        rows(db, """INSERT INTO continuous_bars SELECT continuous_symbol, root_symbol, granularity, ts, trade_date,
                        open, high, low, close, volume, trade_count, vwap, adjustment_method, "window"
                    FROM continuous_bars WHERE continuous_symbol = 'NQ.v.0' ORDER BY ts LIMIT 1 RETURNING 1""")


def test_unsorted_rows_of_two_series_in_one_window(db: Database) -> None:
    n = FRESH_CHUNK_MIN_ROWS
    seconds = bars(4, START_S + 2 * WEEK_S, n, step_s=15)
    minutes = bars(5, START_S + 2 * WEEK_S, n // 2, step_s=60, granularity="1m")
    mixed = pa.concat_tables([seconds, minutes])
    mixed = mixed.take(pa.array(np.random.default_rng(6).permutation(mixed.num_rows)))
    part = key("ZB.v.0", "2024-01-18")
    assert db.replace_partition("continuous_bars", part, mixed).inserted == mixed.num_rows
    assert stored(db, "ZB.v.0") == tuple(a + b for a, b in zip(expected(seconds), expected(minutes), strict=True))
    assert rows(db, "SELECT granularity, count(*) FROM continuous_bars WHERE continuous_symbol = 'ZB.v.0' "
                    "GROUP BY 1 ORDER BY 1") == [("1m", n // 2), ("1s", n)]
    assert chunk_states(db)[dt.date(2024, 1, 18)] == "compressed"


def test_leftovers_of_a_killed_worker_are_dropped_by_the_next_load(db: Database) -> None:
    """A worker committed its staging hypertable and batches, then its load died: nothing is visible, and the
    next load of the slice drops them."""
    week = dt.datetime(2024, 1, 25, tzinfo=dt.UTC)
    with db.raw() as conn, conn.cursor() as cur:  # piece 5: more pieces than the next load makes
        cur.execute("SELECT hdi.hdi_stage_bar_batches(%s, 0, '{}'), hdi.hdi_stage_bar_batches(%s, 5, '{}')",
                    (week, week))
        stages = cur.fetchone()
    part = key("CL.v.0", "2024-01-25")
    new = bars(7, int(week.timestamp()), FRESH_CHUNK_MIN_ROWS, step_s=20)
    assert db.replace_partition("continuous_bars", part, new).inserted == new.num_rows
    assert rows(db, "SELECT relname FROM pg_class WHERE relname LIKE 'continuous_bars_stage_%%'") == []
    assert rows(db, "SELECT to_regclass(%s), to_regclass(%s)", stages) == [(None, None)]
    assert stored(db, "CL.v.0") == expected(new)


def test_two_symbols_loading_one_new_slice_at_once_both_finish(db: Database) -> None:
    """Loads of two symbols into the same chunk-less week take turns on the slice (its chunk and stage tables
    are every symbol's); both finish with exact counts."""
    from concurrent.futures import ThreadPoolExecutor

    first = START_S + 5 * WEEK_S
    loads = {symbol: bars(seed, first, WEEK_S // 20, step_s=20) for seed, symbol in ((8, "RTY.v.0"), (9, "YM.v.0"))}
    with ThreadPoolExecutor(2) as pool:
        done = list(pool.map(lambda item: db.replace_partition("continuous_bars", key(item[0], "2024-02-08"),
                                                               item[1]).inserted, loads.items()))
    assert done == [WEEK_S // 20] * 2
    for symbol, table in loads.items():
        assert stored(db, symbol) == expected(table)
    assert chunk_states(db)[dt.date(2024, 2, 8)] == "compressed"


def test_reads_stay_in_time_order_after_a_window_is_reloaded_between_others(db: Database) -> None:
    """Three adjacent windows of one series share a chunk; reloading the middle one appends its batches after
    the later window's: reads in time order (SQL ORDER BY, and Database.query) still come out sorted and whole."""
    first = START_S + 7 * WEEK_S
    day = 86_400
    windows = {f"2024-02-2{i}": bars(10 + i, first + i * 2 * day, 2 * day // 4, step_s=4) for i in range(3)}
    for window, table in windows.items():
        db.replace_partition("continuous_bars", key("HG.v.0", window), table)
    middle = bars(20, first + 2 * day, 2 * day // 4, step_s=4)
    db.replace_partition("continuous_bars", key("HG.v.0", "2024-02-21"), middle)
    want = np.concatenate([t.column("ts").cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_numpy()
                           for t in (windows["2024-02-20"], middle, windows["2024-02-22"])])
    by_sql = rows(db, "SELECT (extract(epoch FROM ts) * 1000000)::int8 FROM continuous_bars "
                      "WHERE continuous_symbol = 'HG.v.0' ORDER BY ts")
    assert np.array_equal(np.array([r[0] for r in by_sql]), want)
    read = db.query("HG.v.0", "ohlcv-1s", start="2024-02-22", end="2024-02-29")
    assert np.array_equal(read.column("ts").cast(pa.int64()).to_numpy(), want)
    assert stored(db, "HG.v.0")[2] == sum(expected(t)[2] for t in (windows["2024-02-20"], middle,
                                                                    windows["2024-02-22"]))


def test_a_small_reload_into_a_compressed_chunk_goes_as_batches_too(db: Database) -> None:
    """A week of minute bars (a few thousand rows, too few to stage a new chunk) goes through the hypertable
    first; reloaded once the chunk is compressed, it is written as batches and replaces its rows exactly."""
    first = START_S + 9 * WEEK_S
    minutes = bars(30, first, WEEK_S // 60, step_s=60, granularity="1m")
    part = key("6E.v.0", "2024-03-07", granularity="1m")
    db.replace_partition("continuous_bars", part, minutes)  # then compressed by the pass after the load
    assert chunk_states(db)[dt.date(2024, 3, 7)] == "compressed"
    again = bars(31, first + 600, WEEK_S // 60 - 10, step_s=60, granularity="1m")
    result = replace_partition(db, "continuous_bars", part, again)  # without the compression pass
    assert (result.inserted, result.deleted) == (again.num_rows, minutes.num_rows)
    assert stored(db, "6E.v.0") == expected(again)
    assert chunk_states(db)[dt.date(2024, 3, 7)] == "compressed"  # no row went to the chunk's heap
