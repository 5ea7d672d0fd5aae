"""Stage-1 Pydantic record models: real records pass, designed-bad ones fail with the same rule ids the
column-wise rules use."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from repo_paths import DBN_SAMPLES

from hdi_core.vendor_schemas.dbn_files import read_dbn_file
from hdi_core.vendor_schemas.mapping import apply_mapping
from hdi_core.vendor_schemas.records import (
    MODELS,
    DatabentoDefinitionRecord,
    Expectation,
    OhlcvMsg,
    StatisticsMsg,
    TbboMsg,
    TradeMsg,
    check_record,
    check_records,
    price_decimal,
)

SAMPLES = DBN_SAMPLES
GLBX = SAMPLES / "databento-python" / "GLBX.MDP3"


def _rows(schema: str, path: Path | None = None) -> list[dict[str, Any]]:
    dbn = read_dbn_file(path or GLBX / f"test_data.{schema}.dbn.zst")
    return apply_mapping(dbn.table, schema, dataset=dbn.dataset).to_pylist()


@pytest.mark.parametrize(
    ("schema", "model"),
    [
        ("ohlcv-1m", OhlcvMsg),
        ("trades", TradeMsg),
        ("tbbo", TbboMsg),
        ("statistics", StatisticsMsg),
        ("definition", DatabentoDefinitionRecord),
    ],
)
def test_real_cme_records_build_their_models(schema: str, model: type):
    rows = _rows(schema)
    assert rows
    for row in rows:
        record = model.model_validate(row)
        assert record.instrument_id == 5482
        assert record.ts_event.tzinfo is not None


def test_definition_model_carries_story_2_4_fields():
    record = DatabentoDefinitionRecord.model_validate(_rows("definition")[0])
    assert record.raw_symbol == "ESH1" and record.instrument_class == "F"
    assert record.expiration == dt.datetime(2021, 3, 19, 13, 30, tzinfo=dt.UTC)
    assert price_decimal(record.min_price_increment) == Decimal("0.25")
    assert record.strike_price is None


def test_statistics_model_names_its_stat_type():
    record = StatisticsMsg.model_validate(_rows("statistics")[0])
    assert record.stat_type == 8 and record.stat_type_name == "highest_bid"
    assert record.ts_ref is None


def _broken(schema: str, **changes: Any) -> tuple[str, str] | None:
    row = {**_rows(schema)[0], **changes}
    return check_record(MODELS_BY_SCHEMA[schema], row)


MODELS_BY_SCHEMA = {
    "ohlcv-1m": "ohlcv",
    "trades": "trades",
    "tbbo": "tbbo",
    "statistics": "statistics",
    "definition": "definition",
}


def test_models_reject_with_rule_ids():
    row = _rows("ohlcv-1m")[0]
    assert _broken("ohlcv-1m", high_price=row["low_price"] - 1)[0] == "ohlc.high_ge_low"
    assert _broken("ohlcv-1m", open_price=-5)[0] == "price.positive"
    assert _broken("ohlcv-1m", granularity="7m")[0] == "granularity.valid"
    assert _broken("trades", side="X")[0] == "side.valid"
    assert _broken("trades", size=0)[0] == "size.positive"
    assert _broken("trades", price=None)[0] == "required.price"
    tbbo = _rows("tbbo")[0]
    rule, message = _broken("tbbo", bid_px_00=tbbo["ask_px_00"] + 1)
    assert rule == "bbo.bid_le_ask" and message.startswith("TbboMsg: bbo.bid_le_ask: bid 3702.75")
    assert _broken("statistics", price=None, quantity=None)[0] == "statistics.value_set"
    assert _broken("statistics", stat_type=3, price=-1)[0] == "price.positive"
    assert _broken("statistics", stat_type=12, price=-1) is None  # net change may be negative
    assert _broken("definition", expiration=None) is None  # UNDEF_TIMESTAMP: no expiration (equities)
    assert _broken("definition", raw_symbol=None)[0] == "required.raw_symbol"
    assert _broken("definition", instrument_class="Q")[0] == "instrument_class.valid"


def test_context_checks_range_and_instruments():
    row = _rows("trades")[0]
    later = Expectation(start=dt.datetime(2021, 1, 1, tzinfo=dt.UTC))
    assert check_record("trades", row, later)[0] == "timestamp.in_range"
    assert check_record("trades", row, Expectation(instrument_ids=frozenset({1})))[0] == "instrument.expected"
    assert check_record("trades", {**row, "price": -1}, Expectation(allow_nonpositive_prices=True)) is None


def test_check_records_over_a_table():
    dbn = read_dbn_file(SAMPLES / "dbn" / "test_data.definition.v1.dbn.zst")
    table = apply_mapping(dbn.table, "definition")
    failed, rules, messages = check_records("definition", table)
    assert failed.tolist() == [True, True]  # MSFT (a stock) has no tick size, expiry or limits
    assert set(rules) == {"required.min_price_increment"}
    assert all(m.startswith("DefinitionMsg: min_price_increment: no value") for m in messages)


def test_every_family_has_a_model():
    assert set(MODELS) == {"ohlcv", "trades", "tbbo", "statistics", "definition"}
    assert price_decimal(3_702_750_000_000) == Decimal("3702.75") and price_decimal(None) is None
