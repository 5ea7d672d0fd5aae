"""A small rule engine that turns decoded Databento records into vendor-table rows, one column at a time.

The rules live in configs/api_specific/databento_mappings.yaml (renames, sentinels to NULL, timestamps to UTC,
constants, enums); they are applied to a pyarrow Table with NumPy / pyarrow.compute, never per record.
Prices stay int64 fixed point (1e-9 units); the database layer writes them as exact NUMERIC."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hdi_core.config_files import config_dir, validation_message
from hdi_core.errors import ConfigError, HdiError
from hdi_core.units import NS
from hdi_core.vendor_schemas.config import FAMILIES, SCHEMAS, SchemaSpec, schema_spec

MAPPINGS_FILE = "api_specific/databento_mappings.yaml"
UNDEF_PRICE = np.iinfo(np.int64).max
UNDEF_TIMESTAMP = np.iinfo(np.uint64).max
UNDEF_STAT_QUANTITY = np.iinfo(np.int64).max  # DBN v3; v1/v2 use INT32_MAX (the mapping's `dtype_max`)
UNDEF_DAYS = np.iinfo(np.uint16).max

KINDS: dict[str, pa.DataType] = {
    "timestamp": pa.timestamp("ns", tz="UTC"),
    "nanos": pa.int64(),  # the exact ns since the epoch of a DBN time field (TIMESTAMPTZ keeps only micros)
    "price": pa.int64(),
    "int16": pa.int16(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "char": pa.string(),
    "string": pa.string(),
    "date": pa.date32(),
}
TIME_KINDS = frozenset({"timestamp", "nanos"})
_INT_RANGE = {"int16": np.iinfo(np.int16), "int32": np.iinfo(np.int32), "int64": np.iinfo(np.int64)}
_NO_VALUE = object()


@dataclass(frozen=True)
class ColumnRule:
    """How one stored column is produced."""

    name: str
    kind: str
    source: str | None = None
    required: bool = False
    null_if: tuple[Any, ...] = ()
    null_if_dtype_max: bool = False
    value: Any = _NO_VALUE  # a constant column
    default: Any = _NO_VALUE  # when the source field is absent from the file's DBN version
    enum: str | None = None
    positive: bool = False

    @property
    def arrow_type(self) -> pa.DataType:
        return KINDS[self.kind]

    @property
    def is_constant(self) -> bool:
        return self.value is not _NO_VALUE


@dataclass(frozen=True)
class FamilyMapping:
    """The mapping of one schema family onto its table."""

    family: str
    target_table: str
    columns: tuple[ColumnRule, ...]

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> ColumnRule:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)

    @property
    def required_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    @property
    def positive_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.positive]


@dataclass(frozen=True)
class Mappings:
    """The whole mapping file."""

    vendor: str
    families: dict[str, FamilyMapping]
    enums: dict[str, dict[Any, str]]
    price_stat_types: frozenset[int]
    path: Path | None = None
    source_fields: dict[str, set[str]] = field(default_factory=dict)

    def family(self, schema_or_family: str) -> FamilyMapping:
        name = schema_or_family if schema_or_family in self.families else schema_spec(schema_or_family).family
        return self.families[name]

    def allowed(self, enum: str) -> list[Any]:
        return list(self.enums[enum])


_CACHE: dict[tuple[str, float], Mappings] = {}


def load_mappings(path: str | Path | None = None) -> Mappings:
    """Parse and check the mapping YAML (default: the config folder's, HDI_CONFIG_DIR honoured; cached per file
    version); ConfigError naming file and key."""
    path = Path(path) if path is not None else config_dir() / MAPPINGS_FILE
    try:
        stamp = path.stat().st_mtime
    except FileNotFoundError:
        raise ConfigError(f"{path}: mapping file not found") from None
    cached = _CACHE.get((str(path), stamp))
    if cached is not None:
        return cached
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{where}") from None
    mappings = parse_mappings(raw, str(path))
    mappings = Mappings(mappings.vendor, mappings.families, mappings.enums, mappings.price_stat_types, path)
    _CACHE[(str(path), stamp)] = mappings
    return mappings


class ColumnSpec(BaseModel):
    """One stored column in the mapping file (keys as the YAML spells them: `from`, `as`)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)
    source: str | None = Field(None, alias="from")
    kind: Literal[tuple(KINDS)] = Field(alias="as")  # type: ignore[valid-type]
    required: bool = False
    null_if: list[Any] | Literal["dtype_max"] = Field(default_factory=list)
    value: Any = None
    default: Any = None
    enum: str | None = None
    positive: bool = False

    @model_validator(mode="after")
    def _one_origin(self) -> ColumnSpec:
        if ("source" in self.model_fields_set) == ("value" in self.model_fields_set):
            raise ValueError("needs exactly one of `from` (a DBN field) or `value` (a constant)")
        return self

    def rule(self, name: str) -> ColumnRule:
        dtype_max = self.null_if == "dtype_max"
        return ColumnRule(
            name=name, kind=self.kind, source=self.source, required=self.required,
            null_if=() if dtype_max else tuple(self.null_if), null_if_dtype_max=dtype_max,
            value=self.value if "value" in self.model_fields_set else _NO_VALUE,
            default=self.default if "default" in self.model_fields_set else _NO_VALUE,
            enum=self.enum, positive=self.positive,
        )


