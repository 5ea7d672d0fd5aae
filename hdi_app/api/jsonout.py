"""JSON for reads: exact decimals as JSON numbers (never strings, never rounded through float), instants and
dates as ISO text, NaN as null. Shared by the HTTP API and `hdi query --format json`."""

from __future__ import annotations

import datetime as dt
import json
import math
from decimal import Decimal
from typing import Any

_str = json.JSONEncoder(ensure_ascii=False).encode


class RawJson(str):
    """Text that is already JSON (a table's rows, encoded column-wise), spliced in as is."""


def decimal_text(value: Decimal) -> str:
    """4500.250000000 -> 4500.25, without exponent notation; a non-finite value is null."""
    if not value.is_finite():
        return "null"
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _write(value: Any, out: list[str]) -> None:
    if isinstance(value, RawJson):
        out.append(value)
    elif value is None or value is True or value is False:
        out.append("null" if value is None else ("true" if value else "false"))
    elif isinstance(value, str):
        out.append(_str(value))
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, float):
        out.append(repr(value) if math.isfinite(value) else "null")
    elif isinstance(value, Decimal):
        out.append(decimal_text(value))
    elif isinstance(value, dt.datetime | dt.date | dt.time):
        out.append(_str(value.isoformat()))
    elif isinstance(value, dict):
        out.append("{")
        for i, (key, item) in enumerate(value.items()):
            out.append(("," if i else "") + _str(str(key)) + ":")
            _write(item, out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _write(item, out)
        out.append("]")
    elif isinstance(value, bytes):
        out.append(_str(value.decode("utf-8", "replace")))
    else:
        out.append(_str(str(value)))


def dumps(value: Any) -> str:
    out: list[str] = []
    _write(value, out)
    return "".join(out)


def _column_texts(column: Any) -> list[str]:
    """One Arrow column as JSON value texts, converted column-wise (the per-value work is a join)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = column.type
    if pa.types.is_decimal(kind):
        text = pc.replace_substring_regex(pc.cast(column, pa.string()), r"(\.[0-9]*?)0+$", r"\1")
        text = pc.replace_substring_regex(text, r"\.$", "")
    elif pa.types.is_floating(kind):
        text = pc.if_else(pc.is_finite(column), pc.cast(column, pa.string()), pa.scalar(None, pa.string()))
    elif pa.types.is_integer(kind) or pa.types.is_boolean(kind):
        text = pc.cast(column, pa.string())
    elif pa.types.is_timestamp(kind) and kind.tz:  # ISO 8601 as datetime.isoformat() writes it
        text = pc.strftime(column, format="%Y-%m-%dT%H:%M:%S%z")
        text = pc.replace_substring_regex(text, r"\.0+([+-])", r"\1")
        text = pc.replace_substring_regex(text, r"([+-][0-9]{2})([0-9]{2})$", r"\1:\2")
        text = pc.binary_join_element_wise('"', text, '"', "")
    elif pa.types.is_date(kind):
        text = pc.binary_join_element_wise('"', pc.cast(column, pa.string()), '"', "")
    else:
        return ["null" if v is None else _str(v if isinstance(v, str) else str(v)) for v in column.to_pylist()]
    return pc.fill_null(text, "null").to_pylist()


def table_json(table: Any) -> RawJson:
    """An Arrow table as a JSON array of row objects, with the values `dumps` would write for its rows."""
    names = [_str(name) + ":" for name in table.column_names]
    columns = [_column_texts(table.column(i)) for i in range(table.num_columns)]
    rows = ("{" + ",".join(n + v for n, v in zip(names, values, strict=True)) + "}"
            for values in zip(*columns, strict=True))
    return RawJson("[" + ",".join(rows) + "]")
