"""The read-only HTTP API over real stored data (sample DBN files ingested; native PostgreSQL and TimescaleDB)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import databento as db
import numpy as np
import pytest
from repo_paths import DBN_SAMPLES

from hdi_app.api import start_api_thread
from hdi_assets.vendor_schema_jobs.ingest import ingest_dbn_file
from hdi_resources.db import Database

SAMPLES = DBN_SAMPLES
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
    assert status == 404 and "stored: 2020-12-28" in body["error"]
    status, body = _get(f"{api}/api/market-data/5482/trades/bars?limit=1")
    assert status == 200 and body["count"] == 1 and body["truncated"] and body["next_offset"] == 1
    pages = [_get(f"{api}/api/market-data/5482/trades/bars?limit=1&offset={i}")[1]["rows"][0] for i in range(3)]
    status, whole = _get(f"{api}/api/market-data/5482/trades/bars?limit=3")
    assert pages == whole["rows"]  # pages join up exactly


@pytest.mark.parametrize(
    ("path", "status", "words"),
    [
        ("/api/market-data/ZZZ9/trades/stats", 404, "unknown symbol 'ZZZ9'; stored trades symbols: ES"),
        ("/api/market-data/ESH1/mbo/stats", 404, "unknown schema"),
        ("/api/market-data/%C2%B2/trades/stats", 404, "unknown symbol '²'"),
        ("/api/market-data/%D9%A1%D9%A2/ohlcv-1m/bars", 404, "unknown symbol"),
        ("/api/market-data/ESH1%3B%20DROP%20TABLE%20trades_data/trades/stats", 404, "unknown symbol"),
        ("/api/market-data/ESH1/ohlcv-1m/bars?start=yesterday", 400, "start"),
        ("/api/market-data/ESH1/ohlcv-1m/bars?end=2020-13-45", 400, "end"),
        ("/api/market-data/ESH1/ohlcv-1m/bars?start=2021-01-02&end=2021-01-01", 400, "is not after start"),
        ("/api/market-data/ESH1/ohlcv-1m/bars?limit=-3", 400, "limit"),
        ("/api/market-data/ESH1/ohlcv-1m/bars?limit=%C2%B2", 400, "limit"),
        ("/api/market-data/ESH1/ohlcv-1m/bars?limit=99999999999999999999", 400, "limit"),
        ("/api/market-data/ESH1/ohlcv-1m/bars?limit=1&limit=2", 400, "once"),
        ("/api/market-data/ESH1/ohlcv-1m/bars?colour=red", 400, "unknown parameter 'colour'"),
        ("/api/market-data/ESH1/ohlcv-1m/bars?tz=mars", 400, "time zone"),
        ("/api/market-data/ESH1/ohlcv-1m/bars?prices=strings", 400, "prices"),
        ("/api/market-data/ESH1/ohlcv-1m/bars?start=2030-01-01", 404, "stored: 2020-12-28"),
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


def test_root_raw_symbol_and_id_give_the_same_rows(api: str) -> None:
    answers = [_get(f"{api}/api/market-data/{symbol}/trades/bars?limit=50") for symbol in ("ESH1", "5482")]
    assert all(status == 200 for status, _ in answers)
    assert answers[0][1]["rows"] == answers[1][1]["rows"] and answers[0][1]["count"] == len(_records("trades"))
    status, root = _get(f"{api}/api/market-data/ES/trades/stats")
    assert status == 200 and root["row_count"] >= len(_records("trades"))
    status, body = _get(f"{api}/api/market-data/ESH1/trades/bars?limit=1&prices=fixed")
    assert status == 200 and body["rows"][0]["price"] == int(_records("trades")["price"][0])


def _raw(url: str, payload: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes, read the whole answer (the server closes): status, headers, body."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(payload)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


@pytest.mark.parametrize(("request_bytes", "status"), [
    (b"HEAD /api/market-data/ESH1/trades/stats HTTP/1.0\r\n\r\n", 200),
    (b"OPTIONS /api/market-data/ESH1/trades/stats HTTP/1.0\r\n\r\n", 200),
    (b"TRACE / HTTP/1.0\r\n\r\n", 405),
    (b"BREW /pot HTTP/1.0\r\n\r\n", 405),
    (b"DELETE /api/health HTTP/1.0\r\n\r\n", 405),
    (b"GET /" + b"a" * 70_000 + b" HTTP/1.0\r\n\r\n", 414),
    (b"this is not http\r\n\r\n", 400),
    (b"GET / HTTP/9.9\r\n\r\n", 505),
    (b"GET /api/market-data/ESH1/ohlcv-1m/bars?limit=%C2%B2 HTTP/1.0\r\n\r\n", 400),
    (b"GET /api/market-data/%ff%fe/trades/stats HTTP/1.0\r\n\r\n", 404),
    (b"GET http://[x/api/health HTTP/1.0\r\n\r\n", 400),
    (b"GET /api/health?" + b"&".join(b"a=1" for _ in range(60)) + b" HTTP/1.0\r\n\r\n", 400),
])
def test_every_method_and_malformed_request_gets_json(api: str, request_bytes: bytes, status: int) -> None:
    got, headers, body = _raw(api, request_bytes)
    assert got == status and headers["content-type"] == "application/json"
    if request_bytes.startswith(b"HEAD"):
        assert body == b"" and int(headers["content-length"]) > 0
    else:
        payload = json.loads(body)
        assert payload.get("status", 200) == status and "Error" not in payload.get("error", "")
    if status == 405:
        assert headers["allow"] == "GET, HEAD, OPTIONS"
