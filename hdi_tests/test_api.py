"""The read-only HTTP API over real stored data (sample DBN files ingested; native PostgreSQL and TimescaleDB)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import databento as db
import numpy as np
import pytest

from hdi_app.api import start_api_thread
from hdi_assets.vendor_schema_jobs.ingest import ingest_dbn_file
from hdi_resources.db import Database

SAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "dbn_samples"
GLBX = SAMPLES / "databento-python" / "GLBX.MDP3"


@pytest.fixture(scope="module")
def api(storage_db: Database) -> Iterator[str]:
    for name in ("definition", "trades", "ohlcv-1m"):
        assert ingest_dbn_file(storage_db, GLBX / f"test_data.{name}.dbn.zst").status == "success"
    server = start_api_thread(storage_db)
    try:
        yield server.url
    finally:
        server.stop()


def _get(url: str, method: str = "GET") -> tuple[int, dict]:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.headers["Content-Type"] == "application/json"
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        assert exc.headers["Content-Type"] == "application/json"
        return exc.code, json.loads(exc.read())


def _records(name: str) -> np.ndarray:
    return np.asarray(db.DBNStore.from_file(GLBX / f"test_data.{name}.dbn.zst").to_ndarray()).reshape(-1)


def test_stats_in_seed_shape(api: str) -> None:
    status, body = _get(f"{api}/api/market-data/ESH1/trades/stats")
    trades = _records("trades")
    assert status == 200
    assert set(body) == {"row_count", "min_ts", "max_ts", "latest_close", "latest_ts", "symbol", "timeframe",
                         "vendor"}
    assert body["row_count"] == len(trades) and body["symbol"] == "ESH1" and body["vendor"] == "databento"
    assert body["timeframe"] == "trades"
    assert body["latest_close"] == trades["price"][-1] / 1e9
    assert body["max_ts"].startswith("2020-12-28T")
    status, bars = _get(f"{api}/api/market-data/ESH1/ohlcv-1m/stats")
    assert status == 200 and bars["timeframe"] == "1m" and bars["row_count"] == len(_records("ohlcv-1m"))


def test_empty_table_variant_has_a_message(api: str) -> None:
    status, body = _get(f"{api}/api/market-data/ESH1/tbbo/stats")
    assert status == 200 and body["row_count"] == 0 and body["message"] == "No data ingested yet"
    assert body["latest_close"] is None and body["min_ts"] is None


def test_bars_in_a_range(api: str) -> None:
    bars = _records("ohlcv-1m")
    status, body = _get(f"{api}/api/market-data/ESH1/ohlcv-1m/bars?start=2020-12-28&end=2020-12-29")
    assert status == 200 and body["count"] == len(bars) and not body["truncated"]
    first = body["rows"][0]
    assert first["open_price"] == bars["open"][0] / 1e9 and first["volume"] == int(bars["volume"][0])
    assert first["ts_event"].startswith("2020-12-28T")
    status, body = _get(f"{api}/api/market-data/ESH1/ohlcv-1m/bars?start=2021-01-01T00:00:00Z")
    assert status == 200 and body["count"] == 0
    status, body = _get(f"{api}/api/market-data/5482/trades/bars?limit=1")
    assert status == 200 and body["count"] == 1 and body["truncated"]


@pytest.mark.parametrize(
    ("path", "status", "words"),
    [
        ("/api/market-data/ZZZ9/trades/stats", 404, "unknown symbol"),
        ("/api/market-data/ESH1/mbo/stats", 404, "unknown schema"),
        ("/api/market-data/ESH1%3B%20DROP%20TABLE%20trades_data/trades/stats", 404, "unknown symbol"),
        ("/api/market-data/ESH1/ohlcv-1m/bars?start=yesterday", 422, "start"),
        ("/api/market-data/ESH1/ohlcv-1m/bars?end=2020-13-45", 422, "end"),
        ("/api/market-data/ESH1/ohlcv-1m/bars?start=2021-01-02&end=2021-01-01", 422, "before"),
        ("/api/market-data/ESH1/ohlcv-1m/bars?limit=-3", 422, "limit"),
        ("/api/nothing-here", 404, "no such endpoint"),
    ],
)
def test_bad_requests_get_json_errors(api: str, path: str, status: int, words: str) -> None:
    got, body = _get(f"{api}{path}")
    assert got == status and words in body["error"] and body["status"] == status


def test_the_api_is_read_only(api: str) -> None:
    status, body = _get(f"{api}/api/market-data/ESH1/trades/stats", method="POST")
    assert status == 405 and "read-only" in body["error"]
    status, body = _get(f"{api}/api/market-data/ESH1/trades/stats")
    assert status == 200 and body["row_count"] == len(_records("trades"))
