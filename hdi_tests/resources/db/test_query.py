"""query / stats / the CLI commands round-trip exactly what was loaded (native PostgreSQL and TimescaleDB)."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import typer
from conftest import database_env
from sample_bars import OPENS, START_NS, minute_bars
from typer.testing import CliRunner

from hdi_app.cli.db import db_app, query_command, stats_command
from hdi_core.errors import HdiError
from hdi_resources.db import Database
from hdi_resources.db.readerrors import BadRequest, NotFound
from hdi_resources.db.server import read_postmaster


def nanos_to_decimal(value: int) -> Decimal:
    return Decimal(value).scaleb(-9)


@pytest.fixture(scope="module")
def db(storage_db: Database) -> Database:
    """This module's database (each backend in turn) holding the five minute bars."""
    storage_db.replace_partition("continuous_bars", {"continuous_symbol": "ES.v.0", "granularity": "1m",
                                                     "window": "2024-07-01"}, minute_bars())
    return storage_db


@pytest.fixture
def cli(db: Database, monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    """The commands as the lead wires them, pointed at this module's database (reused, so left running)."""
    for name, value in database_env(db).items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    app = typer.Typer()
    app.add_typer(db_app, name="db")
    app.command("query")(query_command)
    app.command("stats")(stats_command)
    return app


def test_query_returns_exact_decimals(db: Database) -> None:
    table = db.query("ES", "ohlcv-1m", "2024-07-01", "2024-07-02")
    assert table.schema.field("open").type == pa.decimal128(38, 9)
    assert table.column("open").to_pylist() == [nanos_to_decimal(v) for v in OPENS]
    assert table.column("close").to_pylist() == [nanos_to_decimal(v + 3) for v in OPENS]
    assert table.column("vwap").to_pylist() == [Decimal("4500.123456789"), Decimal("0.1"), Decimal("-12.5"),
                                                Decimal("100000000"), Decimal("0.000000001")]
    assert table.column("ts").to_pylist()[0].isoformat() == "2024-07-01T00:00:00+00:00"
    assert table.column("continuous_symbol").to_pylist() == ["ES.v.0"] * len(OPENS)


def test_query_window_is_half_open(db: Database) -> None:
    table = db.query("ES.v.0", "ohlcv-1m", "2024-07-01T00:01:00", "2024-07-01T00:03:00")
    assert table.column("open").to_pylist() == [nanos_to_decimal(v) for v in OPENS[1:3]]
    with pytest.raises(NotFound, match=r"no ohlcv-1m rows for ES.v.0 in trade dates \[2025-01-01, 2025-02-01\); "
                                       r"stored: 2024-07-01 .. 2024-07-01 \(trade dates\)"):
        db.query("ES", "ohlcv-1m", "2025-01-01", "2025-02-01")
    with pytest.raises(NotFound, match="no ohlcv-1h rows stored for ES.v.0; stored for it: ohlcv-1m"):
        db.query("ES", "ohlcv-1h")
    with pytest.raises(BadRequest, match="is not after start"):
        db.query("ES", "ohlcv-1m", "2024-07-02", "2024-07-01")


def test_query_user_text_is_only_a_parameter(db: Database) -> None:
    with pytest.raises(NotFound, match="unknown symbol .*; stored ohlcv-1m symbols: ES, ES.v.0"):
        db.query("ES'; DROP TABLE continuous_bars; --", "ohlcv-1m")
    assert db.query("ES", "ohlcv-1m").num_rows == len(OPENS)
    with pytest.raises(HdiError, match="unknown schema"):
        db.query("ES", "ohlcv-1m; DROP TABLE x", None, None)


def test_stats_shape(db: Database) -> None:
    stats = db.stats("ES", "ohlcv-1m")
    assert stats == {
        "row_count": len(OPENS),
        "min_ts": "2024-07-01T00:00:00+00:00",
        "max_ts": "2024-07-01T00:04:00+00:00",
        "latest_close": Decimal("1.000000002"),
        "latest_ts": "2024-07-01T00:04:00+00:00",
        "symbol": "ES.v.0",
        "timeframe": "1m",
        "vendor": "databento",
    }


def test_stats_of_nothing_is_a_message_not_an_error(db: Database) -> None:
    stats = db.stats("ES", "ohlcv-1h")  # a known symbol with nothing in this schema: a message
    assert stats["row_count"] == 0 and stats["latest_close"] is None and stats["min_ts"] is None
    assert stats["message"] == "No data ingested yet"
    with pytest.raises(NotFound, match="unknown symbol 'ZZZ9'"):  # an unknown one: an error listing the known
        db.stats("ZZZ9", "trades")


def test_raw_vendor_query_resolves_symbols_through_definitions(db: Database) -> None:
    ts = np.array([START_NS], dtype=np.uint64)
    definition = {
        "ts_event": pa.array(ts), "ts_recv": pa.array(ts), "rtype": [19], "publisher_id": [1],
        "instrument_id": [777], "raw_symbol": ["ESU4"], "security_update_action": ["A"],
        "instrument_class": ["F"], "min_price_increment": [250_000_000], "display_factor": [1_000_000_000],
        "expiration": pa.array(ts + 10**15), "activation": pa.array(ts),
        "high_limit_price": [5_000_000_000_000], "low_limit_price": [4_000_000_000_000],
        "max_price_variation": [100_000_000_000], "inst_attrib_value": [0],
        "market_depth_implied": [2], "market_depth": [10], "market_segment_id": [64], "max_trade_vol": [3000],
        "min_lot_size": [1], "min_trade_vol": [1], "channel_id": [13], "currency": ["USD"],
        "security_group": ["ES"], "exchange": ["XCME"], "asset": ["ES"], "leg_count": [0], "leg_index": [0],
    }
    assert db.upsert_rows("definitions_data", pa.table(definition)).inserted == 1
    bars = pa.table({
        "ts_event": pa.array(ts), "instrument_id": [777], "open_price": [OPENS[0]], "high_price": [OPENS[0]],
        "low_price": [OPENS[0]], "close_price": [OPENS[0]], "volume": [5], "granularity": ["1m"],
        "data_source": ["databento"],
    })
    db.upsert_rows("ohlcv_data", bars)
    for symbol in ("ESU4", "ES", "777"):
        raw = db.query(symbol, "ohlcv-1m", raw=True)
        assert raw.column("close_price").to_pylist() == [nanos_to_decimal(OPENS[0])], symbol
    assert db.query("ESU4", "definitions").column("min_price_increment").to_pylist() == [Decimal("0.25")]
    assert db.stats("ESU4", "ohlcv-1m", raw=True)["latest_close"] == Decimal("4500.25")


def test_cli_query_formats(db: Database, cli: typer.Typer, tmp_path: Path) -> None:
    runner = CliRunner()
    out = runner.invoke(cli, ["query", "--symbol", "ES", "--schema", "ohlcv-1m", "--format", "json"])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.stdout)
    rows = json.loads(out.stdout, parse_float=Decimal)  # exact numbers, never strings
    assert [r["open"] for r in rows] == [nanos_to_decimal(v) for v in OPENS]
    assert rows[0]["raw_symbol"] is None and isinstance(rows[0]["volume"], int)
    target = tmp_path / "bars.parquet"
    out = runner.invoke(cli, ["query", "--symbol", "ES", "--schema", "ohlcv-1m", "--format", "parquet",
                              "--output", str(target)])
    assert out.exit_code == 0, out.output
    assert pq.read_table(target).column("high").to_pylist()[0] == Decimal("4500.500000000")
    out = runner.invoke(cli, ["query", "--symbol", "ES", "--schema", "ohlcv-1m", "--format", "csv",
                              "--start", "2024-07-01T00:04:00"])
    assert out.exit_code == 0 and out.stdout.count("\n") == 2, out.output


