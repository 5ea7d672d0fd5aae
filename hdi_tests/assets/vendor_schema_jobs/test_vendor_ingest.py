"""DBN file ingestion into native PostgreSQL and TimescaleDB: every supported sample file (DBN v1..v3), stored values
equal to what databento itself decodes, the audit trail, re-ingest without change, dry runs, quarantine."""

from __future__ import annotations

import datetime as dt
import json
import warnings
from decimal import Decimal
from pathlib import Path

import databento as db
import numpy as np
import pyarrow as pa
import pytest
from repo_paths import DBN_SAMPLES

from hdi_assets.vendor_schema_jobs.ingest import (
    date_chunks,
    find_dbn_files,
    ingest_dbn_file,
    ingest_records,
    symbol_labels,
)
from hdi_core import dbn as dbn_codec
from hdi_core.dbn.encode import encode_stream
from hdi_core.errors import HdiError
from hdi_core.vendor_schemas.config import SCHEMAS
from hdi_core.vendor_schemas.dbn_files import read_dbn_file
from hdi_resources.databento import MappingInterval
from hdi_resources.db import Database

SAMPLES = DBN_SAMPLES
GLBX = SAMPLES / "databento-python" / "GLBX.MDP3"
# Non-futures definitions lack NOT NULL fields of definitions_data: quarantined whole (see test_vendor_dbn_files).
QUARANTINED_WHOLE = {"dbn/test_data.definition.dbn", "dbn/test_data.definition.v1.dbn.zst",
                     "dbn/test_data.definition.v2.dbn.zst", "dbn/test_data.definition.v3.dbn.zst",
                     *(f"databento-python/{d}/test_data.definition.dbn.zst"
                       for d in ("EQUS.MINI", "IFEU.IMPACT", "NDEX.IMPACT", "OPRA.PILLAR", "XNAS.ITCH"))}
READ_SCHEMA = {"definition": "definitions"}
UNDEF_PRICE = np.iinfo(np.int64).max


def _schema_of(path: Path) -> str:
    return path.name.split(".")[1]


SUPPORTED = [p for p in find_dbn_files([SAMPLES]) if _schema_of(p) in SCHEMAS] if SAMPLES.is_dir() else []


@pytest.fixture(scope="module")
def database(storage_db: Database) -> Database:
    return storage_db


def _scalar(db_: Database, sql: str, params: tuple = ()) -> object:
    with db_.raw() as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchone()[0]


def _nanos(value: Decimal | None) -> int | None:
    return None if value is None else int(value * 1_000_000_000)


