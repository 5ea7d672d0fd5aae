"""The DBN codec (hdi_core.dbn) against an independent reference: every real Databento sample file decodes to
exactly what `databento.DBNStore.to_ndarray` gives, plain and zstd agree, cut data is refused, and text fields
follow the one policy (UTF-8 up to the first NUL, invalid bytes replaced by U+FFFD, always `string`)."""

from __future__ import annotations

import warnings
from pathlib import Path

import databento as db
import databento_dbn
import numpy as np
import pyarrow as pa
import pytest
import zstandard
from repo_paths import DBN_SAMPLES

from hdi_core import dbn

SAMPLES = DBN_SAMPLES
SAMPLE_FILES = sorted(p for p in SAMPLES.rglob("*") if p.name.endswith((".dbn", ".dbn.zst")))  # none if absent
needs_samples = pytest.mark.skipif(not SAMPLE_FILES, reason=f"DBN sample files not found under {SAMPLES}")


def _rel(path: Path) -> str:
    return str(path.relative_to(SAMPLES))


def _reference(data: bytes, schema: str | None = None) -> np.ndarray:
    """databento's own decoding of the bytes (the network client's DBNStore, not HDI's codec)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        store = db.DBNStore.from_bytes(data)
        return np.asarray(store.to_ndarray(schema=schema)).reshape(-1)


def _plain(data: bytes) -> bytes:
    if data[:4] != b"\x28\xb5\x2f\xfd":
        return data
    return zstandard.ZstdDecompressor().stream_reader(data, read_across_frames=True).read()


@needs_samples
@pytest.mark.parametrize("path", SAMPLE_FILES, ids=_rel)
def test_every_sample_decodes_like_databento(path: Path) -> None:
    data = path.read_bytes()
    decoded = dbn.decode_bytes(data, str(path), as_v3=False)
    schemas = [decoded.schema] if decoded.schema is not None else sorted(decoded.records)
    assert schemas, "a file without records"
    for schema in schemas:
        expected = _reference(data, None if decoded.schema is not None else schema)
        got = decoded.records_of(schema)
        assert got.dtype == expected.dtype, schema
        assert got.tobytes() == expected.tobytes(), schema
        table = dbn.records_to_table(got, signed_times=False)
        assert table.num_rows == len(expected)
        for name in table.column_names:
            column = table.column(name)
            if expected.dtype[name].kind == "S":  # text: UTF-8 of the C string, as NumPy reads it here
                assert column.type == pa.string(), name
                assert column.to_pylist() == [v.decode("utf-8", "replace") for v in expected[name]], name
            else:
                assert column.to_pylist() == expected[name].tolist(), name


@needs_samples
@pytest.mark.parametrize("path", SAMPLE_FILES, ids=_rel)
def test_plain_and_zstd_decode_alike(path: Path) -> None:
    plain = _plain(path.read_bytes())
    compressed = zstandard.ZstdCompressor(level=3).compress(plain)
    split = zstandard.ZstdCompressor().compress(plain[:100]) + zstandard.ZstdCompressor().compress(plain[100:])
    results = [dbn.decode_bytes(body, path.name, as_v3=False) for body in (plain, compressed, split)]
    for result in results[1:]:
        assert result.version == results[0].version
        assert result.records.keys() == results[0].records.keys()
        for schema, records in result.records.items():
            assert records.tobytes() == results[0].records[schema].tobytes()
        assert result.mappings == results[0].mappings


@needs_samples
def test_cut_data_is_refused() -> None:
    raw = (SAMPLES / "databento-python" / "GLBX.MDP3" / "test_data.trades.dbn.zst").read_bytes()
    plain = _plain(raw)
    with pytest.raises(dbn.TruncatedDbnError, match="truncated zstd"):
        dbn.decode_bytes(raw[:-7], "cut.dbn.zst")
    with pytest.raises(dbn.TruncatedDbnError, match="cut.dbn: truncated: the last record"):
        dbn.decode_bytes(plain[:-5], "cut.dbn")
    with pytest.raises(dbn.TruncatedDbnError, match="cannot decode DBN metadata"):
        dbn.decode_bytes(plain[:40], "head.dbn")
    with pytest.raises(dbn.DbnError, match="not a DBN file"):
        dbn.decode_bytes(b"ts_event,price\n1,2\n", "text.csv")


@needs_samples
def test_mappings_are_typed_intervals() -> None:
    decoded = dbn.decode_file(SAMPLES / "databento-python" / "GLBX.MDP3" / "test_data.trades.dbn.zst", as_v3=False)
    (interval,) = decoded.mappings["ESH1"]
    assert isinstance(interval, dbn.MappingInterval) and interval.symbol == "5482"
    assert interval.start_date < interval.end_date


def _definitions_with_text(raw_symbols: list[bytes]) -> bytes:
    """A DBN v3 definition stream built with databento_dbn and NumPy only (not with HDI's encoder)."""
    dtype = np.dtype(databento_dbn.InstrumentDefMsg._dtypes)
    records = np.zeros(len(raw_symbols), dtype=dtype)
    records["length"] = dtype.itemsize // 4
    records["rtype"] = 0x13
    records["instrument_id"] = np.arange(1, len(raw_symbols) + 1)
    records["raw_symbol"] = raw_symbols
    records["currency"] = b"USD"
    metadata = databento_dbn.Metadata(
        dataset="GLBX.MDP3", schema=databento_dbn.Schema.DEFINITION, start=0, end=None,
        stype_in=databento_dbn.SType.RAW_SYMBOL, stype_out=databento_dbn.SType.INSTRUMENT_ID, symbols=[],
        partial=[], not_found=[], mappings=[], limit=None, ts_out=False, version=3,
    )
    return bytes(metadata) + records.tobytes()


def test_text_policy_utf8_with_replacement() -> None:
    body = _definitions_with_text([b"ESH4", b"caf\xc3\xa9", b"ES\xffH4", b"AB\x00CD", b""])
    decoded = dbn.decode_bytes(body, "text.dbn", as_v3=False)
    for signed_times in (True, False):  # the text rule does not depend on the time rule
        table = dbn.records_to_table(decoded.records_of(), signed_times=signed_times)
        assert table.schema.field("raw_symbol").type == pa.string()
        assert table.column("raw_symbol").to_pylist() == ["ESH4", "café", "ES\ufffdH4", "AB", ""]
        assert table.column("currency").to_pylist() == ["USD"] * 5
    assert "length" not in table.column_names and not any(n.startswith("_") for n in table.column_names)


def test_one_byte_text_and_time_fields() -> None:
    dtype = np.dtype(databento_dbn.TradeMsg._dtypes)
    records = np.zeros(4, dtype=dtype)
    records["side"] = [b"A", b"B", b"\x00", b"\xe9"]
    records["action"] = b"T"
    records["ts_recv"] = [1, 2, 3, np.iinfo(np.uint64).max]
    signed = dbn.records_to_table(records)
    assert signed.column("side").to_pylist() == ["A", "B", "", "\ufffd"]
    assert signed.column("action").to_pylist() == ["T"] * 4
    assert signed.schema.field("ts_recv").type == pa.int64() and signed.column("ts_recv")[3].as_py() == -1
    unsigned = dbn.records_to_table(records, signed_times=False)
    assert unsigned.schema.field("ts_recv").type == pa.uint64()
    assert unsigned.column("side").equals(signed.column("side"))
    # Several arrays of one layout make one table, in order.
    both = dbn.records_to_table([records[:2], records[2:]])
    assert both.equals(signed)
