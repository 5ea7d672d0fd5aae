"""The declarative mapping (configs/api_specific/databento_mappings.yaml) applied column-wise."""

from __future__ import annotations

import re
from pathlib import Path

import databento as db
import numpy as np
import pyarrow as pa
import pytest
from repo_paths import REPO_ROOT

from hdi_core import dbn as dbn_codec
from hdi_core.errors import ConfigError, HdiError
from hdi_core.vendor_schemas.dbn_files import read_dbn_file, records_to_table
from hdi_core.vendor_schemas.mapping import apply_mapping, load_mappings, parse_mappings, resample_ohlcv

SAMPLES = REPO_ROOT.parent / "shared" / "fixtures" / "dbn_samples"
GLBX = SAMPLES / "databento-python" / "GLBX.MDP3"
MIGRATION = REPO_ROOT / "hdi_resources" / "migrations" / "0003_vendor.sql"


def _table_columns(table: str) -> list[str]:
    """Column names of a CREATE TABLE in the vendor migration (seed 004's tables)."""
    body = re.search(rf"CREATE TABLE IF NOT EXISTS {table} \((.*?)\n\)", MIGRATION.read_text(), re.S)
    assert body, table
    names = []
    for line in body.group(1).splitlines():
        word = line.strip().split(" ")[0]
        if word and word not in ("PRIMARY", "--") and not word.startswith("--"):
            names.append(word)
    for later in sorted(MIGRATION.parent.glob("*.sql")):  # columns later migrations add (0010: exact ns)
        names += re.findall(rf"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS (\w+)", later.read_text())
    return names


@pytest.mark.parametrize("family", ["ohlcv", "trades", "tbbo", "statistics", "definition"])
def test_output_columns_are_exactly_the_tables_columns(family: str):
    mapping = load_mappings().family(family)
    assert sorted(mapping.column_names) == sorted(_table_columns(mapping.target_table))


def test_ohlcv_constants_renames_and_types():
    dbn = read_dbn_file(GLBX / "test_data.ohlcv-1h.dbn.zst")
    rows = apply_mapping(dbn.table, "ohlcv-1h", dataset="GLBX.MDP3")
    assert set(rows.column("granularity").to_pylist()) == {"1h"}
    assert set(rows.column("data_source").to_pylist()) == {"databento/GLBX.MDP3"}
    assert rows.column("open_price").to_pylist() == dbn.table.column("open").to_pylist()
    assert rows.schema.field("open_price").type == pa.int64()  # fixed point kept, no float
    assert rows.column("trade_count").null_count == rows.num_rows
    assert rows.schema.field("ts_event").type == pa.timestamp("ns", tz="UTC")


def _raw(path: Path) -> np.ndarray:
    return db.DBNStore.from_file(path).to_ndarray().reshape(-1).copy()


def test_sentinels_become_null():
    records = _raw(GLBX / "test_data.tbbo.dbn.zst")
    records["bid_px_00"][0] = np.iinfo(np.int64).max
    records["ts_recv"][1] = np.iinfo(np.uint64).max
    records["ts_in_delta"][2] = np.iinfo(np.int32).max  # a real value for this column: kept
    rows = apply_mapping(records_to_table(records), "tbbo")
    assert rows.column("bid_px_00")[0].as_py() is None
    assert rows.column("ask_px_00")[0].as_py() == int(records["ask_px_00"][0])
    assert rows.column("ts_recv")[1].as_py() is None
    assert rows.column("ts_in_delta")[2].as_py() == np.iinfo(np.int32).max


@pytest.mark.parametrize("name", ["test_data.statistics.v1.dbn.zst", "test_data.statistics.v3.dbn.zst"])
def test_undef_stat_quantity_is_null_in_every_dbn_version(name: str):
    dbn = read_dbn_file(SAMPLES / "dbn" / name)
    raw_quantity = dbn.table.column("quantity").to_pylist()
    assert set(raw_quantity) == {np.iinfo(np.int32 if dbn.version == 1 else np.int64).max}
    rows = apply_mapping(dbn.table, "statistics")
    assert rows.column("quantity").null_count == rows.num_rows
    assert rows.column("ts_ref").null_count == rows.num_rows  # UNDEF_TIMESTAMP in this file


def test_side_and_action_bytes_become_letters():
    rows = apply_mapping(read_dbn_file(GLBX / "test_data.trades.dbn.zst").table, "trades")
    assert set(rows.column("side").to_pylist()) <= {"A", "B", "N"}
    assert set(rows.column("action").to_pylist()) == {"T"}
    assert rows.schema.field("side").type == pa.string()


def test_old_definitions_get_leg_defaults_and_group_is_renamed():
    dbn = read_dbn_file(SAMPLES / "dbn" / "test_data.definition.v1.dbn.zst")
    assert "leg_count" not in dbn.table.column_names
    rows = apply_mapping(dbn.table, "definition")
    assert rows.column("leg_count").to_pylist() == [0, 0]
    assert rows.column("leg_index").to_pylist() == [0, 0]
    assert rows.column("leg_price").null_count == 2
    assert rows.column("security_group").to_pylist() == dbn.table.column("group").to_pylist()