def _decoded(path: Path) -> np.ndarray:
    """The file's records exactly as databento decodes them (independent of HDI's reader)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(db.DBNStore.from_file(path).to_ndarray()).reshape(-1)


def _stored(database: Database, schema: str, iid: int, ts_ns: np.ndarray) -> list[dict]:
    start = dt.datetime.fromtimestamp(int(ts_ns.min()) // 1000 / 1e6, dt.UTC)
    end = dt.datetime.fromtimestamp(int(ts_ns.max()) // 1000 / 1e6 + 1e-6, dt.UTC) + dt.timedelta(microseconds=1)
    return database.query(str(iid), READ_SCHEMA.get(schema, schema), start, end, raw=True).to_pylist()


def _micros(row: dict, name: str) -> int | None:
    value = row[name]
    return None if value is None else (value - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)


def _check_values(database: Database, path: Path) -> int:
    """Every decoded record of the file is stored with its own prices, timestamps and ids; returns checked."""
    schema = _schema_of(path)
    records = _decoded(path)
    checked = 0
    for iid in np.unique(records["instrument_id"]):
        mine = records[records["instrument_id"] == iid]
        rows = _stored(database, schema, int(iid), mine["ts_event"])
        for rec in mine:
            ts_us = int(rec["ts_event"]) // 1000  # TIMESTAMPTZ keeps microseconds
            if schema in ("trades", "tbbo"):
                match = [r for r in rows if _micros(r, "ts_event") == ts_us and r["sequence"] == int(rec["sequence"])
                         and _nanos(r["price"]) == int(rec["price"]) and r["size"] == int(rec["size"])]
                assert len(match) == 1, (path, rec)
                assert _micros(match[0], "ts_recv") == int(rec["ts_recv"]) // 1000
                assert match[0]["side"] == rec["side"].decode() and match[0]["flags"] == int(rec["flags"])
                if schema == "tbbo":
                    for side in ("bid_px_00", "ask_px_00"):  # UNDEF_PRICE (empty side) is stored as NULL
                        want = None if int(rec[side]) == UNDEF_PRICE else int(rec[side])
                        assert _nanos(match[0][side]) == want
                    assert match[0]["bid_sz_00"] == int(rec["bid_sz_00"])
            elif schema.startswith("ohlcv"):
                same_bar = mine[mine["ts_event"] == rec["ts_event"]]
                if rec is not same_bar[-1] and not np.array_equal(same_bar[-1], rec):
                    # OPRA: one bar per exchange, but ohlcv_data's key has no publisher: the last one is kept.
                    rec = same_bar[-1]
                match = [r for r in rows if _micros(r, "ts_event") == ts_us]
                assert len(match) == 1, (path, rec)
                got = match[0]
                assert [_nanos(got[c]) for c in ("open_price", "high_price", "low_price", "close_price")] == [
                    int(rec[c]) for c in ("open", "high", "low", "close")]
                assert got["volume"] == int(rec["volume"]) and got["granularity"] == schema.split("-")[1]
            elif schema == "statistics":
                match = [r for r in rows if _micros(r, "ts_event") == ts_us and r["stat_type"] == int(rec["stat_type"])
                         and r["sequence"] == int(rec["sequence"])]
                assert len(match) == 1, (path, rec)
                want_price = None if int(rec["price"]) == UNDEF_PRICE else int(rec["price"])
                assert _nanos(match[0]["price"]) == want_price
                quantity = int(rec["quantity"])
                undef = np.iinfo(rec["quantity"].dtype).max
                assert match[0]["quantity"] == (None if quantity == undef else quantity)
            else:  # definition
                match = [r for r in rows if _micros(r, "ts_event") == ts_us]
                assert len(match) == 1, (path, rec)
                assert match[0]["raw_symbol"] == rec["raw_symbol"].decode()
                assert _nanos(match[0]["min_price_increment"]) == int(rec["min_price_increment"])
            checked += 1
    return checked


def test_every_supported_sample_file_is_stored_with_its_own_values(database: Database) -> None:
    versions = set()
    checked = 0
    for path in SUPPORTED:
        rel = str(path.relative_to(SAMPLES))
        summary = ingest_dbn_file(database, path)
        assert summary.status in ("success", "skipped"), (rel, summary)
        versions.add(summary.dbn_version or read_dbn_file(path).version)
        if rel in QUARANTINED_WHOLE:
            assert summary.quarantined == summary.fetched and summary.stored == 0, rel
            continue
        assert summary.quarantined == 0 and summary.stored + summary.duplicates == summary.fetched, (rel, summary)
        checked += _check_values(database, path)
    assert versions == {1, 2, 3}
    assert checked > 60
    assert {_schema_of(p) for p in SUPPORTED} == {s for s in SCHEMAS if s not in ("ohlcv-5m", "ohlcv-15m")}


def test_audit_row_and_reingest_changes_nothing(database: Database) -> None:
    path = GLBX / "test_data.trades.dbn.zst"
    ingest_dbn_file(database, path)  # may already be there from the test above
    runs_before = _scalar(database, "SELECT count(*) FROM data_ingest_runs")
    rows_before = _scalar(database, "SELECT count(*) FROM trades_data")
    again = ingest_dbn_file(database, path)
    assert again.status == "skipped" and again.previous_run_id is not None
    assert "already ingested" in again.line()
    assert _scalar(database, "SELECT count(*) FROM data_ingest_runs") == runs_before
    assert _scalar(database, "SELECT count(*) FROM trades_data") == rows_before
    with database.raw() as conn, conn.cursor() as cur:
        cur.execute("""SELECT file_name, file_sha256, status, row_count, inserted_count, min_ts, max_ts,
                              started_at, finished_at, target_table, schema_name, error
                       FROM data_ingest_runs WHERE id = %s""", (again.previous_run_id,))
        name, sha, status, rows, inserted, min_ts, max_ts, started, finished, table, schema, error = cur.fetchone()
    records = _decoded(path)
    assert (name, sha, status, rows, table, schema, error) == (
        path.name, read_dbn_file(path).sha256, "success", len(records), "trades_data", "trades", None)
    assert inserted == len(records) and started <= finished
    assert min_ts == dt.datetime.fromtimestamp(int(records["ts_event"].min()) // 1000 / 1e6, dt.UTC)
    assert max_ts == dt.datetime.fromtimestamp(int(records["ts_event"].max()) // 1000 / 1e6, dt.UTC)
    forced = ingest_dbn_file(database, path, force=True)
    assert (forced.inserted, forced.updated, forced.unchanged) == (0, 0, len(records))
    assert _scalar(database, "SELECT count(*) FROM trades_data") == rows_before


def test_dry_run_writes_nothing(database: Database) -> None:
    path = GLBX / "test_data.ohlcv-1m.dbn.zst"
    runs = _scalar(database, "SELECT count(*) FROM data_ingest_runs")
    bars = _scalar(database, "SELECT count(*) FROM ohlcv_data WHERE granularity = '5m'")
    summary = ingest_dbn_file(database, path, schema="ohlcv-5m", dry_run=True)
    assert summary.status == "dry-run" and summary.stored >= 1 and summary.run_id is None
    assert "would store" in summary.line()
    assert _scalar(database, "SELECT count(*) FROM data_ingest_runs") == runs
    assert _scalar(database, "SELECT count(*) FROM ohlcv_data WHERE granularity = '5m'") == bars
    offline = ingest_dbn_file(None, path, dry_run=True, limit=1)
    assert offline.fetched == 1


def test_derived_5m_bars_from_a_1m_file(database: Database) -> None:
    path = GLBX / "test_data.ohlcv-1m.dbn.zst"
    records = _decoded(path)
    summary = ingest_dbn_file(database, path, schema="ohlcv-5m")
    assert summary.status == "success" and summary.schema == "ohlcv-5m"
    rows = database.query(str(int(records["instrument_id"][0])), "ohlcv-5m", raw=True).to_pylist()
    buckets = sorted({int(t) // (300 * 10**9) for t in records["ts_event"]})
    assert len(rows) == len(buckets) == summary.stored
    first = records[records["ts_event"] // (300 * 10**9) == buckets[0]]
    assert _nanos(rows[0]["high_price"]) == int(first["high"].max())
    assert _nanos(rows[0]["open_price"]) == int(first["open"][0])
    assert rows[0]["volume"] == int(first["volume"].sum())


def test_designed_bad_records_are_quarantined_and_good_ones_kept(database: Database) -> None:
    good = read_dbn_file(GLBX / "test_data.tbbo.dbn.zst").table
    n = good.num_rows
    price = good.column("price").to_numpy().copy()
    price[0] = -price[0]  # negative price
    size = good.column("size").to_numpy().copy()
    size[1] = 0  # zero size
    bid = good.column("bid_px_00").to_numpy().copy()
    ask = good.column("ask_px_00").to_numpy().copy()
    bid[2] = ask[2] + 250_000_000  # crossed book
    bad = (good.set_column(good.schema.get_field_index("price"), "price", pa.array(price))
           .set_column(good.schema.get_field_index("size"), "size", pa.array(size))
           .set_column(good.schema.get_field_index("bid_px_00"), "bid_px_00", pa.array(bid)))
    ts = bad.column("ts_event").to_numpy() + 10**12  # new keys: not the sample rows stored earlier
    bad = bad.set_column(bad.schema.get_field_index("ts_event"), "ts_event", pa.array(ts))
    summary = ingest_records(database, bad, "tbbo", source="test:designed-bad", dataset="GLBX.MDP3",
                             partition="designed-bad", dead_letter_job="designed_bad")
    assert summary.quarantined == 3 and summary.stored == n - 3 == summary.inserted
    assert summary.rules == {"price.positive": 1, "size.positive": 1, "bbo.bid_le_ask": 1}
    lines = [json.loads(line) for line in Path(summary.dead_letter).read_text().splitlines()]
    assert sorted(line["rule"] for line in lines) == ["bbo.bid_le_ask", "price.positive", "size.positive"]
    assert all(line["record"]["instrument_id"] == 5482 for line in lines)
    with database.raw() as conn, conn.cursor() as cur:
        cur.execute('SELECT rule, run_id FROM quarantine WHERE "partition" = %s ORDER BY rule', ("designed-bad",))
        stored = cur.fetchall()
        cur.execute("SELECT quarantined_count, inserted_count, status FROM data_ingest_runs WHERE id = %s",
                    (summary.run_id,))
        assert cur.fetchone() == (3, n - 3, "success")
    assert stored == [("bbo.bid_le_ask", summary.run_id), ("price.positive", summary.run_id),
                      ("size.positive", summary.run_id)]
    again = ingest_records(database, bad, "tbbo", source="test:designed-bad", dataset="GLBX.MDP3",
                           partition="designed-bad", dead_letter_job="designed_bad")
    assert (again.inserted, again.unchanged, again.quarantined) == (0, n - 3, 3)
    assert _scalar(database, 'SELECT count(*) FROM quarantine WHERE "partition" = %s', ("designed-bad",)) == 3


def test_a_failing_run_is_recorded_as_failed(database: Database) -> None:
    broken = read_dbn_file(GLBX / "test_data.trades.dbn.zst").table.drop_columns(["price"])
    with pytest.raises(HdiError, match="price"):
        ingest_records(database, broken, "trades", source="test:broken", file_name="broken.dbn")
    with database.raw() as conn, conn.cursor() as cur:
        cur.execute("SELECT status, error, finished_at IS NOT NULL FROM data_ingest_runs "
                    "WHERE file_name = 'broken.dbn'")
        status, error, finished = cur.fetchone()
    assert status == "failed" and "price" in error and finished


def test_unsupported_and_broken_files_are_refused_by_name(database: Database, tmp_path: Path) -> None:
    mbo = GLBX / "test_data.mbo.dbn.zst"
    with pytest.raises(HdiError, match=r"test_data\.mbo\.dbn\.zst: schema mbo is not supported"):
        ingest_dbn_file(database, mbo)
    cut = tmp_path / "cut.dbn"
    data = (SAMPLES / "dbn" / "test_data.trades.dbn").read_bytes()
    cut.write_bytes(data[:-7])
    with pytest.raises(HdiError, match="cut.dbn: truncated"):
        ingest_dbn_file(database, cut)
    with pytest.raises(HdiError, match="holds ohlcv-1h records"):
        ingest_dbn_file(database, GLBX / "test_data.ohlcv-1h.dbn.zst", schema="ohlcv-5m")


def test_symbol_selection_and_limit_are_separate_ingests(database: Database) -> None:
    path = GLBX / "test_data.statistics.dbn.zst"
    first = ingest_dbn_file(database, path, limit=1, symbol="ESH1")
    assert first.status in ("success", "skipped") and first.fetched == 1
    assert ingest_dbn_file(database, path, limit=1, symbol="ESH1").status == "skipped"
    with pytest.raises(HdiError, match="no records for symbol 'NQZ9'"):
        ingest_dbn_file(database, path, symbol="NQZ9")


def test_symbol_labels_follow_the_mapping_intervals() -> None:
    day = 86_400 * 10**9
    table = pa.table({"instrument_id": pa.array([1, 2, 1, 3], pa.uint32()),
                      "ts_event": pa.array([0, day, 2 * day + 5, day], pa.uint64())})
    mappings = {"ES.v.0": [MappingInterval(dt.date(1970, 1, 1), dt.date(1970, 1, 2), "1"),
                           MappingInterval(dt.date(1970, 1, 2), dt.date(1970, 1, 4), "2")],
                "ESH0": [MappingInterval(dt.date(1970, 1, 1), dt.date(1970, 1, 5), "1")]}
    assert symbol_labels(table, mappings).to_pylist() == ["ES.v.0", "ES.v.0", "ESH0", None]


def test_date_chunks_cover_the_range_exactly() -> None:
    chunks = date_chunks(dt.date(2024, 3, 4), dt.date(2024, 3, 9), 2)
    assert [(c.key, c.end.isoformat()) for c in chunks] == [
        ("2024-03-04", "2024-03-06"), ("2024-03-06", "2024-03-08"), ("2024-03-08", "2024-03-09")]


# -- issue 11: record order, duplicates, the undefined-timestamp sentinel, exact nanoseconds ----------------

MARCH_2021 = 1_614_556_800_000_000_000  # 2021-03-01: a window no other test stores trades in
MS = 1_000_000


def _v3(schema: str) -> np.ndarray:
    """The GLBX sample's records in the DBN v3 layout, as a writable copy."""
    data = (GLBX / f"test_data.{schema}.dbn.zst").read_bytes()
    return dbn_codec.decode_bytes(data, schema, as_v3=True).records_of().copy()


