"""JSON for reads: exact decimals as JSON numbers (never strings, never rounded through float), instants and
dates as ISO text, NaN as null. Shared by the HTTP API and `hdi query --format json`."""

from __future__ import annotations

import datetime as dt
import json
import math
from decimal import Decimal
from typing import Any

_str = json.JSONEncoder(ensure_ascii=False).encode


def decimal_text(value: Decimal) -> str:
    """4500.250000000 -> 4500.25, without exponent notation; a non-finite value is null."""
    if not value.is_finite():
        return "null"
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _write(value: Any, out: list[str]) -> None:
    if value is None or value is True or value is False:
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
