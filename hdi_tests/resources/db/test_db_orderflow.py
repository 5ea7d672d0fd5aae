"""Order-flow tables on both backends: loads replace a symbol x window, reads give back exactly what was computed
(fixed-point prices, instants), the query CLI serves every order-flow schema."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pyarrow as pa
import pytest
import typer
from conftest import database_env
from orderflow_tapes import TICK, mbo_tape, mbp_tape, random_trades, week_sessions
from typer.testing import CliRunner

from hdi_app.cli.db import query_command
from hdi_core.orderflow import (
    OrderEvents,
    TopOfBook,
    absorption_zones,
    aggressor_flow,
    footprint,
    iceberg_candidates,
    volume_profile,
)
from hdi_resources.db import Database
from hdi_resources.db.orderflow import (
    ORDERFLOW_SCHEMAS,
    absorption_rows,
    delete_live_orderflow,
    delta_rows,
    footprint_rows,
    iceberg_rows,
    load_orderflow,
    profile_rows,
    query_orderflow,
    read_orderflow_rows,
    upsert_live_orderflow,
    window_of,
)
from hdi_resources.db.readerrors import NotFound, TooLarge

SYMBOL, WINDOW = "ES.v.0", "2024-01-01"


def _book_columns(table: pa.Table) -> pa.Table:
    n = table.num_rows
    return (table.append_column("instrument_id", pa.array([42] * n, pa.int64()))
            .append_column("raw_symbol", pa.array(["ESH4"] * n, pa.string()))
            .append_column("trade_date", pa.array([dt.date(2024, 3, 6)] * n, pa.date32())))


@pytest.fixture(scope="module")
def computed() -> dict[str, pa.Table]:
    sessions = week_sessions()
    trades = random_trades(11, 4_000)
    levels, _ = volume_profile(trades, sessions, TICK)
    refills = [(0, "A", "B", 1, 100, 10)]
    for oid in range(1, 6):
        refills += [(oid * 20 + 5, "F", "B", oid, 100, 10), (oid * 20 + 5, "C", "B", oid, 100, 10),
                    (oid * 20 + 10, "A", "B", oid + 1, 100, 10)]
    book = [(0, "A", "B", 100, 20, 100, 20, 101, 30), (10, "T", "A", 100, 25, 100, 20, 101, 30),
            (11, "C", "B", 100, 25, 99, 10, 101, 30)]
    return {
        "flows": {g: aggressor_flow(trades, sessions, g) for g in ("1s", "1m", "1d")},
        "footprint": footprint(trades, sessions, "1m", TICK),
        "profile": levels,
        "absorption": _book_columns(absorption_zones(TopOfBook(**mbp_tape(book)), min_volume=10)),
        "icebergs": _book_columns(iceberg_candidates(OrderEvents(**mbo_tape(refills)), min_refills=3)),
    }


@pytest.fixture(scope="module")
def db(storage_db: Database, computed: dict) -> Database:
    loads = {
        "orderflow_delta": delta_rows(computed["flows"]),
        "orderflow_footprint": footprint_rows(computed["footprint"], "1m", "panama"),
        "orderflow_profile": profile_rows(computed["profile"], "panama"),
        "orderflow_absorption": absorption_rows(computed["absorption"]),
        "orderflow_icebergs": iceberg_rows(computed["icebergs"]),
    }
    for table, rows in loads.items():
        result = load_orderflow(storage_db, table, SYMBOL, WINDOW, rows, source="test")
        assert (result.inserted, result.quarantined) == (rows.num_rows, 0), table
    return storage_db


def test_delta_reads_back_exactly(db: Database, computed: dict) -> None:
    for g in ("1s", "1m", "1d"):
        got = query_orderflow(db, "ES", f"delta-{g}", max_rows=None)
        flow = computed["flows"][g]
        assert [int(t.timestamp() * 1_000_000) for t in got["ts"].to_pylist()] == \
            (flow["ts_event"].to_numpy() // 1000).tolist()
        for c in ("buy_volume", "sell_volume", "no_side_volume", "delta", "cum_delta", "trade_count"):
            assert got[c].to_pylist() == flow[c].to_pylist(), (g, c)
        assert got["trade_date"].to_pylist() == flow["trade_date"].to_pylist()


def test_footprint_and_profile_prices_are_exact(db: Database, computed: dict) -> None:
    got = query_orderflow(db, SYMBOL, "footprint-1m", prices="fixed")
    assert got["price"].to_pylist() == computed["footprint"]["price"].to_pylist()
    assert got["buy_imbalance"].to_pylist() == computed["footprint"]["buy_imbalance"].to_pylist()
    profile = query_orderflow(db, "es", "profile", prices="fixed")
    assert profile["price"].to_pylist() == computed["profile"]["price"].to_pylist()
    assert profile["node"].to_pylist() == computed["profile"]["node"].to_pylist()
    assert sum(profile["is_poc"].to_pylist()) == len(set(computed["profile"]["trade_date"].to_pylist()))


def test_book_rows_keep_their_evidence(db: Database, computed: dict) -> None:
    zones = query_orderflow(db, "ES", "absorption", prices="fixed").to_pylist()
    expected = computed["absorption"].to_pylist()
    assert [(z["outcome"], z["volume"], z["first_sequence"], z["last_ts_recv"]) for z in zones] == \
        [(z["outcome"], z["volume"], z["first_sequence"], z["last_ts_recv"]) for z in expected]
    icebergs = query_orderflow(db, "ES", "icebergs").to_pylist()
    assert [(i["rule"], i["label"], i["refills"], i["order_ids"]) for i in icebergs] == \
        [("price_level_refill", "inference", 5, "1 2 3 4 5 6")]


def test_trade_dates_select_delta_and_a_reload_replaces(db: Database, computed: dict) -> None:
    day = query_orderflow(db, "ES", "delta-1d", "2024-03-06", "2024-03-07")
    assert day["trade_date"].to_pylist() == [dt.date(2024, 3, 6)]
    again = load_orderflow(db, "orderflow_delta", SYMBOL, WINDOW, delta_rows(computed["flows"]), source="test")
    assert again.deleted == again.inserted == sum(t.num_rows for t in computed["flows"].values())


def test_errors_are_one_line(db: Database) -> None:
    with pytest.raises(NotFound, match="no delta-1m rows stored for 'NQ'"):
        query_orderflow(db, "NQ", "delta-1m")
    with pytest.raises(NotFound, match="unknown order-flow schema"):
        query_orderflow(db, "ES", "delta-2m")
    with pytest.raises(TooLarge, match="over 10 rows"):
        query_orderflow(db, "ES", "delta-1s", max_rows=10)


def test_query_cli_serves_every_schema(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in database_env(db).items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    app = typer.Typer()
    app.command("query")(query_command)
    app.command("noop")(lambda: None)
    for schema in ORDERFLOW_SCHEMAS:
        if schema in ("delta-5m", "delta-15m", "delta-1h"):
            continue  # not loaded here
        done = CliRunner().invoke(app, ["query", "--symbol", "ES", "--schema", schema, "--format", "json",
                                        "--limit", "3"])
        assert done.exit_code == 0, (schema, done.output)
        rows = json.loads(done.stdout)
        assert 1 <= len(rows) <= 3, schema
    missing = CliRunner().invoke(app, ["query", "--symbol", "ES", "--schema", "delta-5m"])
    assert isinstance(missing.exception, NotFound) and "no delta-5m rows stored for 'ES'" in str(missing.exception)
    assert np.all(np.diff([r["price"] for r in json.loads(CliRunner().invoke(
        app, ["query", "--symbol", "ES", "--schema", "profile", "--format", "json", "--prices", "fixed",
              "--start", "2024-03-06", "--end", "2024-03-07"]).stdout)]) > 0)


def _dates(table: pa.Table) -> np.ndarray:
    return table["trade_date"].to_numpy().astype("datetime64[D]")


def test_live_rows_upsert_idempotently_and_never_over_history(db: Database, computed: dict) -> None:
    live_symbol = "ZZ.v.0"  # a symbol of its own: the other tests read ES
    flows = {"1m": computed["flows"]["1m"]}
    rows = delta_rows(flows)
    assert upsert_live_orderflow(db, "orderflow_delta", live_symbol, rows, _dates(flows["1m"])) == rows.num_rows
    first = read_orderflow_rows(db, "orderflow_delta", live_symbol, source="live").drop_columns(["loaded_at"])
    upsert_live_orderflow(db, "orderflow_delta", live_symbol, rows, _dates(flows["1m"]))  # a replay: the same rows
    again = read_orderflow_rows(db, "orderflow_delta", live_symbol, source="live").drop_columns(["loaded_at"])
    assert again.equals(first) and again.num_rows == rows.num_rows
    assert set(again["window"].to_pylist()) == {dt.date(2024, 1, 1)}
    # a live row never overwrites a historical one (ES.v.0 holds history from the module's load)
    history = read_orderflow_rows(db, "orderflow_delta", SYMBOL).drop_columns(["loaded_at"])
    assert upsert_live_orderflow(db, "orderflow_delta", SYMBOL, rows, _dates(flows["1m"])) == 0
    assert read_orderflow_rows(db, "orderflow_delta", SYMBOL).drop_columns(["loaded_at"]).equals(history)
    assert set(history["source"].to_pylist()) == {"history"}
    # once history holds the day, its live rows go; other days stay
    day = dt.date(2024, 3, 6)
    span = [int(np.datetime64(f"{day}T00:00", "ns").astype(np.int64)) - 10 * 3600 * 10**9,
            int(np.datetime64(f"{day}T00:00", "ns").astype(np.int64)) + 24 * 3600 * 10**9]
    gone = delete_live_orderflow(db, live_symbol, day, *span)
    want_gone = int((_dates(flows["1m"]) == np.datetime64(day)).sum())
    assert gone["orderflow_delta"] == want_gone > 0
    left = read_orderflow_rows(db, "orderflow_delta", live_symbol, source="live")
    assert left.num_rows == rows.num_rows - want_gone


def test_window_of_trade_dates() -> None:
    days = np.array(["2024-01-01", "2024-06-30", "2024-07-01", "2024-12-31"], "datetime64[D]")
    assert window_of(days).astype(str).tolist() == ["2024-01-01", "2024-01-01", "2024-07-01", "2024-07-01"]