def test_cli_stats_and_info(db: Database, cli: typer.Typer) -> None:
    runner = CliRunner()
    out = runner.invoke(cli, ["stats", "--symbol", "ES", "--schema", "ohlcv-1m"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout, parse_float=Decimal)["latest_close"] == Decimal("1.000000002")
    out = runner.invoke(cli, ["db", "info"])
    assert out.exit_code == 0, out.output
    assert f"mode:            {db.storage_mode}" in out.stdout
    if db.embedded is not None:
        assert "hdi_app:***@127.0.0.1" in out.stdout
        assert db.embedded.credentials.app_password not in out.stdout
    assert runner.invoke(cli, ["db", "migrate"]).stdout.strip() == "database is up to date"
    if db.embedded is not None:
        assert read_postmaster(db.embedded.data_dir) is not None  # the CLI did not stop a server it found running


def test_dagster_resource_reads_through_the_same_layer(db: Database, cli: typer.Typer) -> None:
    from hdi_resources.db.resource import DatabaseResource

    resource = DatabaseResource()
    try:
        assert resource.stats("ES", "ohlcv-1m")["row_count"] == len(OPENS)
        assert resource.query("ES", "ohlcv-1m").num_rows == len(OPENS)
    finally:
        resource.database().close()


def test_dagster_postgres_storage_accepts_the_url(db: Database) -> None:
    """Dagster's own run/event/schedule storage can live on the same server (its own database)."""
    from dagster_postgres.event_log import PostgresEventLogStorage
    from dagster_postgres.run_storage import PostgresRunStorage

    url = db.dagster_url()
    assert url.startswith("postgresql+psycopg2://") and "@127.0.0.1:" in url
    if db.embedded is not None:
        assert url.startswith("postgresql+psycopg2://hdi_owner:")
    for storage_class in (PostgresRunStorage, PostgresEventLogStorage):
        storage = storage_class(url)
        storage.dispose()


def test_what_query_returns_loads_again(db: Database) -> None:
    """query()'s decimal128(38, 9) prices go back through the binary COPY unchanged (precision 38 + 10 once
    overflowed Arrow's multiply)."""
    part = {"continuous_symbol": "ES.v.0", "granularity": "1m", "window": "2024-07-01"}
    before = db.query("ES", "ohlcv-1m").drop_columns(["loaded_at"])
    result = db.replace_partition("continuous_bars", part, db.query("ES", "ohlcv-1m").drop_columns(["loaded_at"]))
    assert (result.inserted, result.deleted) == (len(OPENS), len(OPENS))
    assert db.query("ES", "ohlcv-1m").drop_columns(["loaded_at"]).equals(before)


# -- one read layer: the same answers through Python, the CLI and the HTTP API ------------------------------------
DAILY = [  # (session open in UTC, trade date): the 03-01 session opens on 02-29 at 23:00 UTC
    (dt.datetime(2024, 2, 29, 23, tzinfo=dt.UTC), dt.date(2024, 3, 1)),
    (dt.datetime(2024, 3, 3, 23, tzinfo=dt.UTC), dt.date(2024, 3, 4)),
    (dt.datetime(2024, 3, 4, 23, tzinfo=dt.UTC), dt.date(2024, 3, 5)),
]
MAPPED_ID = 4242  # a contract known only through the vendor's symbol mappings (no definition record)


def _daily_bars() -> pa.Table:
    n = len(DAILY)
    price = np.full(n, 5_000_000_000_000, dtype=np.int64)
    return pa.table({
        "root_symbol": ["ES"] * n,
        "ts": pa.array([int(t.timestamp()) * 10**9 for t, _ in DAILY], pa.timestamp("ns", tz="UTC")),
        "trade_date": pa.array([d for _, d in DAILY], pa.date32()),
        "open": price, "high": price + 1, "low": price - 1, "close": price,
        "volume": np.ones(n, dtype=np.int64), "trade_count": np.ones(n, dtype=np.int64), "vwap": [5000.0] * n,
        "adjustment_method": ["panama"] * n,
    })


@pytest.fixture(scope="module")
def more(db: Database) -> Database:
    """Daily continuous bars, one roll, and vendor bars of a contract known by its symbol mapping only."""
    db.replace_partition("continuous_bars", {"continuous_symbol": "ES.v.0", "granularity": "1d",
                                             "window": "2024-03-01"}, _daily_bars())
    switch = pa.array([START_NS + 120_000_000_000], pa.timestamp("ns", tz="UTC"))
    db.replace_partition("roll_events", {"continuous_symbol": "ES.v.0", "window": dt.date(2024, 7, 1)}, pa.table({
        "switch_ts": switch, "old_instrument_id": [776], "new_instrument_id": [777], "old_raw_symbol": ["ESM4"],
        "new_raw_symbol": ["ESU4"], "old_price": [4_500_000_000_000], "new_price": [4_536_250_000_000],
        "roll_gap": [36_250_000_000], "method": ["volume"], "reference_ts": switch}))
    ts = START_NS + np.arange(3, dtype=np.int64) * 60_000_000_000
    db.upsert_rows("ohlcv_data", pa.table({
        "ts_event": pa.array(ts.astype(np.uint64)), "instrument_id": [MAPPED_ID] * 3,
        "open_price": [OPENS[0]] * 3, "high_price": [OPENS[0]] * 3, "low_price": [OPENS[0]] * 3,
        "close_price": [OPENS[0]] * 3, "volume": [1, 2, 3], "granularity": ["1m"] * 3,
        "data_source": ["databento"] * 3}))
    db.record_symbols("GLBX.MDP3", [("NQM4", MAPPED_ID, dt.date(2024, 7, 1), dt.date(2024, 7, 1))])
    return db


def _api(db: Database, path: str) -> tuple[int, dict]:
    from urllib.parse import parse_qs, urlsplit

    from hdi_app.api.jsonout import dumps
    from hdi_app.api.server import MarketDataApi

    parts = urlsplit(path)
    status, body = MarketDataApi(db).handle(parts.path, parse_qs(parts.query, keep_blank_values=True))

    return status, json.loads(dumps(body), parse_float=Decimal)


def _main(db: Database, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, *args: str
          ) -> tuple[int, str, str]:
    """The real `hdi` entry point in-process, pointed at `db` (either backend): exit code, stdout, stderr."""
    from hdi_app.cli import main

    for name, value in database_env(db).items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    monkeypatch.setattr("sys.argv", ["hdi", *args])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize(("forms", "schema"), [(("ES", "ES.v.0", "es.V.0"), "ohlcv-1m"),
                                               (("NQM4", str(MAPPED_ID)), "ohlcv-1m"),
                                               (("ESU4", "777"), "definitions")])
def test_every_symbol_form_gives_the_same_rows_everywhere(more: Database, forms: tuple[str, ...],
                                                          schema: str, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture) -> None:
    from hdi_app.api.jsonout import dumps

    answers = []
    for symbol in forms:
        python = json.loads(dumps(more.query(symbol, schema).to_pylist()), parse_float=Decimal)
        status, api = _api(more, f"/api/market-data/{symbol}/{schema}/bars")
        assert status == 200, api
        code, out, err = _main(more, monkeypatch, capsys, "query", "--symbol", symbol, "--schema", schema,
                               "--format", "json")
        assert code == 0, err
        cli = json.loads(out, parse_float=Decimal)
        for rows in (api["rows"], cli):
            for row in rows:
                row.pop("loaded_at", None)
        python = [{k: v for k, v in r.items() if k != "loaded_at"} for r in python]
        assert python == api["rows"] == cli, symbol
        answers.append(python)
    assert all(a == answers[0] for a in answers) and answers[0]


def test_daily_bars_by_trade_date_include_the_first_session(more: Database) -> None:
    days = more.query("ES", "ohlcv-1d", "2024-03-01", "2024-03-05")
    assert days.column("trade_date").to_pylist() == [dt.date(2024, 3, 1), dt.date(2024, 3, 4)]
    assert days.column("ts").to_pylist()[0] == DAILY[0][0]
    meta = days.schema.metadata  # what the request resolved to travels with the rows
    assert meta[b"hdi.symbol"] == b"ES.v.0" and meta[b"hdi.range"] == b"trade dates [2024-03-01, 2024-03-05)"
    status, body = _api(more, "/api/market-data/ES/ohlcv-1d/bars?start=2024-03-01&end=2024-03-05")
    assert status == 200 and body["resolved"]["range"] == "trade dates [2024-03-01, 2024-03-05)"
    assert [r["trade_date"] for r in body["rows"]] == ["2024-03-01", "2024-03-04"]
    # an instant selects instants: the same first session is found by its open
    assert more.query("ES", "ohlcv-1d", "2024-02-29T23:00:00Z", "2024-03-01").num_rows == 1
    # naive times in exchange time: 17:00 Chicago on 02-29 is 23:00 UTC
    local = more.query("ES", "ohlcv-1d", "2024-02-29T17:00", "2024-02-29T17:01", tz="exchange")
    assert local.num_rows == 1 and str(local.schema.field("ts").type.tz) == "America/Chicago"


def test_price_modes_and_provenance(more: Database) -> None:
    fixed = more.query("ES", "ohlcv-1m", prices="fixed")
    assert fixed.schema.field("open").type == pa.int64() and fixed.column("open").to_pylist() == OPENS
    floats = more.query("ES", "ohlcv-1m", prices="float")
    assert floats.column("open").to_pylist()[0] == 4500.25
    # each continuous bar names its contract: the roll at 00:02 switched ESM4 -> ESU4
    bars = more.query("ES", "ohlcv-1m")
    assert bars.column("raw_symbol").to_pylist() == ["ESM4", "ESM4", "ESU4", "ESU4", "ESU4"]
    assert bars.column("instrument_id").to_pylist() == [776, 776, 777, 777, 777]


def test_rolls_read(more: Database, monkeypatch: pytest.MonkeyPatch,
                    capsys: pytest.CaptureFixture) -> None:
    from hdi_resources.db.read import rolls

    for symbol in ("ES", "ES.v.0", "ESU4", "esm4"):
        table = rolls(more, symbol)
        assert table.num_rows == 1, symbol
    row = rolls(more, "ES").to_pylist()[0]
    assert row["switch_ts"].isoformat() == "2024-07-01T00:02:00+00:00"
    assert row["switch_exchange"].isoformat() == "2024-06-30T19:02:00-05:00"
    assert row["trade_date"] == dt.date(2024, 7, 1)  # after 17:00 Chicago on Sunday: Monday's session
    assert row["roll_gap"] == Decimal("36.25") and row["method"] == "volume"
    status, body = _api(more, "/api/market-data/ES/rolls")
    assert status == 200 and body["rolls"][0]["old_price"] == Decimal("4500") and body["count"] == 1
    code, out, err = _main(more, monkeypatch, capsys, "rolls", "--symbol", "ES", "--format", "csv")
    assert code == 0 and "ESM4" in out and "36.25" in out, err
    with pytest.raises(NotFound, match="no ohlcv-1m rows stored for contract ESM4; it is part of ES.v.0"):
        more.query("ESM4", "ohlcv-1m")  # known only from the roll table
    code, out, err = _main(more, monkeypatch, capsys, "rolls", "--symbol", "CL")
    assert code == 1 and err.count("\n") == 1 and "no rolls stored for 'CL'" in err


@pytest.mark.parametrize(("args", "words", "status"), [
    (("--symbol", "ZZZ9", "--schema", "ohlcv-1m"), "unknown symbol 'ZZZ9'; stored ohlcv-1m symbols: ES, ES.v.0", 404),
    (("--symbol", "ES", "--schema", "ohlcv-1m", "--start", "2024-07-02", "--end", "2024-07-01"),
     "is not after start", 400),
    (("--symbol", "ES", "--schema", "ohlcv-1m", "--start", "2030-01-01"), "stored: 2024-07-01 .. 2024-07-01", 404),
    (("--symbol", "ES", "--schema", "ohlcv-1m", "--start", "yesterday"), "not an ISO date", 400),
    (("--symbol", "ES", "--schema", "mbo"), "unknown schema 'mbo'", 404),
])
def test_errors_are_one_line_with_a_non_zero_exit_and_4xx_json(more: Database, args: tuple[str, ...],
                                                                words: str, status: int,
                                                                monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture) -> None:
    code, out, err = _main(more, monkeypatch, capsys, "query", *args)
    assert code == 1 and out == "" and err.count("\n") == 1 and words in err, err
    assert "Error" not in err and "Traceback" not in err and "hdi.log" not in err
    opts = dict(zip(args[::2], args[1::2], strict=True))
    query = "&".join(f"{k}={opts[f'--{k}']}" for k in ("start", "end") if f"--{k}" in opts)
    got, body = _api(more, f"/api/market-data/{opts['--symbol']}/{opts['--schema']}/bars?{query}")
    assert got == status and words in body["error"] and body["status"] == status


@pytest.mark.parametrize("args", [("--limit", "99999999999999999999"), ("--limit", "0"), ("--limit", "²"),
                                  ("--tz", "mars"), ("--bogus",), ()])
def test_usage_errors_are_one_plain_line(more: Database, args: tuple[str, ...],
                                         monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    base = ("query", "--schema", "ohlcv-1m") if args == () else ("query", "--symbol", "ES", "--schema", "ohlcv-1m")
    code, out, err = _main(more, monkeypatch, capsys, *base, *args)
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: "), err
    for leak in ("MissingParameter", "BadParameter", "Exception", "Traceback", "hdi.log", "OverflowError"):
        assert leak not in err


def test_unbounded_high_frequency_reads_are_guarded(more: Database) -> None:
    from hdi_resources.db.read import query
    from hdi_resources.db.readerrors import TooLarge

    assert query(more, "ES", "ohlcv-1m", max_rows=2).num_rows == len(OPENS)  # minute bars are not guarded
    bars = pa.table({"root_symbol": ["ES"] * 4, "ts": pa.array(START_NS + np.arange(4) * 10**9,
                                                                 pa.timestamp("ns", tz="UTC")),
                     "trade_date": pa.array([dt.date(2024, 7, 1)] * 4, pa.date32()), "open": [1] * 4,
                     "high": [1] * 4, "low": [1] * 4, "close": [1] * 4, "volume": [1] * 4,
                     "trade_count": [1] * 4, "vwap": [1.0] * 4, "adjustment_method": ["panama"] * 4})
    more.replace_partition("continuous_bars", {"continuous_symbol": "ES.v.0", "granularity": "1s",
                                               "window": "2024-07-01"}, bars)
    with pytest.raises(TooLarge, match="ohlcv-1s for ES.v.0 is over 3 rows"):
        query(more, "ES", "ohlcv-1s", max_rows=3)
    assert query(more, "ES", "ohlcv-1s", max_rows=3, limit=2).num_rows == 2
    assert query(more, "ES", "ohlcv-1s", max_rows=None).num_rows == 4


def test_csv_streams_the_same_rows_in_readable_form(more: Database) -> None:
    import io

    from hdi_resources.db.read import stream_csv

    sink = io.BytesIO()
    assert stream_csv(more, sink, "ES", "ohlcv-1m", "2024-07-01", "2024-07-02") == len(OPENS)
    header, *lines = sink.getvalue().decode().splitlines()
    names = header.split(",")
    first = dict(zip(names, lines[0].split(","), strict=True))
    assert first["open"] == "4500.25" and first["ts"] == "2024-07-01 00:00:00+00" and first["raw_symbol"] == "ESM4"
    opens = [line.split(",")[names.index("open")] for line in lines]
    assert opens == ["4500.25", "0.000000001", "-12.5", "123456789.123456789", "0.999999999"]
    sink = io.BytesIO()
    stream_csv(more, sink, "ES", "ohlcv-1m", tz="exchange", prices="fixed", limit=1)
    row = dict(zip(names, sink.getvalue().decode().splitlines()[1].split(","), strict=True))
    assert row["ts"] == "2024-06-30 19:00:00-05" and row["open"] == str(OPENS[0])
