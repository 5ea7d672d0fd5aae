"""query / stats / the CLI commands round-trip exactly what was loaded (real embedded PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import tempfile
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

from hdi_app.cli.db import db_app, query_command, stats_command
from hdi_core.errors import HdiError
from hdi_resources.db.readerrors import BadRequest, NotFound
from hdi_resources.db import Database
from hdi_resources.db.server import read_postmaster, stop_embedded_server
from hdi_resources.settings import hdi_home

START_NS = 1_719_792_000 * 1_000_000_000  # 2024-07-01 00:00 UTC
# Prices chosen to catch rounding: a 1e-9 step, negative back-adjusted values, a 9-digit integer part.
OPENS = [4_500_250_000_000, 1, -12_500_000_000, 123_456_789_123_456_789, 999_999_999]


def minute_bars() -> pa.Table:
    n = len(OPENS)
    opens = np.array(OPENS, dtype=np.int64)
    ts = START_NS + np.arange(n, dtype=np.int64) * 60_000_000_000
    return pa.table({
        "root_symbol": ["ES"] * n,
        "ts": pa.array(ts, pa.timestamp("ns", tz="UTC")),
        "trade_date": pa.array([dt.date(2024, 7, 1)] * n, pa.date32()),
        "open": opens, "high": opens + 250_000_000, "low": opens - 1, "close": opens + 3,
        "volume": np.arange(n, dtype=np.int64), "trade_count": np.ones(n, dtype=np.int64),
        "vwap": [4500.123456789, 0.1, -12.5, 1e8, 0.000000001],
        "adjustment_method": ["panama"] * n,
    })


def nanos_to_decimal(value: int) -> Decimal:
    return Decimal(value).scaleb(-9)


@pytest.fixture(scope="module")
def home() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="test-query-", dir=hdi_home()))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def db(home: Path) -> Iterator[Database]:
    database = Database(url="", home=home)
    try:
        database.replace_partition("continuous_bars", {"continuous_symbol": "ES.v.0", "granularity": "1m",
                                                       "window": "2024-07-01"}, minute_bars())
        yield database
    finally:
        database.close()
        stop_embedded_server(home)


@pytest.fixture
def cli(home: Path, monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    """The commands as the lead wires them, pointed at this module's server (reused, so left running)."""
    monkeypatch.setenv("HDI_HOME", str(home))
    monkeypatch.delenv("HDI_DATABASE_URL", raising=False)
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
    assert "mode:            native" in out.stdout and "hdi_app:***@127.0.0.1" in out.stdout
    assert db.embedded.credentials.app_password not in out.stdout
    assert runner.invoke(cli, ["db", "migrate"]).stdout.strip() == "database is up to date"
    assert read_postmaster(db.embedded.data_dir) is not None  # the CLI did not stop a server it found running


def test_dagster_resource_reads_through_the_same_layer(db: Database, home: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from hdi_resources.db.resource import DatabaseResource

    monkeypatch.setenv("HDI_HOME", str(home))
    monkeypatch.delenv("HDI_DATABASE_URL", raising=False)
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
    assert url.startswith("postgresql+psycopg2://hdi_owner:") and "@127.0.0.1:" in url
    for storage_class in (PostgresRunStorage, PostgresEventLogStorage):
        storage = storage_class(url)
        storage.dispose()
