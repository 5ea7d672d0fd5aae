"""Read JSON: exact decimals as numbers, never strings or rounded floats; instants as ISO text."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

from hdi_app.api.jsonout import decimal_text, dumps


@pytest.mark.parametrize(("value", "text"), [
    (Decimal("5932.000000000"), "5932"), (Decimal("4500.250000000"), "4500.25"), (Decimal("-0.000000001"),
                                                                                  "-0.000000001"),
    (Decimal("0E-9"), "0"), (Decimal("123456789123.456789123"), "123456789123.456789123"), (Decimal("1E+3"), "1000"),
    (Decimal("NaN"), "null"),
])
def test_decimals_are_plain_exact_numbers(value: Decimal, text: str) -> None:
    assert decimal_text(value) == text


def test_documents_parse_back_exactly() -> None:
    row = {"open": Decimal("123456789123.456789123"), "volume": 3, "vwap": 0.1, "ts":
           dt.datetime(2024, 7, 1, tzinfo=dt.UTC), "trade_date": dt.date(2024, 7, 1), "symbol": "ES\u00e9\"",
           "none": None, "flag": True, "nan": float("nan"), "raw": b"\xffx", "list": [Decimal("1.50"), 2]}
    text = dumps({"rows": [row]})
    back = json.loads(text, parse_float=Decimal)["rows"][0]
    assert back["open"] == Decimal("123456789123.456789123") and back["volume"] == 3
    assert back["ts"] == "2024-07-01T00:00:00+00:00" and back["trade_date"] == "2024-07-01"
    assert back["symbol"] == "ES\u00e9\"" and back["none"] is None and back["flag"] is True
    assert back["nan"] is None and back["list"] == [Decimal("1.5"), 2]
    assert '"open":123456789123.456789123' in text  # a number, not a string


def test_column_wise_rows_equal_row_by_row_json() -> None:
    import pyarrow as pa

    from hdi_app.api.jsonout import table_json

    stamps = [1_719_792_000_000_000, 1_719_792_000_607_111, None]
    table = pa.table({
        "price": pa.array([Decimal("5932.000000000"), Decimal("-0.000000001"), None], pa.decimal128(38, 9)),
        "vwap": [4500.123456789, float("nan"), None], "volume": pa.array([1, None, 2**62], pa.int64()),
        "flag": [True, False, None], "name": ['ES"U4\\', "\u00e9", None],
        "ts": pa.array(stamps, pa.timestamp("us", tz="UTC")),
        "local": pa.array(stamps, pa.timestamp("us", tz="UTC")).cast(pa.timestamp("us", tz="America/Chicago")),
        "day": pa.array([dt.date(2024, 7, 1), None, dt.date(1999, 12, 31)], pa.date32()),
    })
    assert json.loads(table_json(table), parse_float=Decimal) == json.loads(dumps(table.to_pylist()),
                                                                           parse_float=Decimal)
    assert json.loads(table_json(table))[1]["local"] == "2024-06-30T19:00:00.607111-05:00"
    assert table_json(table.slice(0, 0)) == "[]"
