"""A few thousand malformed requests (seeded, loopback, bounded) at the API: every answer is a status line and
well-formed JSON, and the server still answers afterwards."""

from __future__ import annotations

import json
import random
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from sample_bars import minute_bars

from hdi_app.api import start_api_thread
from hdi_resources.db import Database
from hdi_resources.db.server import stop_embedded_server

REQUESTS = 2500
SEED = 13
SYMBOLS = ["ES", "ES.v.0", "es.v.0", "ESU4", "777", "ZZZ9", "", "..", "%2e%2e", "%00", "%ff%fe", "%C2%B2", "E S",
           "%D9%A1%D9%A2", "\u00b2", "12345678901234567890",
           "ES%2Fv", "a" * 300, "%", "%zz", "\u00e9", "ES'--", "99999999999999999999999"]
SCHEMAS = ["ohlcv-1m", "ohlcv-1d", "trades", "TRADES", "mbo", "", "%00", "ohlcv-1s", "definition", "rolls"]
VIEWS = ["stats", "bars", "rows", "rolls", "", "x", "stats/extra"]
KEYS = ["start", "end", "limit", "tz", "prices", "raw", "adjustment", "", "%", "limit%00", "x" * 100]
VALUES = ["2024-07-01", "2024-07-02T00:00:00Z", "2024-13-45", "yesterday", "", "-3", "0", "1", "%C2%B2", "１",
          "99999999999999999999", "1e3", "exchange", "mars", "fixed", "float", "true", "%ff", "%", "+1", " 1",
          "2024-07-01T00:00:00+99:00", "9999-12-31", "0001-01-01"]
PLAUSIBLE = {"start": ["2024-07-01", "2024-07-01T00:02:00Z", "2024-06-30T19:00"], "end": ["2024-07-02", "2030-01-01"],
             "limit": ["1", "2", "100000"], "tz": ["utc", "exchange"], "prices": ["decimal", "float", "fixed"]}
METHODS = ["GET"] * 12 + ["HEAD", "POST", "PUT", "DELETE", "OPTIONS", "TRACE", "PATCH", "CONNECT", "get", "BREW",
                          "G\u00e9T", "GET GET", ""]
VERSIONS = ["HTTP/1.0"] * 6 + ["HTTP/1.1", "HTTP/2.0", "HTTP/9.9", "HTTX/1.0", "", "HTTP/1.0 extra"]


@pytest.fixture(scope="module")
def api_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home: Path = tmp_path_factory.mktemp("hdi_home")
    database = server = None
    try:
        database = Database(url="", home=home)
        database.replace_partition("continuous_bars", {"continuous_symbol": "ES.v.0", "granularity": "1m",
                                                       "window": "2024-07-01"}, minute_bars())
        server = start_api_thread(database)
        yield server.url
    finally:
        if server is not None:
            server.stop()
        if database is not None:
            database.close()
        stop_embedded_server(home)


def _request(rng: random.Random) -> bytes:
    shape = rng.random()
    if shape < 0.03:  # raw junk bytes ending a line
        return bytes(rng.randrange(1, 256) for _ in range(rng.randrange(1, 200))) + b"\r\n\r\n"
    path = "/api/market-data/" + "/".join(rng.choice(part) for part in (SYMBOLS, SCHEMAS, VIEWS))
    if rng.random() < 0.1:
        path = rng.choice(["/", "/api", "/api/health", "/api/symbols", "//api/health", "/api/market-data/ES/rolls",
                           "*", "http://x/api/health", "http://[x/api/health", "/api/market-data/ES.v.0/rolls/"])
    if rng.random() < 0.4:  # well-formed parameters, so the request reaches symbol resolution and the database
        params = [f"{key}={rng.choice(PLAUSIBLE[key])}" for key in rng.sample(sorted(PLAUSIBLE), rng.randrange(0, 3))]
    else:
        params = [f"{rng.choice(KEYS)}={rng.choice(VALUES)}" for _ in range(rng.randrange(0, 5))]
    if rng.random() < 0.05:
        params = ["a=1"] * 60  # over the field limit
    query = ("?" + "&".join(params)) if params else ""
    if rng.random() < 0.02:
        query += "#frag"
    line = f"{rng.choice(METHODS)} {path}{query} {rng.choice(VERSIONS)}".strip()
    headers = ""
    if rng.random() < 0.1:
        headers = rng.choice(["Host: x\r\n", "X: " + "y" * 70_000 + "\r\n", "no colon here\r\n",
                              "Content-Length: 5\r\n", "Content-Length: -1\r\n", "Expect: 100-continue\r\n"])
    if rng.random() < 0.02:
        headers += "".join(f"H{i}: v\r\n" for i in range(120))  # too many headers
    return (line + "\r\n" + headers + "\r\n").encode("utf-8", "surrogateescape")


def _send(url: str, payload: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        try:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)  # the server sees the end of what we send: no waiting on a timeout
        except OSError:
            pass  # the server answered and closed before reading all of it; its answer is still there
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_thousands_of_malformed_requests_get_well_formed_json(api_url: str) -> None:
    rng = random.Random(SEED)
    statuses: dict[int, int] = {}
    for i in range(REQUESTS):
        payload = _request(rng)
        answer = _send(api_url, payload)
        head, sep, body = answer.partition(b"\r\n\r\n")
        assert sep, f"request {i} {payload[:120]!r}: no complete answer ({answer[:200]!r})"
        lines = head.decode("latin-1").split("\r\n")
        version, status_text = lines[0].split(" ", 2)[:2]
        status = int(status_text)
        assert version.startswith("HTTP/1."), lines[0]
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        assert headers.get("content-type") == "application/json", (payload[:120], lines)
        assert int(headers["content-length"]) == len(body) or (payload.startswith(b"HEAD ") and body == b"")
        if body:
            document = json.loads(body)
            assert isinstance(document, dict)
            if status != 200:
                assert document["status"] == status and isinstance(document["error"], str)
                assert "Traceback" not in document["error"] and "hdi_app" not in document["error"]
        assert status < 500 or status == 505, (payload[:160], status, body[:300])
        statuses[status] = statuses.get(status, 0) + 1
    assert len(statuses) >= 5, statuses  # the mix reached many kinds of answer
    assert json.loads(_send(api_url, b"GET /api/health HTTP/1.0\r\n\r\n").partition(b"\r\n\r\n")[2]) == \
        {"status": "ok"}
