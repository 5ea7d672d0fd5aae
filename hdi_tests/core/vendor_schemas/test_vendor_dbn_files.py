"""DBN file ingestion on every real Databento sample file: decoded, mapped and validated values equal the
files' own values as databento decodes them (DBNStore.to_df with fixed prices and raw timestamps)."""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import databento as db
import numpy as np
import pyarrow as pa
import pytest
import zstandard
from repo_paths import DBN_SAMPLES

from hdi_core.errors import HdiError
from hdi_core.vendor_schemas.config import SCHEMAS
from hdi_core.vendor_schemas.dbn_files import read_dbn_file, to_vendor_rows
from hdi_core.vendor_schemas.mapping import apply_mapping, load_mappings

SAMPLES = DBN_SAMPLES
ALL_FILES = sorted(p for p in SAMPLES.rglob("*") if p.name.endswith((".dbn", ".dbn.zst")))
# Schemas HDI does not store, and why; their files must be refused with a clear error.
UNSUPPORTED = {
    "mbo": "order-book events: HDI stores trades/tbbo, not full depth",
    "mbp-1": "quote updates: tbbo (the trade-space subset) is stored instead",
    "mbp-10": "10-level depth is not stored",
    "bbo-1s": "sampled quotes are not stored",
    "bbo-1m": "sampled quotes are not stored",
    "cbbo-1s": "consolidated quotes (OPRA) are not stored",
    "cbbo-1m": "consolidated quotes (OPRA) are not stored",
    "cmbp-1": "consolidated quotes are not stored",
    "status": "trading status is not stored",
    "imbalance": "auction imbalance (equities) is not stored",
}
# Non-futures definitions lack fields definitions_data requires (NOT NULL): quarantined, with that rule.
EXPECTED_QUARANTINE = {
    "databento-python/EQUS.MINI/test_data.definition.dbn.zst": "required.min_price_increment",
    "databento-python/IFEU.IMPACT/test_data.definition.dbn.zst": "required.display_factor",
    "databento-python/NDEX.IMPACT/test_data.definition.dbn.zst": "required.display_factor",
    "databento-python/OPRA.PILLAR/test_data.definition.dbn.zst": "required.min_price_increment",
    "databento-python/XNAS.ITCH/test_data.definition.dbn.zst": "required.min_price_increment",
    "dbn/test_data.definition.dbn": "required.min_price_increment",
    "dbn/test_data.definition.v1.dbn.zst": "required.min_price_increment",
    "dbn/test_data.definition.v2.dbn.zst": "required.min_price_increment",
    "dbn/test_data.definition.v3.dbn.zst": "required.min_price_increment",
}
UNDEF_PRICE = np.iinfo(np.int64).max
UNDEF_TS = np.iinfo(np.uint64).max


def _schema_of(path: Path) -> str:
    return path.name.split(".")[1]


def _rel(path: Path) -> str:
    return str(path.relative_to(SAMPLES))


SUPPORTED_FILES = [p for p in ALL_FILES if _schema_of(p) in SCHEMAS]
UNSUPPORTED_FILES = [p for p in ALL_FILES if _schema_of(p) in UNSUPPORTED]


def test_every_sample_file_is_classified():
    assert ALL_FILES, f"no DBN samples under {SAMPLES}"
    unknown = [
        _rel(p)
        for p in ALL_FILES
        if _schema_of(p) not in SCHEMAS and _schema_of(p) not in UNSUPPORTED and _schema_of(p) != "live"
    ]
    assert unknown == []
    versions = {db.DBNStore.from_file(p).metadata.version for p in SUPPORTED_FILES}
    assert versions == {1, 2, 3}


