"""hdi_resources.db.prepare: constant columns filled, rule breakers picked out column-wise, without a server."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from hdi_core.errors import HdiError
from hdi_resources.db.binary import PgColumn
from hdi_resources.db.prepare import prepare
from hdi_resources.db.tables import TableInfo

BARS = TableInfo("continuous_bars", [
    PgColumn("continuous_symbol", "text", True, False), PgColumn("granularity", "text", True, False),
    PgColumn("ts", "timestamptz", True, False), PgColumn("open", "numeric", True, False),
    PgColumn("high", "numeric", True, False), PgColumn("low", "numeric", True, False),
    PgColumn("close", "numeric", True, False), PgColumn("volume", "int8", True, False),
    PgColumn("loaded_at", "timestamptz", True, True),
], ["continuous_symbol", "granularity", "ts"])
KEY = {"continuous_symbol": "ES.v.0", "granularity": "1s"}


def bars(n: int) -> dict[str, object]:
    price = np.full(n, 4_500_000_000_000, dtype=np.int64)
    return {"ts": pa.array(np.arange(n, dtype=np.int64) * 1_000_000, pa.timestamp("us", tz="UTC")),
            "open": price, "high": price + 250_000_000, "low": price - 250_000_000, "close": price,
            "volume": np.ones(n, dtype=np.int64), "note": ["x"] * n}


def test_valid_rows_get_the_partition_columns_and_lose_unknown_ones() -> None:
    valid, invalid, rules, _, ignored = prepare(BARS, pa.table(bars(4)), KEY, BARS.primary_key)
    assert valid.column_names == ["continuous_symbol", "granularity", "ts", "open", "high", "low", "close",
                                  "volume"]
    assert valid.column("continuous_symbol").cast(pa.string()).to_pylist() == ["ES.v.0"] * 4
    assert (invalid.num_rows, rules, ignored) == (0, [], ["note"])


def test_each_bad_row_is_named_by_its_first_broken_rule() -> None:
    data = bars(6)
    data["high"] = data["high"].copy()
    data["high"][1] = data["low"][1] - 1
    data["volume"] = pa.array([1, 1, -3, None, 1, 1], pa.int64())
    data["ts"] = pa.array([0, 1, 2, 3, 4, 4], pa.timestamp("us", tz="UTC"))
    data["granularity"] = ["1s", "1s", "1s", "1s", "1s", "2s"]
    valid, invalid, rules, counts, _ = prepare(BARS, pa.table(data), KEY, BARS.primary_key)
    assert valid.num_rows == 2 and invalid.num_rows == 4
    assert rules == ["bar_high_is_highest", "bar_volume_not_negative", "not_null(volume)",
                     "partition_key_mismatch"]
    assert counts.counts == {"partition_key_mismatch": 1, "bar_high_is_highest": 1,
                             "bar_volume_not_negative": 1, "not_null(volume)": 1}
    assert "note" in invalid.column_names  # a quarantined record keeps every input column


def test_a_repeated_key_keeps_the_first_row() -> None:
    data = pa.table(bars(3)).set_column(0, "ts", pa.array([0, 7, 0], pa.timestamp("us", tz="UTC")))
    valid, invalid, rules, _, _ = prepare(BARS, data, KEY, BARS.primary_key)
    assert valid.num_rows == 2 and rules == ["duplicate_key"]
    assert invalid.column("ts").cast(pa.int64()).to_pylist() == [0]


def test_a_missing_required_column_is_an_error() -> None:
    with pytest.raises(HdiError, match="no column 'volume'"):
        prepare(BARS, pa.table(bars(2)).drop_columns(["volume"]), KEY, BARS.primary_key)
