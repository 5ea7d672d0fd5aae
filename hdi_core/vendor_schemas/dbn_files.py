"""Downloaded Databento DBN files (`.dbn`, `.dbn.zst`, DBN v1..v3) -> columnar records -> vendor rows.

Decoding goes through databento's `DBNStore.to_ndarray` (one structured array, no Python object per
record); each field becomes one Arrow column. `to_vendor_rows` then maps and validates column-wise."""

from __future__ import annotations

import datetime as dt
import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hdi_core.errors import HdiError
from hdi_core.vendor_schemas.config import SCHEMAS, UNSUPPORTED_SCHEMAS, schema_spec

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
DBN_MAGIC = b"DBN"
SOURCE_SCHEMAS = tuple(sorted({spec.source_schema for spec in SCHEMAS.values()}))
NS_PER_DAY = 86_400_000_000_000


@dataclass(frozen=True)
class DbnFile:
    """One decoded DBN file: its metadata and its records as Arrow columns named like the DBN fields.

    `table` also has `symbol`: the input symbol each record belongs to (from the file's symbol mappings),
    NULL where the file does not say."""

    path: Path
    dataset: str | None
    schema: str
    version: int
    sha256: str
    table: pa.Table
    start: dt.datetime | None
    end: dt.datetime | None
    symbols: list[str]
    stype_in: str | None

    @property
    def num_records(self) -> int:
        return self.table.num_rows


def _decompress(data: bytes, name: str) -> bytes:
    """All zstd frames of a file; a cut-off frame is an error, not a silent short read."""
    import zstandard

    out: list[bytes] = []
    rest = data
    try:
        while rest:
            obj = zstandard.ZstdDecompressor().decompressobj()
            out.append(obj.decompress(rest))
            if not obj.eof:
                raise HdiError(f"{name}: truncated zstd stream (the download was cut off?)")
            rest = obj.unused_data
    except zstandard.ZstdError as exc:
        raise HdiError(f"{name}: corrupt zstd data ({exc})") from None
    return b"".join(out)


def _timestamp(value: Any) -> dt.datetime | None:
    if value is None:
        return None
    if hasattr(value, "to_pydatetime"):
        return value.to_pydatetime(warn=False)
    if isinstance(value, int):
        return dt.datetime.fromtimestamp(value / 1e9, dt.UTC)
    return value


def records_to_table(records: np.ndarray, name: str = "records") -> pa.Table:
    """A DBN structured array -> Arrow, one column per field (padding and `length` dropped, text decoded)."""
    records = records.reshape(-1)  # databento returns shape (0, 1) for a file without records
    columns: dict[str, pa.Array] = {}
    for field in records.dtype.names or ():
        if field.startswith("_") or field == "length":
            continue
        values = records[field]
        if values.dtype.kind == "S":
            arr = pa.array(values)  # NumPy strips the trailing NULs of c-strings here
            try:
                columns[field] = arr.cast(pa.string())
            except pa.ArrowInvalid:
                raise HdiError(f"{name}: field {field!r} holds text that is not UTF-8") from None
        else:
            columns[field] = pa.array(np.ascontiguousarray(values))
    return pa.table(columns)


