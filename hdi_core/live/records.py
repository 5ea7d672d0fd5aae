"""Raw live DBN record bytes (what `databento.Live.add_stream` writes: one record after another, in arrival
order) split by record type into NumPy structured arrays, columnar: one compiled walk over the record lengths,
then one gather per record type. Never one Python object per record.

With `ts_out` each record carries the gateway's send time in 8 extra bytes (its `length` counts them): it is
cut off into its own column, so the records keep the exact layout of the historical schema.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import databento_dbn as dbn
import numpy as np
from numba import njit

from hdi_core.dbn.schemas import SCHEMA_DTYPES
from hdi_core.errors import HdiError

RTYPE_ERROR, RTYPE_SYMBOL_MAPPING, RTYPE_SYSTEM = 0x15, 0x16, 0x17
SYMBOL_MAPPING_DTYPE = np.dtype(dbn.SymbolMappingMsg._dtypes)
SYSTEM_DTYPE = np.dtype(dbn.SystemMsg._dtypes)
ERROR_DTYPE = np.dtype(dbn.ErrorMsg._dtypes)
HEARTBEAT_CODE = 0  # SystemMsg.code of a heartbeat in DBN v3 (older gateways: the text "Heartbeat")
TS_OUT_BYTES = 8
# Market-data record types a capture subscribes to; rtype 0x01 is shared by tbbo and mbp-1 (choose one).
MARKET_RTYPES: dict[str, int] = {"trades": 0x00, "tbbo": 0x01, "mbp-1": 0x01, "mbp-10": 0x0A, "mbo": 0xA0}


class LiveRecordError(HdiError):
    """Live bytes that are not a run of whole DBN records (a record length of zero, or an unknown layout)."""


@dataclass
class RecordBatch:
    """One batch of live records in arrival order, split by kind."""

    records: dict[str, np.ndarray] = field(default_factory=dict)  # schema -> v3 structured array
    ts_out: dict[str, np.ndarray] = field(default_factory=dict)  # schema -> uint64 gateway send times
    mappings: np.ndarray = field(default_factory=lambda: np.empty(0, SYMBOL_MAPPING_DTYPE))
    system: np.ndarray = field(default_factory=lambda: np.empty(0, SYSTEM_DTYPE))
    errors: np.ndarray = field(default_factory=lambda: np.empty(0, ERROR_DTYPE))
    other: int = 0  # records of a type nobody subscribed to (skipped, counted)

    @property
    def market_count(self) -> int:
        return sum(len(r) for r in self.records.values())

    def heartbeats(self) -> int:
        if not len(self.system):
            return 0
        text = np.char.startswith(self.system["msg"], b"Heartbeat")
        return int(np.count_nonzero((self.system["code"] == HEARTBEAT_CODE) | text))


@njit(cache=True, nogil=True)
def _walk(buf: np.ndarray, offsets: np.ndarray) -> tuple[int, int]:  # pragma: no cover - compiled
    """Offsets of the whole records in `buf`; returns (records found, bytes consumed); -1 records = zero length."""
    pos = 0
    n = 0
    size = len(buf)
    while pos < size:
        length = np.int64(buf[pos]) * 4
        if length == 0:
            return -1, pos
        if pos + length > size:
            break
        offsets[n] = pos
        n += 1
        pos += length
    return n, pos


@njit(cache=True, nogil=True)
def _copy_rows(buf: np.ndarray, starts: np.ndarray, width: int, out: np.ndarray) -> None:  # pragma: no cover
    for i in range(len(starts)):
        s = starts[i]
        o = i * width
        for j in range(width):
            out[o + j] = buf[s + j]


def _gather(buf: np.ndarray, starts: np.ndarray, width: int) -> np.ndarray:
    """Bytes [start, start + width) of each start, as one contiguous block (a compiled copy)."""
    out = np.empty(len(starts) * width, dtype=np.uint8)
    _copy_rows(buf, np.ascontiguousarray(starts, dtype=np.int64), width, out)
    return out


def schema_of_rtype(schemas: list[str] | tuple[str, ...]) -> dict[int, str]:
    """rtype -> schema for the subscribed schemas; tbbo and mbp-1 share a record type, so not both."""
    found: dict[int, str] = {}
    for schema in schemas:
        if schema not in MARKET_RTYPES:
            raise HdiError(f"live schema {schema!r} is not captured (choose from {', '.join(MARKET_RTYPES)})")
        rtype = MARKET_RTYPES[schema]
        if rtype in found and found[rtype] != schema:
            raise HdiError(f"live schemas {found[rtype]} and {schema} share one record type; subscribe to one")
        found[rtype] = schema
    return found


def split_records(data: bytes | bytearray | memoryview, rtype_schema: dict[int, str]) -> tuple[RecordBatch, int]:
    """Split whole records of `data`; returns the batch and the bytes consumed (a cut-off last record stays)."""
    buf = np.frombuffer(data, dtype=np.uint8)
    batch = RecordBatch()
    if not len(buf):
        return batch, 0
    offsets = np.empty(len(buf) // 16 + 1, dtype=np.int64)  # the smallest DBN record is 16 bytes
    n, used = _walk(buf, offsets)
    if n < 0:
        raise LiveRecordError(f"live stream: a record of length 0 at byte {used}")
    offsets = offsets[:n]
    lengths = buf[offsets].astype(np.int64) * 4
    rtypes = buf[offsets + 1]
    kinds = {**{rt: (s, SCHEMA_DTYPES[s]) for rt, s in rtype_schema.items()},
             RTYPE_SYMBOL_MAPPING: ("mappings", SYMBOL_MAPPING_DTYPE), RTYPE_SYSTEM: ("system", SYSTEM_DTYPE),
             RTYPE_ERROR: ("errors", ERROR_DTYPE)}
    known = np.zeros(256, dtype=bool)
    known[list(kinds)] = True
    batch.other = int(np.count_nonzero(~known[rtypes]))
    present = np.flatnonzero(np.bincount(rtypes, minlength=256))
    for rtype in present:
        if not known[rtype]:
            continue
        name, dtype = kinds[int(rtype)]
        if len(present) == 1:
            starts, length = offsets, lengths
        else:
            mine = rtypes == rtype
            starts, length = offsets[mine], lengths[mine]
        width = dtype.itemsize
        with_out = length == width + TS_OUT_BYTES
        if not np.all((length == width) | with_out):
            bad = int(starts[(length != width) & ~with_out][0])
            raise LiveRecordError(f"live stream: {name} record at byte {bad} has length {int(buf[bad]) * 4}, "
                                  f"expected {width} (or {width + TS_OUT_BYTES} with ts_out)")
        records = _gather(buf, starts, width).view(dtype)
        if name in ("mappings", "system", "errors"):
            setattr(batch, name, records)
            continue
        records["length"] = width // 4  # the historical layout's length (ts_out is split off below)
        batch.records[name] = records
        out = np.zeros(len(starts), dtype=np.uint64)
        if with_out.any():
            out[with_out] = _gather(buf, starts[with_out] + width, TS_OUT_BYTES).view("<u8")
        batch.ts_out[name] = out
    return batch, int(used)
