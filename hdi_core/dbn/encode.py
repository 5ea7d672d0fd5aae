"""DBN v3 encoding from NumPy structured arrays (what the gateway serves): no Python object per record.

`databento_dbn.Metadata` bytes followed by the records' raw bytes make a valid DBN v3 stream; it leaves
plain or as one zstd frame, streamed in chunks so sending overlaps compressing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import databento_dbn as dbn
import numpy as np
import zstandard

from hdi_core.dbn.mappings import mapping_objects
from hdi_core.dbn.schemas import schema_dtype
from hdi_core.errors import HdiError

ZSTD_LEVEL = 1  # fast: responses are compressed once per request, on a shared 2-core box
ZSTD_CHUNK = 4 << 20  # bytes of records handed to the compressor at a time when streaming
ZSTD_THREADS = 2  # zstd worker threads (outside the GIL) per response


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
