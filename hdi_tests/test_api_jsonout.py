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