def _write_dbn(path: Path, schema: str, records: np.ndarray) -> Path:
    """A DBN v3 file of `records` (databento_dbn metadata + the records' bytes), ESH1 mapped to 5482."""
    times = records["ts_event"].astype(np.int64)
    day = int(times.min()) // 86_400_000_000_000
    mappings = {"ESH1": [{"start_date": dt.date(1970, 1, 1) + dt.timedelta(days=day),
                          "end_date": dt.date(1970, 1, 1) + dt.timedelta(days=day + 2), "symbol": "5482"}]}
    path.write_bytes(encode_stream("GLBX.MDP3", schema, records, int(times.min()), int(times.max()) + 1, ["ESH1"],
                                   "raw_symbol", "instrument_id", mappings, None))
    return path


def _trades(n: int, start: int) -> np.ndarray:
    """n ESH1 trades 1 ms apart from `start` (ns), in ts_recv order, sequence 1000 + i."""
    records = np.resize(_v3("trades"), n).copy()
    records["ts_event"] = start + np.arange(n, dtype=np.uint64) * MS
    records["ts_recv"] = records["ts_event"] + 200_000
    records["sequence"] = 1000 + np.arange(n, dtype=np.uint32)
    records["price"] = 3_900_000_000_000 + np.arange(n, dtype=np.int64) * 250_000_000
    return records


