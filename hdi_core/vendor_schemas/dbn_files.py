"""Downloaded Databento DBN files (`.dbn`, `.dbn.zst`, DBN v1..v3) -> columnar records -> vendor rows.

Decoding goes through HDI's DBN codec (`hdi_core.dbn`: the records in the file's own DBN layout, exactly as
`databento.DBNStore.to_ndarray` returns them); each field becomes one Arrow column under the codec's text
policy. `to_vendor_rows` then maps and validates column-wise."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hdi_core import dbn
from hdi_core.errors import HdiError
from hdi_core.units import DAY_NS
from hdi_core.vendor_schemas.config import SCHEMAS, UNSUPPORTED_SCHEMAS, schema_spec

SOURCE_SCHEMAS = tuple(sorted({spec.source_schema for spec in SCHEMAS.values()}))
NS_PER_DAY = DAY_NS  # the name hdi_assets' ingest imports from here
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


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


def _timestamp(ns: int | None) -> dt.datetime | None:
    """A metadata start/end (int ns, 0 = unknown end) as a UTC datetime, as DBNStore.start / .end give it."""
    if not ns:
        return None
    return _EPOCH + dt.timedelta(microseconds=ns // 1000)  # datetime holds microseconds


def records_to_table(records: np.ndarray, name: str = "records") -> pa.Table:
    """A DBN structured array -> Arrow by the codec's rule (padding and `length` dropped, text decoded), with
    the u64 time fields left uint64 as in DBN (the vendor mapping nulls their UNDEF sentinel). `name` is kept
    for callers that pass it."""
    return dbn.records_to_table(records, signed_times=False)


def _symbol_column(table: pa.Table, metadata: Any) -> pa.Array:
    """The input symbol of each record from the metadata's mappings (by instrument id and UTC date)."""
    n = table.num_rows
    if "instrument_id" not in table.column_names:
        return pa.nulls(n, pa.string())
    ids = table.column("instrument_id").to_numpy()
    mappings = dbn.mappings_from(metadata.mappings)
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
                iid = int(interval.symbol)
            except (TypeError, ValueError):
                continue  # an interval with no instrument (symbol unresolved that day)
            d0 = (interval.start_date - epoch).days
            d1 = (interval.end_date - epoch).days
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
    if sha256 is None:
        sha256 = hashlib.sha256(data).hexdigest()
    try:
        decoded = dbn.decode_bytes(data, name, as_v3=False)
    except HdiError:
        raise
    except Exception as exc:  # databento_dbn raises several unrelated types for bad input
        raise HdiError(f"{name}: cannot decode as DBN ({type(exc).__name__}: {exc})") from None
    metadata = decoded.metadata
    file_schema = decoded.schema
    wanted = schema_spec(schema).source_schema if schema is not None else None
    if file_schema is None and wanted is None:
        raise HdiError(f"{name}: holds mixed record types (live data); name the schema to read")
    read_schema = file_schema or wanted
    if read_schema in UNSUPPORTED_SCHEMAS or read_schema not in SOURCE_SCHEMAS:
        raise HdiError(f"{name}: schema {read_schema} is not supported (supported: {', '.join(SOURCE_SCHEMAS)})")
    if wanted is not None and file_schema is not None and wanted != file_schema:
        raise HdiError(f"{name}: holds {file_schema} records, not {wanted}")
    table = records_to_table(decoded.records_of(read_schema), name)
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
        start=_timestamp(metadata.start),
        end=_timestamp(metadata.end),
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
