"""FileSource and the gateway over the real Databento sample files (DBN v1..v3), through the real client."""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path

import databento as db
import numpy as np
import pytest
from repo_paths import DBN_SAMPLES

from hdi_core.dbn import decode_file, schema_dtype, time_field
from hdi_core.errors import HdiError
from hdi_gateway.files import FileSource

DBN_SAMPLES = DBN_SAMPLES

SAMPLE_FILES = sorted(p for p in DBN_SAMPLES.rglob("*") if p.name.endswith((".dbn", ".dbn.zst")))
SINGLE_SCHEMA_FILES = [p for p in SAMPLE_FILES if "LIVE" not in p.parts]
LIVE_FILE = DBN_SAMPLES / "databento-python" / "LIVE" / "test_data.live.dbn.zst"


def _rows(records: np.ndarray) -> set[bytes]:
    """Records as a set of raw v3 byte rows."""
    return {
        bytes(row) for row in np.ascontiguousarray(records).view(np.dtype((np.void, records.dtype.itemsize)))
    }


def _store_records_v3(path: Path) -> tuple[db.DBNStore, np.ndarray]:
    """The file decoded by databento's own DBNStore (records upgraded to v3 by its decoder)."""
    store = db.DBNStore.from_file(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = b"".join(bytes(r) for r in store)
    return store, np.frombuffer(raw, dtype=schema_dtype(str(store.schema)))


def test_samples_present() -> None:
    assert len(SAMPLE_FILES) > 100, f"sample files missing under {DBN_SAMPLES}"
    versions = {decode_file(p).version for p in SAMPLE_FILES}
    assert versions == {1, 2, 3}


def test_decode_matches_databento_for_every_version() -> None:
    for path in SINGLE_SCHEMA_FILES:
        store, expected = _store_records_v3(path)
        decoded = decode_file(path)
        assert decoded.metadata.dataset == store.metadata.dataset
        assert decoded.version == store.metadata.version
        got = decoded.records[str(store.schema)]
        assert got.tobytes() == expected.tobytes(), path.name


def test_index_covers_every_file_and_deduplicates(sample_files_source: FileSource) -> None:
    for path in SINGLE_SCHEMA_FILES:
        store, expected = _store_records_v3(path)
        dataset, schema = store.metadata.dataset, str(store.schema)
        assert schema in sample_files_source.schemas(dataset), path.name
        held = sample_files_source.records(dataset, schema, None, 0, 2**63 - 1)
        assert _rows(expected) <= _rows(held), path.name
        assert len(_rows(held)) == len(held), f"{dataset} {schema}: duplicate records"
        keys = held[time_field(schema)]
        assert np.all(keys[1:] >= keys[:-1])
    # the v1, v2 and v3 copies of the dbn/ GLBX trades collapse to 2 records (+ 4 python, 2 live ones)
    glbx_trades = sample_files_source.records("GLBX.MDP3", "trades", None, 0, 2**63 - 1)
    assert len(glbx_trades) == 4 + 2 + 2


def test_instruments_and_daily_stats(sample_files_source: FileSource) -> None:
    start = 1609113600 * 10**9  # 2020-12-28
    listed = {
        i.raw_symbol: i for i in sample_files_source.instruments("GLBX.MDP3", start, start + 86_400 * 10**9)
    }
    esh1 = listed["ESH1"]
    assert (esh1.instrument_id, esh1.parent, esh1.tick_size, esh1.multiplier) == (
        5482,
        "ES.FUT",
        250_000_000,
        50,
    )
    daily = sample_files_source.daily_stats("GLBX.MDP3", dt.date(2020, 12, 28), dt.date(2020, 12, 29))
    assert list(daily.columns) == ["date", "instrument_id", "volume", "open_interest"]
    assert daily.loc[0, "date"] == dt.date(2020, 12, 28) and daily.loc[0, "instrument_id"] == 5482
    assert daily.loc[0, "volume"] > 0


def test_not_a_dbn_folder(tmp_path: Path) -> None:
    with pytest.raises(HdiError, match="no .dbn"):
        FileSource(tmp_path)
    (tmp_path / "bad.dbn").write_bytes(b"not dbn at all")
    with pytest.raises(HdiError, match="bad.dbn"):
        FileSource(tmp_path)


@pytest.mark.parametrize("path", SINGLE_SCHEMA_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_gateway_serves_every_sample_file(files_client: db.Historical, path: Path) -> None:
    store, expected = _store_records_v3(path)
    meta = store.metadata
    schema = str(store.schema)
    if len(expected) == 0:
        pytest.skip("file holds no records")
    end = meta.end if meta.end else int(expected[time_field(schema)].max()) + 1
    symbols = list(meta.symbols) or None
    stype_in = str(meta.stype_in) if symbols else "raw_symbol"
    got = files_client.timeseries.get_range(
        meta.dataset, meta.start, end, symbols=symbols, schema=schema, stype_in=stype_in
    )
    array = got.to_ndarray()
    assert array.dtype.itemsize == schema_dtype(schema).itemsize
    assert _rows(expected) <= _rows(np.asarray(array)), path.name
    # the real values, field by field, for the file's own records
    by_bytes = {bytes(r): r for r in np.asarray(array).view(np.dtype((np.void, array.dtype.itemsize)))}
    assert all(bytes(r) in by_bytes for r in expected.view(np.dtype((np.void, expected.dtype.itemsize))))
    if symbols and stype_in == "raw_symbol":
        assert set(got.metadata.mappings) == set(symbols)
        assert {iv["symbol"] for ivs in got.metadata.mappings.values() for iv in ivs} >= {
            str(i) for i in np.unique(expected["instrument_id"])
        }


def test_gateway_values_equal_file_values(files_client: db.Historical) -> None:
    path = DBN_SAMPLES / "dbn" / "test_data.mbp-10.v1.dbn.zst"
    store = db.DBNStore.from_file(path)
    got = files_client.timeseries.get_range(
        "GLBX.MDP3", "2020-12-28T13:00", "2020-12-28T14:00", symbols=["ESH1"], schema="mbp-10"
    )
    ours = got.to_df(price_type="fixed", map_symbols=True)
    theirs = store.to_df(price_type="fixed", map_symbols=True)
    merged = theirs.merge(ours, how="left", on=["ts_event", "sequence"], suffixes=("", "_gw"), indicator=True)
    assert (merged["_merge"] == "both").all()
    for column in ("price", "size", "bid_px_00", "ask_px_09", "bid_sz_04", "instrument_id", "symbol"):
        assert (merged[column] == merged[f"{column}_gw"]).all(), column


def test_live_file_records_are_served(files_client: db.Historical) -> None:
    live = decode_file(LIVE_FILE)
    mbo = live.records["mbo"]
    got = files_client.timeseries.get_range(
        "GLBX.MDP3", int(mbo["ts_recv"].min()), int(mbo["ts_recv"].max()) + 1, schema="mbo"
    )
    assert _rows(mbo) <= _rows(np.asarray(got.to_ndarray()))


def test_parent_and_continuous_from_files(files_client: db.Historical) -> None:
    esh1 = files_client.timeseries.get_range(
        "GLBX.MDP3", "2020-12-28", "2020-12-29", symbols=["ESH1"]
    ).to_ndarray()
    parent = files_client.timeseries.get_range(
        "GLBX.MDP3", "2020-12-28", "2020-12-29", symbols=["ES.FUT"], stype_in="parent"
    ).to_ndarray()
    lead = files_client.timeseries.get_range(
        "GLBX.MDP3", "2020-12-28", "2020-12-29", symbols=["ES.c.0"], stype_in="continuous"
    )
    assert len(esh1) == 6
    assert parent.tobytes() == esh1.tobytes()
    assert lead.to_ndarray().tobytes() == esh1.tobytes()
    assert lead.metadata.mappings["ES.c.0"][0]["symbol"] == "5482"