def _quarantined(database: Database, run_id: int) -> list[tuple[str, dict]]:
    with database.raw() as conn, conn.cursor() as cur:
        cur.execute("SELECT rule, record FROM quarantine WHERE run_id = %s ORDER BY id", (run_id,))
        return cur.fetchall()


def test_two_records_with_swapped_timestamps_are_exactly_those_quarantined(database: Database,
                                                                          tmp_path: Path) -> None:
    records = _trades(12, MARCH_2021)
    for name in ("ts_event", "ts_recv"):  # records 3 and 8 trade places in time
        records[name][[3, 8]] = records[name][[8, 3]]
    summary = ingest_dbn_file(database, _write_dbn(tmp_path / "swapped.dbn", "trades", records))
    assert summary.rules == {"order.index_time": 2}
    assert (summary.stored, summary.quarantined) == (10, 2)
    rejected = _quarantined(database, summary.run_id)
    assert sorted(record["sequence"] for _, record in rejected) == [1003, 1008]
    assert {rule for rule, _ in rejected} == {"order.index_time"}


def test_late_ts_event_and_several_trades_at_one_time_are_real_data(database: Database, tmp_path: Path) -> None:
    records = _trades(10, MARCH_2021 + 3_600 * 10**9)
    for name in ("ts_event", "ts_recv"):  # one packet: three trades at one ts_event and ts_recv
        records[name][[5, 6, 7]] = records[name][5]
    records["ts_event"][9] = records["ts_event"][8] - 5 * MS  # matched earlier, received in order
    summary = ingest_dbn_file(database, _write_dbn(tmp_path / "real.dbn", "trades", records))
    assert (summary.stored, summary.quarantined, summary.duplicates) == (10, 0, 0)