def _decoded(path: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas deprecation noise inside databento's to_df
        return (
            db.DBNStore.from_file(path)
            .to_df(price_type="fixed", pretty_ts=False, map_symbols=True)
            .reset_index()
        )


def _expected(values: np.ndarray, rule, src_dtype: np.dtype) -> list:
    """What the stored column must hold: the file's value, or None where it is a "no value" sentinel."""
    out = []
    for v in values.tolist():
        if rule.kind == "price" and v == UNDEF_PRICE or rule.kind == "timestamp" and v == UNDEF_TS:
            out.append(None)
        elif rule.kind == "char":
            out.append(None if v in ("", "\x00") else v)
        elif rule.kind == "string":
            out.append(None if v in rule.null_if else v)
        elif rule.null_if_dtype_max and v == np.iinfo(src_dtype).max or v in rule.null_if:
            out.append(None)
        elif rule.kind == "date":
            out.append(None if v == 65535 else v)
        elif rule.kind in ("int16", "int32") and not -(2 ** (int(rule.kind[3:]) - 1)) <= v < 2 ** (
            int(rule.kind[3:]) - 1
        ):
            out.append(None)
        else:
            out.append(v)
    return out


@pytest.mark.parametrize("path", SUPPORTED_FILES, ids=_rel)
def test_stored_values_equal_the_files_decoded_values(path: Path):
    dbn = read_dbn_file(path)
    store = db.DBNStore.from_file(path)
    frame = _decoded(path)
    assert dbn.schema == _schema_of(path) == str(store.schema.value)
    assert dbn.version == store.metadata.version
    assert dbn.dataset == store.metadata.dataset
    assert dbn.symbols == list(store.metadata.symbols)
    assert dbn.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert dbn.num_records == len(frame) == len(store.to_ndarray().reshape(-1))

    # Every stored column that comes from a DBN field holds that field's value (sentinels -> NULL).
    mapping = load_mappings().family(dbn.schema)
    stored = apply_mapping(dbn.table, dbn.schema, dataset=dbn.dataset)
    assert stored.column_names == mapping.column_names
    arrays = store.to_ndarray().reshape(-1)
    checked = 0
    for rule in mapping.columns:
        if rule.is_constant or rule.source not in frame.columns:
            continue
        got = stored.column(rule.name)
        if rule.kind == "timestamp":
            got = got.cast(pa.int64())
        elif rule.kind == "date":
            got = got.cast(pa.int32())
        want = _expected(frame[rule.source].to_numpy(), rule, arrays.dtype[rule.source])
        assert got.to_pylist() == want, f"{_rel(path)}: {rule.name} <- {rule.source}"
        checked += 1
    assert checked >= 5
    if dbn.num_records:
        assert dbn.table.column("symbol").to_pylist() == frame["symbol"].tolist()

    valid, quarantined = to_vendor_rows(dbn)
    assert valid.num_rows + quarantined.num_rows == dbn.num_records
    expected_rule = EXPECTED_QUARANTINE.get(_rel(path))
    if expected_rule is None:
        assert quarantined.num_rows == 0, quarantined.column("message").to_pylist()
        assert valid.equals(stored)
    else:
        assert set(quarantined.column("rule").to_pylist()) == {expected_rule}


@pytest.mark.parametrize("path", UNSUPPORTED_FILES, ids=_rel)
def test_unsupported_schemas_are_refused_naming_the_file(path: Path):
    with pytest.raises(HdiError) as err:
        read_dbn_file(path)
    assert str(path) in str(err.value)
    assert f"schema {_schema_of(path)} is not supported" in str(err.value)


def test_prices_timestamps_and_symbols_of_a_cme_trade():
    dbn = read_dbn_file(SAMPLES / "databento-python" / "GLBX.MDP3" / "test_data.trades.dbn.zst")
    valid, _ = to_vendor_rows(dbn)
    first = valid.to_pylist()[0]
    frame = _decoded(SAMPLES / "databento-python" / "GLBX.MDP3" / "test_data.trades.dbn.zst")
    assert first["price"] == int(frame["price"][0])  # int64 1e-9 fixed point, not a float
    assert valid.schema.field("ts_event").type == pa.timestamp("ns", tz="UTC")
    assert valid.column("ts_event").cast(pa.int64())[0].as_py() == int(frame["ts_event"][0])
    assert set(dbn.table.column("symbol").to_pylist()) == {"ESH1"}


def test_live_file_needs_a_schema_and_then_reads_it():
    live = SAMPLES / "databento-python" / "LIVE" / "test_data.live.dbn.zst"
    with pytest.raises(HdiError, match="mixed record types"):
        read_dbn_file(live)
    trades = read_dbn_file(live, schema="trades")
    assert trades.schema == "trades" and trades.num_records == 2
    valid, quarantined = to_vendor_rows(trades)
    assert valid.num_rows + quarantined.num_rows == 2


def test_limit_and_symbol_select_records():
    path = SAMPLES / "databento-python" / "GLBX.MDP3" / "test_data.ohlcv-1s.dbn.zst"
    assert read_dbn_file(path, limit=1).num_records == 1
    assert read_dbn_file(path, symbol="ESH1").num_records == 4
    assert read_dbn_file(path, symbol="5482").num_records == 4
    with pytest.raises(HdiError, match="no records for symbol 'NQH1'"):
        read_dbn_file(path, symbol="NQH1")


def test_ohlcv_5m_is_built_from_a_1m_file_only():
    one_minute = read_dbn_file(SAMPLES / "databento-python" / "GLBX.MDP3" / "test_data.ohlcv-1m.dbn.zst")
    valid, quarantined = to_vendor_rows(one_minute, "ohlcv.5m")
    assert set(valid.column("granularity").to_pylist()) == {"5m"}
    assert quarantined.num_rows == 0
    assert valid.column("volume").to_pylist() and sum(valid.column("volume").to_pylist()) == sum(
        one_minute.table.column("volume").to_pylist()
    )
    hourly = read_dbn_file(SAMPLES / "databento-python" / "GLBX.MDP3" / "test_data.ohlcv-1h.dbn.zst")
    with pytest.raises(HdiError, match="ohlcv-5m is built from ohlcv-1m"):
        to_vendor_rows(hourly, "ohlcv-5m")


def _plain_bytes(path: Path) -> bytes:
    return zstandard.ZstdDecompressor().stream_reader(path.open("rb")).read()


@pytest.mark.parametrize("case", ["cut_record", "cut_header", "cut_zstd", "not_dbn", "empty", "missing"])
def test_broken_files_raise_hdi_error_naming_the_file(tmp_path: Path, case: str):
    source = SAMPLES / "databento-python" / "GLBX.MDP3" / "test_data.trades.dbn.zst"
    target = tmp_path / ("broken.dbn.zst" if case == "cut_zstd" else "broken.dbn")
    if case == "cut_record":
        target.write_bytes(_plain_bytes(source)[:-10])
    elif case == "cut_header":
        target.write_bytes(_plain_bytes(source)[:40])
    elif case == "cut_zstd":
        target.write_bytes(source.read_bytes()[:-20])
    elif case == "not_dbn":
        target.write_text("ts_event,price\n1,2\n")
    elif case == "empty":
        target.write_bytes(b"")
    with pytest.raises(HdiError) as err:
        read_dbn_file(target)
    message = str(err.value)
    assert str(target) in message and "\n" not in message
    expected = {
        "cut_record": "truncated",
        "cut_header": "cannot decode",
        "cut_zstd": "truncated zstd",
        "not_dbn": "not a DBN file",
        "empty": "empty file",
        "missing": "no such file",
    }[case]
    assert expected in message
