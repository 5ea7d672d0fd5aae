"""Stage-2 business rules: designed-bad copies of real records are quarantined with the rule they break,
the good ones pass, none are lost, and tick-scale validation builds no model per good record."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import databento as db
import numpy as np
import pyarrow as pa
import pytest
from repo_paths import DBN_SAMPLES

from hdi_core.vendor_schemas import rules as rules_module
from hdi_core.vendor_schemas.dbn_files import _symbol_column, records_to_table, vendor_rows
from hdi_core.vendor_schemas.mapping import apply_mapping
from hdi_core.vendor_schemas.rules import Expectation, pandera_schema, validate
from hdi_core.vendor_schemas.sequence import out_of_order
from hdi_resources.dead_letter import write_dead_letter

SAMPLES = DBN_SAMPLES
GLBX = SAMPLES / "databento-python" / "GLBX.MDP3"
INT64_MAX = np.iinfo(np.int64).max
UINT64_MAX = np.iinfo(np.uint64).max


def _copies(schema: str, n: int) -> tuple[np.ndarray, db.DBNStore]:
    """n copies of a real file's records (cycled), distinct sequence numbers where the schema has them."""
    store = db.DBNStore.from_file(GLBX / f"test_data.{schema}.dbn.zst")
    records = store.to_ndarray().reshape(-1)
    out = np.resize(records, n).copy()
    cycle = (np.arange(n) // len(records)).astype(np.uint64) * np.uint64(1_000_000_000)
    for name in ("ts_event", "ts_recv"):  # each cycle a second later: the copies stay in index-time order
        if name in out.dtype.names:
            out[name] += cycle
    if "sequence" in out.dtype.names:
        out["sequence"] = np.arange(n, dtype=out["sequence"].dtype) + 1
    return out, store


def _raw(records: np.ndarray, store: db.DBNStore) -> pa.Table:
    table = records_to_table(records)
    return table.append_column("symbol", _symbol_column(table, store.metadata))


def _run(schema: str, records: np.ndarray, store: db.DBNStore, expect: Expectation | None = None):
    valid, quarantined = vendor_rows(_raw(records, store), schema, dataset="GLBX.MDP3", expect=expect)
    assert valid.num_rows + quarantined.num_rows == len(records)  # none lost
    by_record = {
        json.loads(r)["sequence" if "sequence" in records.dtype.names else "ts_event"]: rule
        for r, rule in zip(
            quarantined.column("record").to_pylist(), quarantined.column("rule").to_pylist(), strict=True
        )
    }
    return valid, quarantined, by_record


def test_ohlcv_bad_bars_are_quarantined_by_rule():
    records, store = _copies("ohlcv-1m", 8)
    records["ts_event"] += np.arange(8, dtype=np.uint64) * 60_000_000_000  # distinct bars
    tick = 250_000_000
    records["high"][1] = records["low"][1] - tick  # high below low
    records["open"][2] = -records["open"][2]  # negative price
    records["close"][3] = records["high"][3] + tick  # close above high
    records["low"][4] = min(records["open"][4], records["close"][4]) + tick  # low above open/close
    records["ts_event"][5] = UINT64_MAX  # sentinel timestamp
    valid, quarantined, _ = _run("ohlcv-1m", records, store)
    rules = quarantined.column("rule").to_pylist()
    assert rules == [
        "ohlc.high_ge_low",
        "price.positive",
        "ohlc.high_ge_open_close",
        "ohlc.low_le_open_close",
        "required.ts_event",
    ]
    assert valid.num_rows == 3
    recorded = [json.loads(r) for r in quarantined.column("record").to_pylist()]
    assert recorded[0]["high"] == int(records["high"][1]) and recorded[0]["symbol"] == "ESH1"
    messages = quarantined.column("message").to_pylist()
    assert messages[0].startswith("OhlcvMsg: ohlc.high_ge_low: high ")  # worded by the Pydantic model
    assert "ts_event: no value" in messages[4]
    assert set(quarantined.column("target").to_pylist()) == {"ohlcv_data"}


def test_trades_wrong_symbol_instrument_and_range():
    records, store = _copies("trades", 6)
    records["side"][1] = b"X"
    records["price"][2] = INT64_MAX  # UNDEF_PRICE on a NOT NULL price
    records["size"][3] = 0
    records["ts_recv"][4] = 1_704_067_200_000_000_000  # 2024-01-01: outside the requested day
    day = dt.datetime(2020, 12, 28, tzinfo=dt.UTC)
    expect = Expectation(start=day, end=day + dt.timedelta(days=1), symbols=frozenset({"ESH1"}))
    _, quarantined, by_seq = _run("trades", records, store, expect)
    assert by_seq == {2: "side.valid", 3: "required.price", 4: "size.positive", 5: "timestamp.in_range"}

    wrong_symbol = Expectation(symbols=frozenset({"NQH1"}))
    valid, quarantined, _ = _run("trades", records[[0, 5]], store, wrong_symbol)
    assert valid.num_rows == 0 and set(quarantined.column("rule").to_pylist()) == {"symbol.expected"}
    wrong_id = Expectation(instrument_ids=frozenset({1}))
    _, quarantined, _ = _run("trades", records[[0]], store, wrong_id)
    assert quarantined.column("rule").to_pylist() == ["instrument.expected"]


def test_tbbo_bid_above_ask_and_unset_quotes():
    records, store = _copies("tbbo", 4)
    records["bid_px_00"][1] = records["ask_px_00"][1] + 250_000_000
    records["bid_px_00"][2] = INT64_MAX  # one side unset: nothing to compare, passes
    records["ask_px_00"][3] = -records["ask_px_00"][3]
    valid, quarantined, by_seq = _run("tbbo", records, store)
    assert by_seq == {2: "bbo.bid_le_ask", 4: "price.positive"}
    assert valid.num_rows == 2
    assert quarantined.column("message").to_pylist()[0].startswith("TbboMsg: bbo.bid_le_ask: bid ")


def test_statistics_rules_run_through_the_model_for_every_record():
    records, store = _copies("statistics", 5)
    records["price"][1] = INT64_MAX  # neither price nor quantity
    records["stat_type"][2] = 3  # a settlement price...
    records["price"][2] = -records["price"][2]  # ...below zero
    records["stat_type"][3] = 12  # net change may be negative
    records["price"][3] = -records["price"][3]
    records["stat_type"][4] = 999  # not a stat type
    valid, quarantined, by_seq = _run("statistics", records, store)
    assert by_seq == {2: "statistics.value_set", 3: "price.positive", 5: "stat_type.valid"}
    assert valid.num_rows == 2
    assert valid.column("ts_ref").null_count == 2  # UNDEF ts_ref is kept as NULL, not quarantined


def test_statistics_deletes_need_no_value():
    records, store = _copies("statistics", 1)
    records["price"][0] = INT64_MAX
    records["update_action"][0] = 2
    valid, quarantined, _ = _run("statistics", records, store)
    assert valid.num_rows == 1 and quarantined.num_rows == 0


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("raw_symbol", b"", "required.raw_symbol"),
        ("min_price_increment", INT64_MAX, "required.min_price_increment"),
        ("instrument_class", b"Q", "instrument_class.valid"),
        ("high_limit_price", 1_000_000_000, "definition.limits_ordered"),
    ],
)
def test_definition_missing_or_bad_fields(field: str, value, rule: str):
    records, store = _copies("definition", 2)
    records[field][1] = value
    valid, quarantined, _ = _run("definition", records, store)
    assert valid.num_rows == 1
    assert quarantined.column("rule").to_pylist() == [rule]
    assert quarantined.column("message").to_pylist()[0]


