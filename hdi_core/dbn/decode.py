"""DBN v1..v3 decoding (plain or zstd) into NumPy structured arrays: one-schema payloads are viewed zero-copy.

Records keep the layout of their file's DBN version (`as_v3=False`, exactly what
`databento.DBNStore.to_ndarray` returns) or are upgraded to the current v3 layout by `databento_dbn.Transcoder`
in Rust (`as_v3=True`, what the gateway serves). Mixed-schema (live) streams are split by record type, in
v3 layout either way, as `DBNStore.to_ndarray(schema=...)` does.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import databento_dbn as dbn
import numpy as np
import zstandard

from hdi_core.dbn.mappings import Mappings, mappings_from
from hdi_core.dbn.schemas import DBN_MAGIC, DBN_VERSIONS, RTYPE_SCHEMA, SCHEMA_DTYPES, ZSTD_MAGIC, schema_dtype
from hdi_core.errors import HdiError

_READ_SIZE = 1 << 20  # compressed bytes fed to the zstd decoder at a time


class DbnError(HdiError):
    """Bytes that are not a readable DBN stream; the message names the stream."""


class TruncatedDbnError(DbnError):
    """A DBN stream or its zstd frames cut off or damaged (e.g. a dropped download): worth fetching again."""


@dataclass
class DecodedDbn:
    """One DBN file or stream: its (original) metadata and its records by schema."""

    metadata: dbn.Metadata
    version: int  # the DBN version of the bytes (records may have been upgraded to v3)
    records: dict[str, np.ndarray] = field(default_factory=dict)  # schema -> structured array
    # (symbol, instrument_id, start_ns, end_ns) of the SymbolMappingMsg records of a live stream
    symbol_mappings: list[tuple[str, int, int, int]] = field(default_factory=list)
    mappings: Mappings = field(default_factory=dict)  # the metadata's symbol mappings, typed

    @property
    def schema(self) -> str | None:
        """The stream's one schema; None for a mixed-schema (live) stream."""
        return None if self.metadata.schema is None else str(self.metadata.schema)

    def records_of(self, schema: str | None = None) -> np.ndarray:
        """Records of the stream's schema, or of `schema` (required for a mixed stream; empty when absent)."""
        wanted = schema or self.schema
        if wanted is None:
            raise DbnError("a mixed-schema stream: name the schema to read")
        found = self.records.get(wanted)
        return found if found is not None else np.empty(0, dtype=schema_dtype(wanted))


# ------------------------------------------------------------------------------------------- decompression


def decompress(data: bytes | memoryview, name: str = "DBN stream") -> bytes | memoryview:
    """The plain bytes of `data` (returned as they are unless they start with the zstd magic).

    Every zstd frame must be complete: a cut-off or corrupt one raises TruncatedDbnError, never a short
    read. One frame that states its size and ends exactly at the end of the data (what the gateway and
    Databento send) is decompressed straight into one NumPy buffer; anything else goes frame by frame.
    """
    if bytes(data[:4]) != ZSTD_MAGIC:
        return data
    try:
        size = zstandard.frame_content_size(data)
    except zstandard.ZstdError:  # a header cut short: the frame-by-frame path names the problem
        size = -1
    if size >= 0 and _zstd_frame_end(data) == len(data):
        plain = np.empty(size + 1, dtype=np.uint8)  # one spare byte: output past the stated size is corrupt
        view = memoryview(plain)
        filled = 0
        try:
            reader = zstandard.ZstdDecompressor().stream_reader(data, read_size=_READ_SIZE)
            while filled <= size and (got := reader.readinto(view[filled:])):
                filled += got
        except zstandard.ZstdError as exc:
            raise TruncatedDbnError(f"{name}: corrupt zstd data ({exc})") from None
        if filled != size:
            raise TruncatedDbnError(f"{name}: truncated zstd stream ({filled} bytes, its header states {size})")
        return view[:size]
    parts: list[bytes] = []
    rest = bytes(data)
    while rest:
        decompressor = zstandard.ZstdDecompressor().decompressobj()
        try:
            parts.append(decompressor.decompress(rest))
        except zstandard.ZstdError as exc:
            raise TruncatedDbnError(f"{name}: corrupt zstd data ({exc})") from None
        if not decompressor.eof:
            raise TruncatedDbnError(f"{name}: truncated zstd stream (ends mid-frame after {len(data)} bytes)")
        rest = decompressor.unused_data
    return b"".join(parts)


def _zstd_frame_end(data: bytes | memoryview) -> int | None:
    """Offset just past the zstd frame that starts `data`, found by walking its block headers; None if unreadable."""
    try:
        pos = zstandard.frame_header_size(bytes(data[:18]))
        has_checksum = zstandard.get_frame_parameters(bytes(data[:18])).has_checksum
    except zstandard.ZstdError:
        return None
    view = memoryview(data)
    while pos + 3 <= len(view):
        header = int.from_bytes(view[pos : pos + 3], "little")
        block_type = (header >> 1) & 3
        if block_type == 3:  # reserved: corrupt
            return None
        pos += 3 + (1 if block_type == 1 else header >> 3)  # an RLE block stores one byte
        if header & 1:  # last block
            return pos + (4 if has_checksum else 0)
    return None