def _symbol_column(table: pa.Table, metadata: Any) -> pa.Array:
    """The input symbol of each record from the metadata's mappings (by instrument id and UTC date)."""
    n = table.num_rows
    if "instrument_id" not in table.column_names:
        return pa.nulls(n, pa.string())
    ids = table.column("instrument_id").to_numpy()
    mappings = metadata.mappings or {}
    if not mappings:
        return pa.nulls(n, pa.string())
    index_field = "ts_recv" if "ts_recv" in table.column_names else "ts_event"
    days = (table.column(index_field).to_numpy() // NS_PER_DAY).astype(np.int64)
    epoch = dt.date(1970, 1, 1)
    codes = np.full(n, -1, dtype=np.int32)
    names = list(mappings)
    for code, symbol in enumerate(names):
        for interval in mappings[symbol]:
            try:
                iid = int(interval["symbol"])
            except (TypeError, ValueError):
                continue  # an interval with no instrument (symbol unresolved that day)
            d0 = (interval["start_date"] - epoch).days
            d1 = (interval["end_date"] - epoch).days
            hit = (ids == iid) & (days >= d0) & (days < d1) & (codes < 0)
            codes[hit] = code
    return pa.DictionaryArray.from_arrays(pa.array(codes, mask=codes < 0), pa.array(names, pa.string())).cast(
        pa.string()
    )


def decode_dbn_bytes(
    data: bytes,
    name: str,
    *,
    limit: int | None = None,
    symbol: str | None = None,
    schema: str | None = None,
    sha256: str | None = None,
    path: Path | None = None,
) -> DbnFile:
    """Decode a DBN body (plain or zstd) held in memory, e.g. a Historical API response."""
    import databento as db

    if sha256 is None:
        sha256 = hashlib.sha256(data).hexdigest()
    if not data:
        raise HdiError(f"{name}: empty file, not DBN")
    if data[:4] == ZSTD_MAGIC:
        data = _decompress(data, name)
    if data[:3] != DBN_MAGIC or len(data) < 8:
        raise HdiError(f"{name}: not a DBN file (no DBN header)")
    try:
        with warnings.catch_warnings(record=True) as caught:
            # databento warns (rather than raises) on an incomplete last record.
            warnings.simplefilter("always")
            store = db.DBNStore.from_bytes(data)
            metadata = store.metadata
            file_schema = str(store.schema.value) if store.schema is not None else None
            wanted = schema
            if wanted is not None:
                wanted = schema_spec(wanted).source_schema
            if file_schema is None and wanted is None:
                raise HdiError(f"{name}: holds mixed record types (live data); name the schema to read")
            read_schema = file_schema or wanted
            if read_schema in UNSUPPORTED_SCHEMAS or read_schema not in SOURCE_SCHEMAS:
                raise HdiError(
                    f"{name}: schema {read_schema} is not supported (supported: {', '.join(SOURCE_SCHEMAS)})"
                )
            if wanted is not None and file_schema is not None and wanted != file_schema:
                raise HdiError(f"{name}: holds {file_schema} records, not {wanted}")
            if file_schema is not None:
                header = 8 + int.from_bytes(data[4:8], "little")
                arrays = store.to_ndarray()
                body = len(data) - header
                if arrays.dtype.itemsize and body % arrays.dtype.itemsize:
                    raise HdiError(
                        f"{name}: truncated: the last record is incomplete "
                        f"({body % arrays.dtype.itemsize} stray bytes)"
                    )
            else:
                arrays = store.to_ndarray(schema=read_schema)
        for warning in caught:
            if "truncated" in str(warning.message) or "incomplete" in str(warning.message):
                raise HdiError(f"{name}: truncated or corrupt DBN data ({warning.message})")
    except HdiError:
        raise
    except Exception as exc:  # databento / databento-dbn raise several unrelated types for bad input
        raise HdiError(f"{name}: cannot decode as DBN ({type(exc).__name__}: {exc})") from None
    table = records_to_table(arrays, name)
    table = table.append_column("symbol", _symbol_column(table, metadata))
    if symbol is not None:
        table = _select_symbol(table, symbol, name, list(metadata.symbols or []))
    if limit is not None:
        table = table.slice(0, max(0, int(limit)))
    stype = str(metadata.stype_in.value) if metadata.stype_in is not None else None
    return DbnFile(
        path=path or Path(name),
        dataset=metadata.dataset or None,
        schema=read_schema,
        version=int(metadata.version),
        sha256=sha256,
        table=table,
        start=_timestamp(store.start),
        end=_timestamp(store.end),
        symbols=list(metadata.symbols or []),
        stype_in=stype,
    )


def _select_symbol(table: pa.Table, symbol: str, name: str, known: list[str]) -> pa.Table:
    """Rows of one symbol: an input symbol of the file, a raw symbol (definitions) or an instrument id."""
    keep = pc.fill_null(pc.equal(table.column("symbol"), symbol), False)
    if "raw_symbol" in table.column_names:
        keep = pc.or_(keep, pc.fill_null(pc.equal(table.column("raw_symbol"), symbol), False))
    if symbol.isdigit() and "instrument_id" in table.column_names:
        keep = pc.or_(keep, pc.equal(table.column("instrument_id"), pa.scalar(int(symbol), pa.uint32())))
    selected = table.filter(keep)
    if selected.num_rows == 0 and table.num_rows and symbol not in known:
        raise HdiError(
            f"{name}: no records for symbol {symbol!r} (file symbols: {', '.join(known) or 'none'})"
        )
    return selected


def read_dbn_file(
    path: str | Path, limit: int | None = None, symbol: str | None = None, *, schema: str | None = None
) -> DbnFile:
    """Read a `.dbn` or `.dbn.zst` file of a supported schema; HdiError naming the file otherwise.

    `limit` keeps the first N records (after `symbol` selection); `schema` is needed only for
    mixed-schema (live) files."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise HdiError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise HdiError(f"{path}: is a directory, not a DBN file") from None
    except OSError as exc:
        raise HdiError(f"{path}: cannot read ({exc.strerror})") from None
    return decode_dbn_bytes(data, str(path), limit=limit, symbol=symbol, schema=schema, path=path)


def vendor_rows(
    raw: pa.Table,
    schema: str,
    *,
    dataset: str | None = None,
    expect: Any = None,
    stat_types: list[int] | None = None,
) -> tuple[pa.Table, pa.Table]:
    """Decoded records of `schema`'s source schema -> (valid rows of its table, quarantined rows).

    Mapping, then both validation stages; for ohlcv-5m / ohlcv-15m the 1m bars are validated first and the
    valid ones aggregated, so `valid` then counts bars of the derived size."""
    from hdi_core.vendor_schemas.mapping import apply_mapping, resample_ohlcv, select_stat_types
    from hdi_core.vendor_schemas.rules import validate

    spec = schema_spec(schema)
    if spec.family == "statistics" and stat_types:
        raw = select_stat_types(raw, stat_types)
    mapped = apply_mapping(raw, spec.source_schema, dataset=dataset)
    valid, quarantined = validate(spec.source_schema, mapped, expect, original=raw)
    if spec.derived:
        valid = resample_ohlcv(valid, spec.bar_minutes or 1, spec.granularity or spec.name)
    return valid, quarantined


def to_vendor_rows(
    dbn_file: DbnFile, schema: str | None = None, expect: Any = None
) -> tuple[pa.Table, pa.Table]:
    """A decoded file -> (valid, quarantined) for its own schema, or for a schema derived from it
    (`ohlcv-5m` / `ohlcv-15m` from a 1m file)."""
    target = schema_spec(schema or dbn_file.schema)
    if target.source_schema != dbn_file.schema:
        raise HdiError(
            f"{dbn_file.path}: holds {dbn_file.schema} records; {target.name} is built from "
            f"{target.source_schema}"
        )
    return vendor_rows(dbn_file.table, target.name, dataset=dbn_file.dataset, expect=expect)