def test_a_record_delivered_twice_is_stored_once_and_quarantined_once(database: Database, tmp_path: Path) -> None:
    records = _trades(8, MARCH_2021 + 2 * 3_600 * 10**9)
    twice = np.concatenate([records[:3], records[2:3], records[3:], records[5:6]])  # #2 at once, #5 much later
    summary = ingest_dbn_file(database, _write_dbn(tmp_path / "twice.dbn", "trades", twice))
    assert summary.rules == {"duplicate.record": 2}
    assert (summary.stored, summary.quarantined, summary.inserted) == (8, 2, 8)
    rejected = _quarantined(database, summary.run_id)
    assert sorted(record["sequence"] for _, record in rejected) == [1002, 1005]


def test_two_trades_in_one_microsecond_are_both_stored_in_ns_order(database: Database, tmp_path: Path) -> None:
    records = _trades(2, MARCH_2021 + 3 * 3_600 * 10**9)
    for name in ("ts_event", "ts_recv"):  # one packet, one microsecond: same sequence, price, size and side
        records[name] = records[name][0] + np.array([100, 700], dtype=np.uint64)
    records[["sequence", "price", "size", "side"]][1] = records[["sequence", "price", "size", "side"]][0]
    summary = ingest_dbn_file(database, _write_dbn(tmp_path / "one_us.dbn", "trades", records))
    assert (summary.inserted, summary.duplicates, summary.quarantined) == (2, 0, 0)
    stored = _stored(database, "trades", 5482, records["ts_event"])
    stored = [r for r in stored if r["ts_event_ns"] in set(records["ts_event"].astype(np.int64).tolist())]
    assert sorted(r["ts_event_ns"] for r in stored) == records["ts_event"].astype(np.int64).tolist()
    assert sorted(r["ts_recv_ns"] for r in stored) == records["ts_recv"].astype(np.int64).tolist()
    assert len({_micros(r, "ts_event") for r in stored}) == 1  # TIMESTAMPTZ alone could not tell them apart
    with database.raw() as conn, conn.cursor() as cur:
        cur.execute("SELECT ts_event_ns FROM trades_data WHERE instrument_id = 5482 AND ts_event = to_timestamp(%s) "
                    "ORDER BY ts_event, ts_event_ns", (int(records["ts_event"][0]) // 1000 / 1e6,))
        assert [r[0] for r in cur.fetchall()] == records["ts_event"].astype(np.int64).tolist()


def _stats_and_definitions(tmp_path: Path) -> tuple[Path, Path, np.ndarray]:
    stats = _v3("statistics")
    shift = np.uint64(MARCH_2021 + 4 * 3_600 * 10**9) - stats["ts_recv"].min()
    for name in ("ts_event", "ts_recv"):
        stats[name] += shift
    stats["ts_ref"] = np.iinfo(np.uint64).max  # UNDEF_TIMESTAMP
    definition = _v3("definition")
    for name in ("ts_event", "ts_recv"):
        definition[name] += shift
    definition["expiration"] = np.iinfo(np.uint64).max
    definition["activation"] = np.iinfo(np.uint64).max
    return (_write_dbn(tmp_path / "stats.dbn", "statistics", stats),
            _write_dbn(tmp_path / "definition.dbn", "definition", definition), definition)


def test_file_path_stores_the_undefined_timestamp_as_null(database: Database, tmp_path: Path) -> None:
    stats_path, definition_path, definition = _stats_and_definitions(tmp_path)
    stats = ingest_dbn_file(database, stats_path)
    assert stats.quarantined == 0 and stats.stored == 4
    defs = ingest_dbn_file(database, definition_path)
    assert defs.quarantined == 0 and defs.stored == 1
    with database.raw() as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*), count(ts_ref) FROM statistics_data WHERE instrument_id = 5482 "
                    "AND ts_event >= to_timestamp(%s)", ((MARCH_2021 + 4 * 3_600 * 10**9) / 1e9 - 1,))
        assert cur.fetchone() == (4, 0)
        cur.execute("SELECT expiration, activation FROM definitions_data WHERE ts_event_ns = %s",
                    (int(definition["ts_event"][0]),))
        assert cur.fetchall() == [(None, None)]


