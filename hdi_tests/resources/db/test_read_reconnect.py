"""The database going away: a read says so in one line (no roles, ports or driver names); the API answers 503
"database unavailable" meanwhile and reconnects when the embedded server is back, on whatever port."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from repo_paths import REPO_ROOT
from sample_bars import minute_bars

from hdi_app.api import start_api_thread
from hdi_resources.db import Database, ensure_embedded_server
from hdi_resources.db import read as reads
from hdi_resources.db.readerrors import DatabaseUnavailable
from hdi_resources.db.server import postgres_root, read_postmaster, stop_embedded_server

REPO = REPO_ROOT


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


def _hdi(home: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HDI_HOME": str(home), "PYTHONPATH": str(REPO)}
    env.pop("HDI_DATABASE_URL", None)
    return subprocess.run([sys.executable, "-c", "from hdi_app.cli import main; main()", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_db_start_keeps_one_server_across_commands(tmp_path: Path) -> None:
    home = tmp_path / "home"
    try:
        started = _hdi(home, "db", "start")
        assert started.returncode == 0 and "running (pid" in started.stdout, started.stderr
        pid = read_postmaster(postgres_root(home) / "data")[0]
        read = _hdi(home, "query", "--symbol", "ES", "--schema", "ohlcv-1m")
        assert read.returncode == 1 and read.stderr == "error: unknown symbol 'ES'; nothing is stored yet\n"
        assert read_postmaster(postgres_root(home) / "data")[0] == pid  # reused, and left running
        stopped = _hdi(home, "db", "stop")
        assert stopped.returncode == 0 and f"pid {pid}" in stopped.stdout
        once = _hdi(home, "stats", "--symbol", "ES", "--schema", "ohlcv-1m")
        assert "starting the embedded PostgreSQL for this command" in once.stderr and once.returncode == 1
        assert read_postmaster(postgres_root(home) / "data") is None  # a server a command started, it stops
    finally:
        stop_embedded_server(home)


def test_ctrl_c_on_api_serve_stops_the_embedded_server_it_started(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {**os.environ, "HDI_HOME": str(home), "PYTHONPATH": str(REPO)}
    env.pop("HDI_DATABASE_URL", None)
    proc = subprocess.Popen([sys.executable, "-c", "from hdi_app.cli import main; main()", "api", "serve",
                             "--port", "0"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()  # "serving http://127.0.0.1:PORT/..." once it listens
        assert line.startswith("serving http://127.0.0.1:"), (line, proc.stderr.read() if proc.poll() else "")
        base = line.split()[1].split("/api/")[0]
        assert _get(f"{base}/api/health") == (200, {"status": "ok"})
        assert read_postmaster(postgres_root(home) / "data") is not None
        assert proc.pid > 0
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        assert proc.wait(timeout=60) in (0, 130)
        assert "started the embedded PostgreSQL" in proc.stderr.read()
        assert read_postmaster(postgres_root(home) / "data") is None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        stop_embedded_server(home)