@pytest.mark.parametrize("field", ["expiration", "activation"])
def test_definition_without_expiration_or_activation_is_kept_with_null(field: str):
    """UNDEF_TIMESTAMP is Databento's "no value" (equities have no expiration): NULL, not a rejection."""
    records, store = _copies("definition", 2)
    records[field][1] = UINT64_MAX
    valid, quarantined, _ = _run("definition", records, store)
    assert quarantined.num_rows == 0 and valid.column(field).to_pylist()[1] is None


def test_pandera_schema_names_every_rule():
    schema, order = pandera_schema("ohlcv-1m", Expectation(start=dt.datetime(2024, 1, 1, tzinfo=dt.UTC)))
    names = {check.name for check in schema.checks}
    assert {
        "ohlc.high_ge_low",
        "ohlc.high_ge_open_close",
        "ohlc.low_le_open_close",
        "price.positive",
        "timestamp.in_range",
        "timestamp.plausible",
    } <= names
    assert set(schema.columns) == {
        "ts_event",
        "instrument_id",
        "open_price",
        "high_price",
        "low_price",
        "close_price",
        "volume",
        "granularity",
        "data_source",
    }
    assert order[0].startswith("required.")


def test_tick_scale_builds_models_only_for_rejected_rows(monkeypatch: pytest.MonkeyPatch):
    records, store = _copies("trades", 20_000)
    bad = [17, 4_000, 19_999]
    records["price"][bad] = -1
    calls: list[int] = []
    real = rules_module.check_record

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(rules_module, "check_record", counting)
    rows = apply_mapping(_raw(records, store), "trades")
    valid, quarantined = validate("trades", rows)
    assert quarantined.num_rows == 3 and valid.num_rows == 20_000 - 3
    assert len(calls) == 3
    assert [json.loads(r)["sequence"] for r in quarantined.column("record").to_pylist()] == [
        b + 1 for b in bad
    ]