@pytest.mark.parametrize("signed_times", [False, True], ids=["file path (u64)", "API path (int64 view)"])
def test_undefined_timestamp_is_null_in_both_time_representations(signed_times: bool):
    """DBN's UNDEF_TIMESTAMP (u64 max; -1 in the resource's int64 view) is NULL, never 1969-12-31T23:59:59.999999999Z;
    the exact-ns companions carry the same values as the timestamps, to the nanosecond."""
    stats = _raw(GLBX / "test_data.statistics.dbn.zst")
    stats["ts_ref"][1] = 1_609_113_600_123_456_789  # one defined ts_ref among the sample's UNDEF ones
    rows = apply_mapping(dbn_codec.records_to_table(stats, signed_times=signed_times), "statistics")
    assert rows.column("ts_ref").to_pylist()[0] is None and rows.column("ts_ref").null_count == len(stats) - 1
    assert rows.column("ts_ref").cast(pa.int64())[1].as_py() == 1_609_113_600_123_456_789
    assert rows.column("ts_event_ns").to_pylist() == stats["ts_event"].astype(np.int64).tolist()
    assert rows.column("ts_recv_ns").to_pylist() == stats["ts_recv"].astype(np.int64).tolist()
    definition = _raw(GLBX / "test_data.definition.dbn.zst")
    definition["expiration"] = np.iinfo(np.uint64).max
    definition["activation"] = np.iinfo(np.uint64).max
    rows = apply_mapping(dbn_codec.records_to_table(definition, signed_times=signed_times), "definition")
    assert rows.column("expiration").to_pylist() == [None] and rows.column("activation").to_pylist() == [None]


def test_missing_field_without_default_is_an_error():
    table = read_dbn_file(GLBX / "test_data.trades.dbn.zst").table.drop_columns(["price"])
    with pytest.raises(HdiError, match=r"mapping trades.price: the records have no field 'price'"):
        apply_mapping(table, "trades")


def test_integer_overflow_becomes_null_not_a_wrapped_value():
    records = _raw(GLBX / "test_data.trades.dbn.zst")
    records["size"][0] = np.iinfo(np.uint32).max  # no INTEGER holds it
    rows = apply_mapping(records_to_table(records), "trades")
    assert rows.column("size")[0].as_py() is None
    assert rows.column("size")[1].as_py() == int(records["size"][1])


def test_resample_ohlcv_builds_5m_bars_from_1m_bars():
    minute = 60 * 1_000_000_000
    start = 1_709_510_400 * 1_000_000_000  # 2024-03-04 00:00 UTC
    n = 12
    ts = np.array([start + i * minute for i in range(n)], dtype=np.int64)
    base = 5_000_000_000_000
    opens = base + np.arange(n, dtype=np.int64) * 250_000_000
    bars = pa.table(
        {
            "ts_event": pa.array(ts).cast(pa.timestamp("ns", tz="UTC")),
            "instrument_id": pa.array([42] * n, pa.int32()),
            "open_price": pa.array(opens),
            "high_price": pa.array(opens + 500_000_000),
            "low_price": pa.array(opens - 250_000_000),
            "close_price": pa.array(opens + 250_000_000),
            "volume": pa.array(np.arange(1, n + 1, dtype=np.int64)),
            "trade_count": pa.nulls(n, pa.int32()),
            "vwap": pa.nulls(n, pa.int64()),
            "granularity": pa.array(["1m"] * n),
            "data_source": pa.array(["databento/GLBX.MDP3"] * n),
        }
    )
    five = resample_ohlcv(
        bars.take([3, 0, 7, 1, 2, 4, 5, 6, 8, 9, 10, 11]), 5, "5m"
    )  # input order irrelevant
    assert five.num_rows == 3
    assert five.column_names == bars.column_names
    first = five.to_pylist()[0]
    assert first["open_price"] == opens[0] and first["close_price"] == opens[4] + 250_000_000
    assert first["high_price"] == opens[4] + 500_000_000 and first["low_price"] == opens[0] - 250_000_000
    assert first["volume"] == 1 + 2 + 3 + 4 + 5 and first["granularity"] == "5m"
    assert five.column("ts_event").cast(pa.int64()).to_pylist() == [
        start,
        start + 5 * minute,
        start + 10 * minute,
    ]


@pytest.mark.parametrize(
    ("block", "message"),
    [
        (
            {"price": {"from": "price", "as": "prize"}},
            "m.yaml: schemas.trades.columns.price.as: Input should be 'timestamp', 'nanos'",
        ),
        ({"price": {"as": "price"}}, "m.yaml: schemas.trades.columns.price: needs exactly one of `from`"),
        (
            {"price": {"from": "price", "as": "price", "colour": 1}},
            "m.yaml: schemas.trades.columns.price.colour: Extra inputs are not permitted",
        ),
        (
            {"side": {"from": "side", "as": "char", "enum": "sides"}},
            "m.yaml: schemas.trades.columns.side.enum: no enum named 'sides'",
        ),
    ],
)
def test_broken_mapping_files_are_refused_naming_the_key(block: dict, message: str):
    raw = {
        "schemas": {"trades": {"target_table": "trades_data", "columns": block}},
        "enums": {"side": {"A": "a"}},
    }
    with pytest.raises(ConfigError) as err:
        parse_mappings(raw, "m.yaml")
    assert message in str(err.value)