def test_api_path_stores_the_undefined_timestamp_as_null(database: Database, files_gateway,
                                                          tmp_path: Path) -> None:
    """Through the real databento client and the sample-files gateway: statistics' ts_ref of the GLBX sample is
    UNDEF_TIMESTAMP (the resource's table views it as int64 -1); definitions' expiration/activation too."""
    from hdi_assets.vendor_schema_jobs.ingest import fetch_and_ingest
    from hdi_core.vendor_schemas.mapping import apply_mapping
    from hdi_resources.databento import DatabentoResource

    resource = DatabentoResource.from_config(
        api_key="db-hdi-test-key", gateway=files_gateway.url, ca_path=str(files_gateway.ca_path),
        cache_dir=str(tmp_path / "cache"))
    summary = fetch_and_ingest(database, resource, dataset="GLBX.MDP3", schema="statistics", symbols=["ESH1"],
                               start=dt.date(2020, 12, 28), end=dt.date(2020, 12, 29), job_name="sentinel",
                               dead_letter_dir=str(tmp_path / "dead"))
    assert summary.status == "success" and summary.quarantined == 0 and summary.stored == 4
    records = _decoded(GLBX / "test_data.statistics.dbn.zst")
    assert (records["ts_ref"] == np.iinfo(np.uint64).max).all()
    rows = _stored(database, "statistics", 5482, records["ts_event"])
    mine = [r for r in rows if r["ts_event_ns"] in set(records["ts_event"].astype(np.int64).tolist())]
    assert len(mine) == 4 and all(r["ts_ref"] is None for r in mine)
    fetched = resource.get_range("XNAS.ITCH", "definition", ["NVDA"], "2020-12-28", "2020-12-29").table
    assert fetched.column("expiration").type == pa.int64()  # the API path's signed view of DBN u64 times
    mapped = apply_mapping(fetched, "definition", dataset="XNAS.ITCH")
    assert mapped.column("expiration").to_pylist() == [None] and mapped.column("activation").to_pylist() == [None]