# ------------------------------------------------------------------------------------------------ decoding


def _metadata_length(data: bytes | memoryview) -> int:
    return 8 + int.from_bytes(bytes(data[4:8]), "little")


def _upgrade_to_v3(data: bytes | memoryview) -> bytes:
    out = io.BytesIO()
    transcoder = dbn.Transcoder(
        out, dbn.Encoding.DBN, dbn.Compression.NONE, has_metadata=True,
        upgrade_policy=dbn.VersionUpgradePolicy.UPGRADE_TO_V3,
    )
    transcoder.write(bytes(data))
    transcoder.flush()
    return out.getvalue()


def _record_dtype(schema: str, version: int, ts_out: bool) -> np.dtype:
    """The file's record layout; with ts_out each record ends in a u8 `ts_out` (as DBNStore.to_ndarray adds)."""
    base = schema_dtype(schema, version)
    return np.dtype(base.descr + [("ts_out", "<u8")]) if ts_out else base


def _check_lengths(records: np.ndarray, ts_out: bool, name: str) -> None:
    """Every record's `length` (in 4-byte words) must match the layout: else the stream is mixed or corrupt."""
    if not len(records) or "length" not in (records.dtype.names or ()):
        return
    itemsize = records.dtype.itemsize
    lengths = records["length"]
    matches = lengths == itemsize // 4
    if ts_out:  # the length may or may not count the appended 8-byte ts_out
        matches |= lengths == (itemsize - 8) // 4
    if itemsize % 4 or not np.all(matches):
        raise TruncatedDbnError(f"{name}: record lengths disagree with the schema (mixed or corrupt stream)")


def decode_dbn(data: bytes | memoryview, name: str = "DBN stream", *, as_v3: bool = True) -> DecodedDbn:
    """Decode a complete, uncompressed DBN v1..v3 stream (see the module docstring for `as_v3`)."""
    if len(data) < 8 or bytes(data[:3]) != DBN_MAGIC:
        raise DbnError(f"{name}: not a DBN file (no DBN header)")
    version = data[3]
    if version not in DBN_VERSIONS:
        raise DbnError(f"{name}: unsupported DBN version {version}")
    head_len = _metadata_length(data)
    if len(data) < head_len:
        raise TruncatedDbnError(f"{name}: cannot decode DBN metadata: cut off at {len(data)} of {head_len} bytes")
    try:
        metadata = dbn.Metadata.decode(bytes(data[:head_len]), upgrade_policy=dbn.VersionUpgradePolicy.AS_IS)
    except Exception as exc:  # databento_dbn raises DBNError or ValueError for a damaged header
        raise DbnError(f"{name}: cannot decode DBN metadata ({' '.join(str(exc).split())})") from None
    decoded = DecodedDbn(metadata=metadata, version=version, mappings=mappings_from(metadata.mappings))
    if metadata.schema is None:
        _decode_mixed(data, decoded)
        return decoded
    schema = str(metadata.schema)
    if as_v3 and metadata.ts_out:
        raise DbnError(f"{name}: DBN with ts_out is not supported here")
    dtype = _record_dtype(schema, version, metadata.ts_out)
    loose = (len(data) - head_len) % dtype.itemsize
    if loose:
        raise TruncatedDbnError(f"{name}: truncated: the last record is incomplete ({loose} stray bytes)")
    records = np.frombuffer(data, dtype=dtype, offset=head_len)
    _check_lengths(records, metadata.ts_out, name)
    if as_v3 and version != 3:
        upgraded = _upgrade_to_v3(data)
        records = np.frombuffer(upgraded, dtype=schema_dtype(schema), offset=_metadata_length(upgraded))
    decoded.records[schema] = records
    return decoded


def _decode_mixed(data: bytes | memoryview, decoded: DecodedDbn) -> None:
    """Mixed-schema (live-format) streams, split by record type: a per-record path, for small files only."""
    decoder = dbn.DBNDecoder(upgrade_policy=dbn.VersionUpgradePolicy.UPGRADE_TO_V3)
    decoder.write(bytes(data))
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


def decode_bytes(data: bytes | memoryview, name: str = "DBN stream", *, as_v3: bool = True) -> DecodedDbn:
    """Decode DBN bytes held in memory, plain or zstd (sniffed by magic bytes)."""
    if not len(data):
        raise DbnError(f"{name}: empty file, not DBN")
    return decode_dbn(decompress(data, name), name, as_v3=as_v3)


def read_dbn_bytes(path: Path) -> bytes | memoryview:
    """The uncompressed bytes of a .dbn or .dbn.zst file (compression sniffed by magic bytes)."""
    plain = decompress(Path(path).read_bytes(), str(path))
    if bytes(plain[:3]) != DBN_MAGIC:
        raise DbnError(f"{path}: not a DBN file (bad magic bytes)")
    return plain


def decode_file(path: Path, *, as_v3: bool = True) -> DecodedDbn:
    return decode_dbn(read_dbn_bytes(path), name=str(path), as_v3=as_v3)


def decode_response(body: bytes | memoryview, *, as_v3: bool = True) -> DecodedDbn:
    """Decode a (possibly zstd-compressed) DBN response body."""
    return decode_bytes(body, "DBN response", as_v3=as_v3)
