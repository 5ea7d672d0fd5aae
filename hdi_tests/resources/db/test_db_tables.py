"""hdi_resources.db.tables: catalog facts and column comparisons, without a server."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from hdi_core.errors import HdiError
from hdi_resources.db.binary import PgColumn
from hdi_resources.db.tables import (
    TableInfo,
    as_table,
    comparable,
    constant_array,
    datetime_micros,
    from_micros,
    key_codes,
    key_value_matches,
    table_info,
    time_range,
)

TEXT = PgColumn("side", "bpchar", True, False)
TS = PgColumn("ts_event", "timestamptz", True, False)


def test_unknown_columns_and_tables_are_named_errors() -> None:
    info = TableInfo("trades_data", [TS], ["ts_event"])
    assert info.column("ts_event") is TS
    with pytest.raises(HdiError, match="no column 'price'"):
        info.column("price")
    with pytest.raises(HdiError, match="cannot be loaded"):
        table_info(None, "quarantine")  # type: ignore[arg-type]  # refused before any database is asked


def test_micros_round_trip_exactly() -> None:
    stamp = dt.datetime(2024, 2, 29, 23, 59, 59, 999_999, tzinfo=dt.UTC)
    assert from_micros(datetime_micros(stamp)) == stamp
    assert datetime_micros(dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) == 0


def test_char_keys_differing_by_trailing_spaces_compare_equal() -> None:
    codes = key_codes(pa.chunked_array([["B", "B ", "A"]]), TEXT)
    assert codes[0] == codes[1] != codes[2]
    assert len(set(comparable(pa.chunked_array([["B", "B ", "A"]]), TEXT).tolist())) == 3


def test_constant_array_matches_its_value_and_nulls_never_match() -> None:
    day = PgColumn("trade_date", "date", True, False)
    assert key_value_matches(pa.chunked_array([constant_array("2024-01-02", day, 3)]), day, "2024-01-02").all()
    stamps = pa.chunked_array([pa.array([0, None, 5], pa.timestamp("us", tz="UTC"))])
    assert key_value_matches(stamps, TS, "1970-01-01T00:00:00+00:00").tolist() == [True, False, False]


def test_time_range_and_table_conversion() -> None:
    info = TableInfo("trades_data", [TS], ["ts_event"])
    micros = np.array([5_000_000, 1_000_000, 3_000_000], dtype=np.int64)
    table = as_table(pa.record_batch({"ts_event": pa.array(micros, pa.timestamp("us", tz="UTC"))}))
    assert time_range(info, table) == (from_micros(1_000_000), from_micros(5_000_000))
    assert time_range(info, table.slice(0, 0)) is None
    with pytest.raises(HdiError, match="pyarrow.Table"):
        as_table([1, 2])
