"""Arrow columns -> PostgreSQL binary COPY bytes, built with NumPy one column at a time (no per-row Python).

Prices arrive as int64 fixed point (1e-9 units) and are written as exact NUMERIC with scale 9.
A little over 400 lines: one encoder per PostgreSQL type, each a few lines, kept together with the header."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

from hdi_core.errors import HdiError
from hdi_core.units import PRICE_SCALE

UNDEF_PRICE = np.iinfo(np.int64).max  # Databento's "no value" sentinel
PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01 in unix microseconds
PG_EPOCH_DAYS = 10_957
COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
COPY_TRAILER = b"\xff\xff"
NUMERIC_NEG = 0x4000
NUMERIC_WIDTH = 20  # 4 header int16 + 6 base-10000 digits


@dataclass(frozen=True)
class PgColumn:
    """One column of a target table as the catalog describes it."""

    name: str
    type_name: str  # pg_type.typname: int8, numeric, timestamptz, text, bpchar, ...
    not_null: bool
    has_default: bool


@dataclass
class Encoded:
    """One column ready for COPY: fixed-width bytes (n, width), native values written big-endian (or as
    NUMERIC when `numeric`) by the row writer, or variable bytes; plus nulls."""

    name: str
    fixed: np.ndarray | None  # (n, width) uint8
    var_data: np.ndarray | None  # flat uint8
    var_lengths: np.ndarray | None  # int64 per row (0 for null)
    nulls: np.ndarray | None  # bool per row, None when no nulls
    native: np.ndarray | None = None  # signed ints (or float bits) whose big-endian bytes are the field
    numeric: bool = False  # native holds int64 1e-9 units to write as NUMERIC

    @property
    def width(self) -> int | None:
        if self.numeric:
            return NUMERIC_WIDTH
        if self.native is not None:
            return self.native.dtype.itemsize
        return None if self.fixed is None else self.fixed.shape[1]

    def block(self) -> np.ndarray | None:
        """The (n, width) bytes, built here for native columns (the general, slower path)."""
        if self.numeric:
            return _numeric_fixed(self.native)  # type: ignore[arg-type]
        if self.native is not None:
            return _fixed(self.native, f">i{self.native.dtype.itemsize}")
        return self.fixed

    def slice(self, start: int, stop: int) -> Encoded:
        """Rows [start, stop) of a fixed-width column without nulls (views, no copy)."""
        return Encoded(self.name, None if self.fixed is None else self.fixed[start:stop], None, None, None,
                       None if self.native is None else self.native[start:stop], self.numeric)


def _chunked_to_array(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    if isinstance(col, pa.ChunkedArray):
        return col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    return col


def _null_mask(arr: pa.Array) -> np.ndarray | None:
    if arr.null_count == 0:
        return None
    return np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool)


def to_nanos_fixed(arr: pa.Array, column: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Any numeric Arrow array -> int64 in 1e-9 units plus a null mask (UNDEF_PRICE and NaN become null)."""
    t = arr.type
    nulls = _null_mask(arr)
    if pa.types.is_integer(t):
        values = (arr if nulls is None else arr.fill_null(0)).to_numpy().astype(np.int64, copy=False)
        undef = values == UNDEF_PRICE
        if undef.any():
            nulls = undef if nulls is None else (nulls | undef)
        return values, nulls
    if pa.types.is_floating(t):
        floats = arr.fill_null(np.nan).to_numpy().astype(np.float64, copy=False)
        bad = ~np.isfinite(floats)
        if bad.any():
            nulls = bad if nulls is None else (nulls | bad)
            floats = np.where(bad, 0.0, floats)
        if np.abs(floats).max(initial=0.0) >= 9.2e9:
            raise HdiError(f"column {column}: value too large for a 1e-9 fixed-point price")
        return np.rint(floats * PRICE_SCALE).astype(np.int64), nulls
    if pa.types.is_decimal(t):
        if t.scale > 9:
            rounded = pc.round(arr, ndigits=9)
            if not pc.all(pc.equal(rounded, arr)).as_py():
                raise HdiError(f"column {column}: more than 9 decimal places cannot be stored exactly")
        return _decimal_nanos(arr, column), nulls
    raise HdiError(f"column {column}: cannot store Arrow type {t} as a price (want int64 1e-9 units)")


