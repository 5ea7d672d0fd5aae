"""`hdi replay live` as a user runs it: a child process on a free port with a pid file, served to the
unmodified databento.Live client; a bad option is a one-line error."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import databento as db
import databento_dbn as dbn

from hdi_gateway.live import DEFAULT_LIVE_KEY, start_live_process

WAIT_S = 60


def test_replay_live_process_serves_the_live_client_and_cleans_its_pid_file(tmp_path: Path) -> None:
    pid_file = tmp_path / "live.pid"
    gateway = start_live_process(["--at", "2024-03-05T19:00", "--speed", "max", "--ticks-per-session", "2000"],
                                 pid_file=pid_file)
    try:
        assert gateway.host == "127.0.0.1" and gateway.port > 0
        assert int(pid_file.read_text()) == gateway.pid
        client = db.Live(DEFAULT_LIVE_KEY, gateway=gateway.host, port=gateway.port)
        trades: list = []
        twenty = threading.Event()

        def keep(record) -> None:
            if isinstance(record, dbn.TradeMsg):
                trades.append(record)
                if len(trades) >= 20:
                    twenty.set()

        client.add_callback(keep)
        client.subscribe("GLBX.MDP3", "trades", "ES.c.0", stype_in="continuous")
        client.start()
        try:
            assert twenty.wait(WAIT_S), "no trades from the live gateway process"
        finally:
            client.terminate()
        assert client.symbology_map and {t.instrument_id for t in trades} <= set(client.symbology_map)
    finally:
        gateway.stop()
    assert not pid_file.exists()


def test_bad_at_is_one_line_error() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "from hdi_app.cli import main; main()", "replay", "live", "--at", "yesterday"],
        capture_output=True, text=True, timeout=WAIT_S, env={**os.environ})
    assert done.returncode != 0
    assert "--at 'yesterday'" in done.stderr and "Traceback" not in done.stderr
