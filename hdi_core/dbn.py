"""DBN v3 encoding and decoding with NumPy structured arrays: no Python object per record on the hot path.

Encoding writes `databento_dbn.Metadata` bytes followed by the records' raw bytes (a valid DBN v3 stream).
Decoding reads DBN v1..v3 (plain or zstd); older versions are upgraded to the v3 layout by
`databento_dbn.Transcoder` in Rust, v3 payloads are viewed zero-copy with `np.frombuffer`.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import databento_dbn as dbn
import numpy as np
import zstandard

from hdi_core.errors import HdiError

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
DBN_MAGIC = b"DBN"
ZSTD_LEVEL = 1  # fast: responses are compressed once per request, on a shared 2-core box
ZSTD_CHUNK = 4 << 20  # bytes of records handed to the compressor at a time when streaming
ZSTD_THREADS = 2  # zstd worker threads (outside the GIL) per response

# Record class of every schema Databento serves (as databento's SCHEMA_STRUCT_MAP; named here so the core
# needs only the codec library, never the network client).
_SCHEMA_CLASSES: dict[str, type] = {
    "definition": dbn.InstrumentDefMsg, "imbalance": dbn.ImbalanceMsg, "mbo": dbn.MBOMsg, "mbp-1": dbn.MBP1Msg,
    "mbp-10": dbn.MBP10Msg, "ohlcv-1s": dbn.OHLCVMsg, "ohlcv-1m": dbn.OHLCVMsg, "ohlcv-1h": dbn.OHLCVMsg,
    "ohlcv-1d": dbn.OHLCVMsg, "ohlcv-eod": dbn.OHLCVMsg, "statistics": dbn.StatMsg, "status": dbn.StatusMsg,
    "tbbo": dbn.MBP1Msg, "trades": dbn.TradeMsg, "cmbp-1": dbn.CMBP1Msg, "cbbo-1s": dbn.CBBOMsg,
    "cbbo-1m": dbn.CBBOMsg, "tcbbo": dbn.CBBOMsg, "bbo-1s": dbn.BBOMsg, "bbo-1m": dbn.BBOMsg,
}
# v3 record layout (numpy dtype) of every schema.
SCHEMA_DTYPES: dict[str, np.dtype] = {schema: np.dtype(cls._dtypes) for schema, cls in _SCHEMA_CLASSES.items()}

# Record type byte -> schema, for splitting mixed (live-format) streams; rtype 1 is mbp-1 (tbbo shares it).
RTYPE_SCHEMA: dict[int, str] = {
    0x00: "trades",
    0x01: "mbp-1",
    0x0A: "mbp-10",
    0xA0: "mbo",
    0x20: "ohlcv-1s",
    0x21: "ohlcv-1m",
    0x22: "ohlcv-1h",
    0x23: "ohlcv-1d",
    0x24: "ohlcv-eod",
    0x13: "definition",
    0x18: "statistics",
    0x12: "status",
    0x14: "imbalance",
    0xB1: "cmbp-1",
    0xC0: "cbbo-1s",
    0xC1: "cbbo-1m",
    0xC2: "tcbbo",
    0xC3: "bbo-1s",
    0xC4: "bbo-1m",
}


def schema_dtype(schema: str) -> np.dtype:
    try:
        return SCHEMA_DTYPES[schema]
    except KeyError:
        raise HdiError(f"unknown DBN schema '{schema}'") from None


def time_field(schema: str) -> str:
    """Databento filters on ts_recv where the schema has it, else on ts_event."""
    return "ts_recv" if "ts_recv" in schema_dtype(schema).names else "ts_event"


def empty_records(schema: str) -> np.ndarray:
    return np.empty(0, dtype=schema_dtype(schema))


# ---------------------------------------------------------------------------------------------- encoding


@dataclass(frozen=True)
class _Interval:
    start_date: dt.date
    end_date: dt.date
    symbol: str


@dataclass(frozen=True)
class _SymbolMapping:
    raw_symbol: str
    intervals: list[_Interval]


def _as_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def mapping_objects(mappings: Mapping[str, Sequence[Mapping[str, Any]]] | Sequence[Any] | None) -> list[Any]:
    """Metadata(mappings=...) objects from the resolve shape {sym: [{"d0","d1","s"}]} (or pass-through)."""
    if not mappings:
        return []
    if not isinstance(mappings, Mapping):
        return list(mappings)
    out = []
    for symbol, intervals in mappings.items():
        items = [
            _Interval(
                _as_date(iv.get("d0", iv.get("start_date"))),
                _as_date(iv.get("d1", iv.get("end_date"))),
                str(iv.get("s", iv.get("symbol"))),
            )
            for iv in intervals
        ]
        out.append(_SymbolMapping(raw_symbol=str(symbol), intervals=items))
    return out


def metadata_bytes(
    dataset: str,
    schema: str,
    start_ns: int,
    end_ns: int | None,
    symbols: Sequence[str],
    stype_in: str | None,
    stype_out: str,
    mappings: Mapping[str, Sequence[Mapping[str, Any]]] | Sequence[Any] | None = None,
    limit: int | None = None,
    partial: Sequence[str] = (),
    not_found: Sequence[str] = (),
) -> bytes:
    meta = dbn.Metadata(
        dataset=dataset,
        start=int(start_ns),
        end=None if end_ns is None else int(end_ns),
        stype_in=dbn.SType(stype_in) if stype_in else None,
        stype_out=dbn.SType(stype_out),
        schema=dbn.Schema(schema),
        symbols=list(symbols),
        partial=list(partial),
        not_found=list(not_found),
        mappings=mapping_objects(mappings),
        limit=limit or None,
        ts_out=False,
        version=3,
    )
    return bytes(meta)


def encode_stream(
    dataset: str,
    schema: str,
    records: np.ndarray,
    start_ns: int,
    end_ns: int | None,
    symbols: Sequence[str],
    stype_in: str | None,
    stype_out: str,
    mappings: Mapping[str, Sequence[Mapping[str, Any]]] | Sequence[Any] | None,
    limit: int | None,
) -> bytes:
    """An uncompressed DBN v3 stream: metadata then the records' bytes (in the schema's v3 dtype)."""
    _check_dtype(schema, records)
    head = metadata_bytes(dataset, schema, start_ns, end_ns, symbols, stype_in, stype_out, mappings, limit)
    return head + np.ascontiguousarray(records).tobytes()


def _check_dtype(schema: str, records: np.ndarray) -> None:
    expected = schema_dtype(schema)
    if records.dtype.itemsize != expected.itemsize:
        raise HdiError(
            f"records for schema '{schema}' have {records.dtype.itemsize}-byte rows, "
            f"DBN v3 needs {expected.itemsize}"
        )


def _compressor(threads: int) -> zstandard.ZstdCompressor:
    return zstandard.ZstdCompressor(level=ZSTD_LEVEL, threads=threads)


def zstd_compress(data: bytes | memoryview, threads: int = ZSTD_THREADS) -> bytes:
    return _compressor(threads).compress(data)


def iter_stream(
    head: bytes,
    records: np.ndarray | Iterable[np.ndarray],
    compress: bool,
    threads: int = ZSTD_THREADS,
    content_size: int | None = None,
) -> Iterator[bytes]:
    """Chunks of the response body (metadata head + records), zstd-compressed as one frame when asked.

    `records` may be one array or an iterable of arrays (e.g. one per day): chunks leave as soon as they
    are compressed, so sending overlaps producing and compressing the rest. `content_size` (the exact
    plain length, head included) goes into the zstd frame header so a reader can allocate its output once.
    """
    parts = [records] if isinstance(records, np.ndarray) else records
    size = -1 if content_size is None else content_size
    compressor = _compressor(threads).compressobj(size=size) if compress else None
    out = compressor.compress(head) if compressor else head
    if out:
        yield out
    for part in parts:
        if not len(part):
            continue
        body = memoryview(np.ascontiguousarray(part)).cast("B")
        for offset in range(0, len(body), ZSTD_CHUNK):
            piece = body[offset : offset + ZSTD_CHUNK]
            out = compressor.compress(piece) if compressor else bytes(piece)
            if out:
                yield out
    if compressor:
        yield compressor.flush()


# ---------------------------------------------------------------------------------------------- decoding


@dataclass
class DecodedDbn:
    """One DBN file or stream in v3 layout: its (original) metadata and records by schema."""

    metadata: dbn.Metadata
    version: int
    records: dict[str, np.ndarray] = field(default_factory=dict)  # schema -> v3 structured array
    symbol_mappings: list[tuple[str, int, int, int]] = field(
        default_factory=list
    )  # (symbol, iid, start, end)


def read_dbn_bytes(path: Path) -> bytes:
    """The uncompressed bytes of a .dbn or .dbn.zst file (compression sniffed by magic bytes)."""
    raw = Path(path).read_bytes()
    if raw[:4] == ZSTD_MAGIC:
        with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw), read_across_frames=True) as reader:
            raw = reader.read()
    if raw[:3] != DBN_MAGIC:
        raise HdiError(f"{path}: not a DBN file (bad magic bytes)")
    return raw


def _metadata_length(data: bytes | memoryview) -> int:
    return 8 + int.from_bytes(bytes(data[4:8]), "little")


def _upgrade_to_v3(data: bytes) -> bytes:
    out = io.BytesIO()
    transcoder = dbn.Transcoder(
        out,
        dbn.Encoding.DBN,
        dbn.Compression.NONE,
        has_metadata=True,
        upgrade_policy=dbn.VersionUpgradePolicy.UPGRADE_TO_V3,
    )
    transcoder.write(data)
    transcoder.flush()
    return out.getvalue()


def decode_dbn(data: bytes, name: str = "DBN stream") -> DecodedDbn:
    """Decode an uncompressed DBN v1..v3 stream into v3-layout arrays (zero-copy for v3 one-schema data)."""
    version = data[3]
    if version not in (1, 2, 3):
        raise HdiError(f"{name}: unsupported DBN version {version}")
    head_len = _metadata_length(data)
    try:
        metadata = dbn.Metadata.decode(data[:head_len], upgrade_policy=dbn.VersionUpgradePolicy.AS_IS)
    except Exception as exc:
        raise HdiError(f"{name}: unreadable DBN metadata ({exc})") from None
    if metadata.ts_out:
        raise HdiError(f"{name}: DBN with ts_out is not supported")
    decoded = DecodedDbn(metadata=metadata, version=version)
    if metadata.schema is None:
        _decode_mixed(data, decoded, name)
        return decoded
    schema = str(metadata.schema)
    v3 = data if version == 3 else _upgrade_to_v3(data)
    payload = memoryview(v3)[_metadata_length(v3) :]
    dtype = schema_dtype(schema)
    whole = len(payload) - len(payload) % dtype.itemsize
    if whole != len(payload):
        raise HdiError(f"{name}: truncated DBN file ({len(payload) % dtype.itemsize} stray bytes at the end)")
    decoded.records[schema] = np.frombuffer(payload[:whole], dtype=dtype)
    return decoded


def _decode_mixed(data: bytes, decoded: DecodedDbn, name: str) -> None:
    """Mixed-schema (live-format) streams, split by record type: a per-record path, for small files only."""
    decoder = dbn.DBNDecoder(upgrade_policy=dbn.VersionUpgradePolicy.UPGRADE_TO_V3)
    decoder.write(data)
    chunks: dict[str, list[bytes]] = {}
    for record in decoder.decode():
        if isinstance(record, dbn.Metadata):
            continue
        if isinstance(record, dbn.SymbolMappingMsg):
            decoded.symbol_mappings.append(
                (record.stype_out_symbol, record.instrument_id, record.start_ts, record.end_ts)
            )
            continue
        schema = RTYPE_SCHEMA.get(int(record.rtype))
        if schema is None or schema not in SCHEMA_DTYPES:
            continue
        chunks.setdefault(schema, []).append(bytes(record))
    for schema, parts in chunks.items():
        decoded.records[schema] = np.frombuffer(b"".join(parts), dtype=schema_dtype(schema))


def decode_file(path: Path) -> DecodedDbn:
    return decode_dbn(read_dbn_bytes(path), name=str(path))


def decode_response(body: bytes) -> DecodedDbn:
    """Decode a (possibly zstd-compressed) DBN response body."""
    if body[:4] == ZSTD_MAGIC:
        with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(body), read_across_frames=True) as reader:
            body = reader.read()
    return decode_dbn(body)