class FamilyBlock(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    target_table: str = ""
    columns: dict[str, ColumnSpec]


class MappingFile(BaseModel):
    """configs/api_specific/databento_mappings.yaml: enums, then one block per schema family."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    version: Literal[1] = 1
    vendor: str = "databento"
    enums: dict[str, dict[Any, str] | list[int]] = Field(default_factory=dict)  # price_stat_types is a list
    schemas: dict[Literal[tuple(FAMILIES)], FamilyBlock]  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _enums_exist(self) -> MappingFile:
        for family, block in self.schemas.items():
            for name, spec in block.columns.items():
                if spec.enum is not None and not isinstance(self.enums.get(spec.enum), dict):
                    raise ValueError(f"schemas.{family}.columns.{name}.enum: no enum named {spec.enum!r} in `enums`")
        return self


def parse_mappings(raw: Any, source: str = "databento_mappings.yaml") -> Mappings:
    """The mapping file's content as Mappings; ConfigError in one line naming the file and the field."""
    try:
        model = MappingFile.model_validate(raw if raw is not None else {})
    except ValidationError as exc:
        raise ConfigError(validation_message(source, exc)) from None
    enums = {name: {k: str(v) for k, v in values.items()}
             for name, values in model.enums.items() if isinstance(values, dict)}
    price_stat_types = frozenset(int(v) for v in model.enums.get("price_stat_types", []))
    families = {
        family: FamilyMapping(family, block.target_table,
                              tuple(spec.rule(name) for name, spec in block.columns.items()))
        for family, block in model.schemas.items()
    }
    return Mappings(model.vendor, families, enums, price_stat_types)


# -- the engine --------------------------------------------------------------------------------------------


def _as_array(col: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(col, pa.ChunkedArray):
        return col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    return col


def _null_mask(arr: pa.Array) -> np.ndarray:
    if arr.null_count == 0:
        return np.zeros(len(arr), dtype=bool)
    return np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool)


def _integers(arr: pa.Array, rule: ColumnRule, where: str) -> tuple[np.ndarray, np.ndarray]:
    """An integer Arrow column -> (int64 values, null mask) with sentinels and out-of-range values nulled."""
    if pa.types.is_timestamp(arr.type):
        arr = arr.cast(pa.int64())
    is_time = rule.kind in TIME_KINDS
    if not pa.types.is_integer(arr.type):
        raise HdiError(f"{where}: field {rule.source!r} is {arr.type}, not an integer")
    nulls = _null_mask(arr)
    raw = arr.fill_null(0).to_numpy()
    if rule.null_if_dtype_max:
        nulls |= raw == np.iinfo(raw.dtype).max
    for sentinel in rule.null_if:
        nulls |= raw == sentinel
    if raw.dtype == np.uint64:
        # uint64 above INT64_MAX has no int64 value: it is a sentinel (UNDEF_TIMESTAMP) or unstorable.
        nulls |= raw > np.iinfo(np.int64).max
        values = np.where(nulls, 0, raw).astype(np.int64)
    else:
        values = raw.astype(np.int64, copy=False)
        if is_time:
            # A DBN u64 time viewed as int64 (the API path's tables): UNDEF_TIMESTAMP reads as -1, and every
            # negative value is a u64 above INT64_MAX, so it is NULL exactly as on the unsigned (file) path.
            nulls |= values < 0
    return values, nulls


def _convert(arr: pa.Array, rule: ColumnRule, where: str) -> pa.Array:
    kind = rule.kind
    if kind in ("char", "string"):
        if pa.types.is_integer(arr.type):  # a char carried as its byte value
            codes = arr.fill_null(0).to_numpy().astype(np.uint8)
            arr = pa.array(codes.view("S1"), mask=_null_mask(arr))
        if pa.types.is_binary(arr.type) or pa.types.is_large_binary(arr.type):
            try:
                arr = arr.cast(pa.string())
            except pa.ArrowInvalid:
                raise HdiError(f"{where}: field {rule.source!r} holds text that is not UTF-8") from None
        if not pa.types.is_string(arr.type):
            arr = arr.cast(pa.string())
        if kind == "char" or rule.null_if:
            blanks = ("", *rule.null_if) if kind == "char" else rule.null_if
            hit = pc.fill_null(pc.is_in(arr, pa.array([str(v) for v in blanks])), False)
            arr = pc.if_else(hit, pa.scalar(None, pa.string()), arr)
        return arr
    values, nulls = _integers(arr, rule, where)
    if kind == "timestamp":  # UNDEF_TIMESTAMP was nulled (u64 above INT64_MAX, or its int64 view -1)
        return pa.array(values, mask=nulls, type=pa.int64()).cast(KINDS["timestamp"])
    if kind == "nanos":
        return pa.array(values, mask=nulls, type=pa.int64())
    if kind == "price":
        nulls |= values == UNDEF_PRICE
        return pa.array(values, mask=nulls, type=pa.int64())
    if kind == "date":
        nulls |= values == UNDEF_DAYS
        return pa.array(values.astype(np.int32), mask=nulls, type=pa.int32()).cast(pa.date32())
    bounds = _INT_RANGE[kind]
    nulls |= (values < bounds.min) | (values > bounds.max)
    return pa.array(
        np.where(nulls, 0, values).astype(KINDS[kind].to_pandas_dtype()), mask=nulls, type=KINDS[kind]
    )


def _constant(value: Any, rule: ColumnRule, n: int, context: dict[str, str]) -> pa.Array:
    if value is None:
        return pa.nulls(n, rule.arrow_type)
    if isinstance(value, str):
        value = value.format(**context)
    if rule.kind == "timestamp":
        value = dt.datetime.fromisoformat(str(value)) if not isinstance(value, dt.datetime) else value
    return pa.repeat(pa.scalar(value, rule.arrow_type), n)


def apply_mapping(
    raw: pa.Table,
    schema: str,
    *,
    dataset: str | None = None,
    granularity: str | None = None,
    mappings: Mappings | None = None,
) -> pa.Table:
    """Decoded records (DBN field names) -> rows with exactly the target table's columns, column-wise.

    `schema` is a Databento schema name (or a family name); `granularity` defaults to the schema's own."""
    mappings = mappings or load_mappings()
    family = mappings.family(schema)
    spec: SchemaSpec | None = SCHEMAS.get(schema)
    context = {
        "vendor": mappings.vendor,
        "dataset": dataset or "unknown",
        "granularity": granularity or (spec.granularity if spec else None) or "",
        "schema": schema,
    }
    n = raw.num_rows
    out: list[pa.Array] = []
    for rule in family.columns:
        where = f"{family.family}.{rule.name}"
        if rule.is_constant:
            out.append(_constant(rule.value, rule, n, context))
        elif rule.source in raw.column_names:
            out.append(_convert(_as_array(raw.column(rule.source)), rule, where))
        elif rule.default is not _NO_VALUE:
            out.append(_constant(rule.default, rule, n, context))
        else:
            raise HdiError(
                f"mapping {where}: the records have no field {rule.source!r} "
                f"(fields: {', '.join(raw.column_names)})"
            )
    return pa.Table.from_arrays(
        out, schema=pa.schema([pa.field(c.name, c.arrow_type) for c in family.columns])
    )


def select_stat_types(raw: pa.Table, stat_types: list[int] | None) -> pa.Table:
    """Keep only the statistics a job asked for (a job's `stat_types`); other records are not the job's."""
    if not stat_types:
        return raw
    return raw.filter(
        pc.is_in(raw.column("stat_type"), pa.array(stat_types, raw.schema.field("stat_type").type))
    )


def resample_ohlcv(bars: pa.Table, minutes: int, granularity: str) -> pa.Table:
    """Mapped 1m bars (ohlcv_data columns) -> `minutes` bars per instrument, aligned on UTC multiples.

    open = first, high = max, low = min, close = last, volume = sum; only intervals with bars exist,
    matching Databento's rule that an interval without trades has no record."""
    columns = bars.column_names
    if bars.num_rows == 0:
        return bars
    step = minutes * 60 * NS
    ts = bars.column("ts_event").cast(pa.int64())
    bucket = pc.multiply(pc.divide(ts, step), step)  # integer division truncates: non-negative epochs only
    work = bars.append_column("_bucket", bucket).sort_by(
        [("instrument_id", "ascending"), ("ts_event", "ascending")]
    )
    grouped = work.group_by(["instrument_id", "_bucket"], use_threads=False).aggregate(
        [
            ("open_price", "first"),
            ("high_price", "max"),
            ("low_price", "min"),
            ("close_price", "last"),
            ("volume", "sum"),
            ("data_source", "first"),
        ]
    )
    n = grouped.num_rows
    result = {
        "ts_event": grouped.column("_bucket").cast(pa.timestamp("ns", tz="UTC")),
        "ts_event_ns": grouped.column("_bucket"),
        "instrument_id": grouped.column("instrument_id"),
        "open_price": grouped.column("open_price_first"),
        "high_price": grouped.column("high_price_max"),
        "low_price": grouped.column("low_price_min"),
        "close_price": grouped.column("close_price_last"),
        "volume": grouped.column("volume_sum").cast(pa.int64()),
        "trade_count": pa.nulls(n, pa.int32()),
        "vwap": pa.nulls(n, pa.int64()),
        "granularity": pa.repeat(pa.scalar(granularity, pa.string()), n),
        "data_source": grouped.column("data_source_first"),
    }
    table = pa.table({name: result[name] for name in columns if name in result})
    return table.sort_by([("ts_event", "ascending"), ("instrument_id", "ascending")])
