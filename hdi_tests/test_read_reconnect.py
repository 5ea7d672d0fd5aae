"""The database going away: a read says so in one line (no roles, ports or driver names); the API answers 503
"database unavailable" meanwhile and reconnects when the embedded server is back, on whatever port."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_query import minute_bars

from hdi_app.api import start_api_thread
from hdi_resources.db import Database, ensure_embedded_server
from hdi_resources.db import read as reads
from hdi_resources.db.readerrors import DatabaseUnavailable
from hdi_resources.db.server import postgres_root, stop_embedded_server


@pytest.fixture
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Database, Path]]:
    home = tmp_path_factory.mktemp("hdi_home")
    database = Database(url="", home=home)
    try:
        database.replace_partition("continuous_bars", {"continuous_symbol": "ES.v.0", "granularity": "1m",
                                                       "window": "2024-07-01"}, minute_bars())
        yield database, home
    finally:
        database.close()
        stop_embedded_server(home)


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_read_whose_connection_dies_says_the_database_went_away(loaded: tuple[Database, Path]) -> None:
    db, _home = loaded
    with pytest.raises(DatabaseUnavailable, match="^the database went away during the read") as caught:
        with reads._cursor(db) as cur:
            cur.execute("SELECT pg_terminate_backend(pg_backend_pid())")  # the server ends this session mid-read
    assert "hdi_app" not in str(caught.value) and "psycopg2" not in str(caught.value)
    assert reads.query(db, "ES", "ohlcv-1m").num_rows == 5  # the pool recovers by itself


def test_api_says_unavailable_then_reconnects_on_a_new_port(loaded: tuple[Database, Path]) -> None:
    db, home = loaded
    api = start_api_thread(db)
    try:
        url = f"{api.url}/api/market-data/ES/ohlcv-1m/stats"
        assert _get(url)[0] == 200
        old_port = db.embedded.port
        stop_embedded_server(home)
        status, body = _get(url)
        assert status == 503 and body == {"error": "database unavailable; try again shortly", "status": 503}
        new_port = _free_port()
        (postgres_root(home) / "port").write_text(str(new_port))  # the next start prefers this port
        restarted = ensure_embedded_server(home)
        assert restarted.port != old_port
        status, body = _get(url)
        assert status == 200 and body["row_count"] == 5, body
    finally:
        api.stop()
        api.server.RequestHandlerClass.api.source.current.close()