def test_allow_nonpositive_prices_for_spreads():
    records, store = _copies("trades", 2)
    records["price"][1] = -250_000_000
    valid, quarantined = validate(
        "trades", apply_mapping(_raw(records, store), "trades"), Expectation(allow_nonpositive_prices=True)
    )
    assert valid.num_rows == 2 and quarantined.num_rows == 0


def test_dead_letter_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HDI_HOME", str(tmp_path))
    records, store = _copies("tbbo", 3)
    records["bid_px_00"][0] = records["ask_px_00"][0] + 1
    _, quarantined, _ = _run("tbbo", records, store)
    path = write_dead_letter(quarantined, "es/tbbo job", "run 7")
    assert path == tmp_path / "dead_letter" / "es_tbbo_job" / "run_7.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(lines) == 1
    assert lines[0]["rule"] == "bbo.bid_le_ask" and lines[0]["job"] == "es/tbbo job"
    assert lines[0]["record"]["bid_px_00"] == int(records["bid_px_00"][0])
    assert lines[0]["target"] == "tbbo_data"


# -- record order and duplicates (issue 11) -----------------------------------------------------------------


def _trades_in_order(n: int) -> tuple[np.ndarray, db.DBNStore]:
    records, store = _copies("trades", n)
    records["ts_event"] = records["ts_event"][0] + np.arange(n, dtype=np.uint64) * 1_000_000
    records["ts_recv"] = records["ts_event"] + 150_000
    return records, store


def test_swapped_timestamps_quarantine_exactly_the_two_records():
    records, store = _trades_in_order(10)
    for name in ("ts_event", "ts_recv"):
        records[name][[2, 6]] = records[name][[6, 2]]
    valid, quarantined, by_seq = _run("trades", records, store)
    assert by_seq == {3: "order.index_time", 7: "order.index_time"}  # sequence = position + 1
    assert all(m.startswith("order.index_time: record ") for m in quarantined.column("message").to_pylist())
    assert valid.num_rows == 8


def test_adjacent_swap_quarantines_the_later_record_only():
    records, store = _trades_in_order(6)
    records["ts_recv"][[3, 4]] = records["ts_recv"][[4, 3]]
    _, _, by_seq = _run("trades", records, store)
    assert by_seq == {5: "order.index_time"}  # its ts_recv is lower than the previous record's


def test_late_ts_event_and_shared_timestamps_pass():
    records, store = _trades_in_order(8)
    records["ts_event"][4] = records["ts_event"][1]  # matched long before it was received: real data
    records["ts_recv"][5:8] = records["ts_recv"][5]  # one packet, three trades
    records["ts_event"][5:8] = records["ts_event"][5]
    valid, quarantined, _ = _run("trades", records, store)
    assert quarantined.num_rows == 0 and valid.num_rows == 8


def test_ohlcv_order_is_by_interval_start():
    records, store = _copies("ohlcv-1m", 6)
    records["ts_event"] = records["ts_event"][0] + np.arange(6, dtype=np.uint64) * 60_000_000_000
    records["ts_event"][[1, 4]] = records["ts_event"][[4, 1]]
    _, quarantined, _ = _run("ohlcv-1m", records, store)
    assert quarantined.column("rule").to_pylist() == ["order.index_time"] * 2


def test_exact_duplicates_keep_the_first():
    records, store = _trades_in_order(5)
    twice = np.concatenate([records, records[1:2], records[3:4]])
    valid, quarantined, by_seq = _run("trades", twice, store)
    assert by_seq == {2: "duplicate.record", 4: "duplicate.record"} and valid.num_rows == 5
    assert quarantined.column("message").to_pylist()[0] == (
        "duplicate.record: record 5 repeats record 1 field for field (the first is kept)")
    nearly = np.concatenate([records, records[1:2]])
    nearly["ts_in_delta"][-1] += 1  # one field differs: not a duplicate (and in order: its ts_recv ties)
    nearly["ts_recv"][-1] = nearly["ts_recv"][-2]
    assert _run("trades", nearly, store)[1].num_rows == 0


def test_an_ordered_input_costs_one_pass():
    times = np.arange(3_000_000, dtype=np.int64)
    assert not out_of_order(times).any() and not out_of_order(times, np.ones(len(times), bool)).any()
    wild = times.copy()
    wild[10] = 10**15  # one wild timestamp: only it is out of place, not the 3M records after it
    assert np.flatnonzero(out_of_order(wild)).tolist() == [10]