def _decimal_nanos(arr: pa.Array, column: str) -> np.ndarray:
    """A decimal column (any precision, at most 9 places) -> int64 1e-9 units, read from the decimal128 words:
    multiplying by 1e9 in Arrow would ask for precision 38 + 10 and fail for query()'s decimal128(38, 9)."""
    try:
        fixed = arr.cast(pa.decimal128(38, 9))
    except pa.ArrowInvalid as exc:
        raise HdiError(f"column {column}: value too large for a 1e-9 fixed-point price") from exc
    if isinstance(fixed, pa.ChunkedArray):
        fixed = fixed.combine_chunks()
    n, offset = len(fixed), fixed.offset
    words = np.frombuffer(fixed.buffers()[1], dtype=np.int64, count=2 * (offset + n))[2 * offset:]
    low, high = words[0::2], words[1::2]  # little-endian two's complement: the unscaled value
    valid = ~_null_mask(fixed) if fixed.null_count else np.ones(n, dtype=bool)
    if np.any(valid & (high != (low >> 63))):  # the high word is only the sign extension when it fits int64
        raise HdiError(f"column {column}: value too large for a 1e-9 fixed-point price")
    return np.where(valid, low, 0).astype(np.int64)


def to_unix_micros(arr: pa.Array, column: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Timestamps (any unit) or integer ns since the epoch (DBN's convention) -> int64 unix microseconds."""
    t = arr.type
    nulls = _null_mask(arr)
    if pa.types.is_timestamp(t):
        micros = arr.cast(pa.timestamp("us", tz=t.tz), safe=False).cast(pa.int64())
        return (micros if nulls is None else micros.fill_null(0)).to_numpy(), nulls
    if pa.types.is_integer(t):
        raw = arr.fill_null(0).to_numpy()
        if raw.dtype == np.uint64:
            undef = raw == np.iinfo(np.uint64).max  # UNDEF_TIMESTAMP
            if undef.any():
                nulls = undef if nulls is None else (nulls | undef)
            raw = np.where(undef, 0, raw)
        return np.floor_divide(raw.astype(np.int64), 1000), nulls
    if pa.types.is_date(t):
        days = arr.cast(pa.date32()).cast(pa.int32()).fill_null(0).to_numpy().astype(np.int64)
        return days * 86_400_000_000, nulls
    raise HdiError(f"column {column}: cannot store Arrow type {t} as a timestamp")


def to_days(arr: pa.Array, column: str) -> tuple[np.ndarray, np.ndarray | None]:
    t = arr.type
    try:
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            arr = pc.strptime(arr, format="%Y-%m-%d", unit="s").cast(pa.date32())
        elif pa.types.is_timestamp(t):
            arr = arr.cast(pa.date32())
        days = arr.cast(pa.date32()).cast(pa.int32())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise HdiError(f"column {column}: cannot read as a date ({exc})") from exc
    return days.fill_null(0).to_numpy().astype(np.int32), _null_mask(days)


_NUMERIC_HEADER = np.array([6, 2, 0, 9], dtype=np.uint16)


def _numeric_fixed(nanos: np.ndarray) -> np.ndarray:
    """int64 1e-9 units -> NUMERIC binary: 4 header int16 + 6 base-10000 digits (weight 2, dscale 9)."""
    n = nanos.shape[0]
    negative = nanos < 0
    # |INT64_MIN| does not fit int64; it is no price, so clip it to the largest magnitude that does.
    magnitude = np.abs(np.maximum(nanos, -np.iinfo(np.int64).max))
    int_part = magnitude // PRICE_SCALE  # < 9.3e9
    frac = (magnitude - int_part * PRICE_SCALE).astype(np.int32)  # 9 decimals
    top = (int_part // 100_000_000).astype(np.int32)
    mid = (int_part - top.astype(np.int64) * 100_000_000).astype(np.int32)
    words = np.empty((n, 10), dtype=np.uint16)
    words[:] = _NUMERIC_HEADER.tolist() + [0] * 6
    words[:, 2] = negative * NUMERIC_NEG
    words[:, 4] = top
    hi = mid // 10_000
    words[:, 5] = hi
    words[:, 6] = mid - hi * 10_000
    f1 = frac // 100_000
    rest = frac - f1 * 100_000
    f2 = rest // 10
    words[:, 7] = f1
    words[:, 8] = f2
    words[:, 9] = (rest - f2 * 10) * 1000
    words.byteswap(inplace=True)
    return words.view(np.uint8).reshape(n, 20)


def _fixed(values: np.ndarray, dtype: str) -> np.ndarray:
    be = np.ascontiguousarray(values.astype(dtype, copy=False))
    return be.view(np.uint8).reshape(values.shape[0], np.dtype(dtype).itemsize)


_INT_RANGES = {"int2": (">i2", 2**15), "int4": (">i4", 2**31), "int8": (">i8", 2**63)}


def encode_column(arr: pa.Array, col: PgColumn) -> Encoded:
    """Encode one Arrow column for the target PostgreSQL column type."""
    arr = _chunked_to_array(arr)
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    kind = col.type_name
    if kind == "numeric":
        nanos, nulls = to_nanos_fixed(arr, col.name)
        return Encoded(col.name, None, None, None, nulls, nanos, numeric=True)
    if kind == "timestamptz" or kind == "timestamp":
        micros, nulls = to_unix_micros(arr, col.name)
        return Encoded(col.name, None, None, None, nulls, micros - PG_EPOCH_US)
    if kind == "date":
        days, nulls = to_days(arr, col.name)
        return Encoded(col.name, None, None, None, nulls, (days - PG_EPOCH_DAYS).astype(np.int32))
    if kind in _INT_RANGES:
        dtype, bound = _INT_RANGES[kind]
        if not pa.types.is_integer(arr.type) and not pa.types.is_boolean(arr.type):
            raise HdiError(f"column {col.name}: expected integers, got Arrow type {arr.type}")
        nulls = _null_mask(arr)
        values = arr.fill_null(0).to_numpy(zero_copy_only=False)
        if values.size and (values.max() >= bound or (values.dtype.kind == "i" and values.min() < -bound)):
            raise HdiError(f"column {col.name}: value out of range for PostgreSQL {kind}")
        return Encoded(col.name, None, None, None, nulls, values.astype(dtype[1:], copy=False))
    if kind in ("float8", "float4"):
        nulls = _null_mask(arr)
        values = arr.cast(pa.float64()).fill_null(0.0).to_numpy()
        bits = values.view(np.int64) if kind == "float8" else values.astype(np.float32).view(np.int32)
        return Encoded(col.name, None, None, None, nulls, bits)
    if kind == "bool":
        nulls = _null_mask(arr)
        flags = arr.fill_null(False).to_numpy(zero_copy_only=False)
        return Encoded(col.name, _fixed(flags, "u1"), None, None, nulls)
    if kind in ("text", "varchar", "bpchar", "jsonb", "json"):
        if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
            arr = arr.cast(pa.string())
        arr = arr.cast(pa.large_string())
        nulls = _null_mask(arr)
        n = len(arr)
        offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset: arr.offset + n + 1]
        data_buf = arr.buffers()[2]
        data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.empty(0, np.uint8)
        lengths = np.diff(offsets)
        flat = data[offsets[0]: offsets[-1]] if n else np.empty(0, np.uint8)
        if kind == "jsonb":  # jsonb binary input is a version byte then the text
            flat = np.insert(flat, (offsets[:-1] - offsets[0]), 1)
            lengths = lengths + 1
        if nulls is None and n and (lengths == lengths[0]).all():
            return Encoded(col.name, flat.reshape(n, int(lengths[0])), None, None, None)
        return Encoded(col.name, None, flat, lengths, nulls)
    raise HdiError(f"column {col.name}: PostgreSQL type {kind} is not supported by the bulk loader")


def copy_bytes(columns: list[Encoded], n: int, header: bool = True, trailer: bool = True) -> memoryview:
    """Assemble a binary COPY stream from encoded columns; one COPY may span several calls when only the
    first has the header and only the last the trailer."""
    if all_fixed(columns):
        return memoryview(copy_rows_fixed(columns, n, header, trailer))
    data = _copy_general(columns, n)
    return memoryview(data)[0 if header else len(COPY_HEADER): len(data) - (0 if trailer else 2)]


def all_fixed(columns: list[Encoded]) -> bool:
    """Every field has the same width in every row (no nulls, no variable text): the fast row writer."""
    return all(c.width is not None and c.nulls is None for c in columns)


@njit(cache=True, nogil=True)
def _put_count(stream: np.ndarray, base: int, row_len: int, n: int, count: int) -> None:
    for i in range(n):
        p = base + i * row_len
        stream[p] = (count >> 8) & 0xFF
        stream[p + 1] = count & 0xFF


@njit(cache=True, nogil=True)
def _put_int(stream: np.ndarray, base: int, row_len: int, values: np.ndarray, width: int) -> None:
    for i in range(values.shape[0]):
        p = base + i * row_len
        stream[p] = 0
        stream[p + 1] = 0
        stream[p + 2] = 0
        stream[p + 3] = width
        v = np.int64(values[i])
        for b in range(width):
            stream[p + 4 + b] = (v >> (8 * (width - 1 - b))) & 0xFF


@njit(cache=True, nogil=True)
def _put_bytes(stream: np.ndarray, base: int, row_len: int, block: np.ndarray) -> None:
    width = block.shape[1]
    for i in range(block.shape[0]):
        p = base + i * row_len
        stream[p] = (width >> 24) & 0xFF
        stream[p + 1] = (width >> 16) & 0xFF
        stream[p + 2] = (width >> 8) & 0xFF
        stream[p + 3] = width & 0xFF
        for b in range(width):
            stream[p + 4 + b] = block[i, b]


@njit(cache=True, nogil=True, inline="always")
def _put_u16(stream: np.ndarray, p: int, value: int) -> None:
    stream[p] = (value >> 8) & 0xFF
    stream[p + 1] = value & 0xFF


@njit(cache=True, nogil=True)
def _put_numeric(stream: np.ndarray, base: int, row_len: int, nanos: np.ndarray) -> None:
    """The NUMERIC binary form of _numeric_fixed, written in place (6 digits, weight 2, dscale 9)."""
    for i in range(nanos.shape[0]):
        p = base + i * row_len
        v = nanos[i]
        negative = v < 0
        magnitude = -max(v, -9223372036854775807) if negative else v
        int_part = magnitude // PRICE_SCALE
        frac = magnitude - int_part * PRICE_SCALE
        top = int_part // 100_000_000
        mid = int_part - top * 100_000_000
        stream[p] = 0
        stream[p + 1] = 0
        stream[p + 2] = 0
        stream[p + 3] = NUMERIC_WIDTH
        _put_u16(stream, p + 4, 6)
        _put_u16(stream, p + 6, 2)
        _put_u16(stream, p + 8, NUMERIC_NEG if negative else 0)
        _put_u16(stream, p + 10, 9)
        _put_u16(stream, p + 12, top)
        _put_u16(stream, p + 14, mid // 10_000)
        _put_u16(stream, p + 16, mid % 10_000)
        _put_u16(stream, p + 18, frac // 100_000)
        _put_u16(stream, p + 20, (frac % 100_000) // 10)
        _put_u16(stream, p + 22, (frac % 10) * 1000)


def copy_rows_fixed(columns: list[Encoded], n: int, header: bool = True, trailer: bool = True,
                    out: np.ndarray | None = None) -> np.ndarray:
    """Rows of fixed-width fields written column by column in place by compiled loops (no (n, width)
    intermediates); optionally framed by the COPY header and trailer. Written into the front of `out` (the
    returned view) when it is big enough."""
    widths = [c.width or 0 for c in columns]
    row_len = 2 + sum(4 + w for w in widths)
    head = len(COPY_HEADER) if header else 0
    size = head + n * row_len + (len(COPY_TRAILER) if trailer else 0)
    stream = out[:size] if out is not None and out.shape[0] >= size else np.empty(size, dtype=np.uint8)
    if header:
        stream[:head] = np.frombuffer(COPY_HEADER, np.uint8)
    if trailer:
        stream[-2:] = 0xFF
    _put_count(stream, head, row_len, n, len(columns))
    pos = head + 2
    for col, width in zip(columns, widths, strict=True):
        if col.numeric:
            _put_numeric(stream, pos, row_len, np.ascontiguousarray(col.native, dtype=np.int64))
        elif col.native is not None:
            _put_int(stream, pos, row_len, np.ascontiguousarray(col.native), width)
        else:
            _put_bytes(stream, pos, row_len, np.ascontiguousarray(col.fixed))
        pos += 4 + width
    return stream


def _copy_general(columns: list[Encoded], n: int) -> bytes:
    """Rows of different lengths (nulls, variable text): compute every field's offset and scatter."""
    lengths: list[np.ndarray] = []
    for c in columns:
        if c.width is not None:
            length = np.full(n, c.width, dtype=np.int64)
        else:
            length = c.var_lengths.astype(np.int64)  # type: ignore[union-attr]
        if c.nulls is not None:
            length = np.where(c.nulls, -1, length)
        lengths.append(length)
    payload = sum(np.maximum(length, 0) + 4 for length in lengths)
    row_len = 2 + payload
    starts = len(COPY_HEADER) + np.concatenate(([0], np.cumsum(row_len)[:-1])).astype(np.int64)
    total = len(COPY_HEADER) + int(row_len.sum()) + len(COPY_TRAILER)
    out = np.zeros(total, dtype=np.uint8)
    out[: len(COPY_HEADER)] = np.frombuffer(COPY_HEADER, np.uint8)
    out[-2:] = 0xFF
    _scatter_fixed(out, starts, _fixed(np.full(n, len(columns)), ">i2"))
    pos = starts + 2
    for col, length in zip(columns, lengths, strict=True):
        _scatter_fixed(out, pos, _fixed(length, ">i4"))
        pos = pos + 4
        present = length >= 0
        block = col.block()
        if block is not None:
            if col.nulls is None:
                _scatter_fixed(out, pos, block)
            else:
                _scatter_fixed(out, pos[present], block[present])
        else:
            var_lengths = np.where(present, col.var_lengths, 0)  # type: ignore[arg-type]
            keep = np.repeat(present, col.var_lengths)  # type: ignore[arg-type]
            flat = col.var_data[keep]  # type: ignore[index]
            within = np.arange(int(var_lengths.sum())) - np.repeat(
                np.concatenate(([0], np.cumsum(var_lengths)[:-1])), var_lengths)
            out[np.repeat(pos, var_lengths) + within] = flat
        pos = pos + np.maximum(length, 0)
    return out.tobytes()


def _scatter_fixed(out: np.ndarray, positions: np.ndarray, block: np.ndarray) -> None:
    width = block.shape[1]
    if width == 0 or block.shape[0] == 0:
        return
    index = positions[:, None] + np.arange(width)
    out[index.ravel()] = block.ravel()
