"""`hdi replay live` as a child process on a free port, with a pid file: for tests and the capture service."""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

from hdi_core.errors import HdiError
from hdi_gateway.live.protocol import ENV_LIVE_GATEWAY
from hdi_gateway.live.server import LiveGateway
from hdi_gateway.synthetic import SyntheticMarket

STOP_WAIT_S = 5.0
DEFAULT_PRODUCT = "ES"  # the product whose trade date opens the default replay day
RECENT_DAYS = 10


def default_at_ns(market: SyntheticMarket, today: dt.date | None = None) -> int:
    """The open of a recent synthetic trading day: the latest ES trade date that opened before today
    (or before the synthetic data ends, whichever is first)."""
    from hdi_gateway.synthetic import DATA_END

    day = min(today or dt.datetime.now(dt.UTC).date(), DATA_END)
    end_ns = int(dt.datetime.combine(day, dt.time(0), tzinfo=dt.UTC).timestamp()) * 1_000_000_000
    dates = market.trade_dates(DEFAULT_PRODUCT, end_ns - RECENT_DAYS * 86_400 * 1_000_000_000, end_ns)
    if not dates:
        raise HdiError(f"no {DEFAULT_PRODUCT} trade date in the {RECENT_DAYS} days before {day}")
    for trade_date in reversed(dates):
        opens = int(market.session_plan(DEFAULT_PRODUCT, trade_date).open_ns)
        if opens < end_ns:
            return opens
    raise HdiError(f"no {DEFAULT_PRODUCT} session opened in the {RECENT_DAYS} days before {day}")


def start_live_process(
    args: Iterable[str] = (),
    env: dict[str, str] | None = None,
    pid_file: Path | None = None,
    timeout_s: float = 120.0,
) -> LiveGateway:
    """Run `hdi replay live --port 0 ARGS` as a child; returns once it printed `export HDI_DATABENTO_LIVE=...`.

    `stop()` sends SIGTERM to that child only (then SIGKILL after 5 s); the pid file is written by the child
    and removed when it exits."""
    command = [sys.executable, "-c", "from hdi_app.cli import main; main()", "replay", "live", "--port", "0",
               *args]
    if pid_file is not None:
        command += ["--pid-file", str(pid_file)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})

    def stop() -> None:
        if proc.pid > 0 and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=STOP_WAIT_S)
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()

    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    while True:
        if time.monotonic() > deadline:
            stop()
            raise HdiError(f"live gateway process did not start within {timeout_s:.0f} s")
        line = proc.stdout.readline()
        if not line:
            err = proc.stderr.read() if proc.stderr else ""
            stop()
            last = err.strip().splitlines()[-1] if err.strip() else "no output"
            raise HdiError(f"live gateway process exited: {last}")
        match = re.match(rf"export {ENV_LIVE_GATEWAY}=(\S+):(\d+)", line.strip())
        if match:
            return LiveGateway(match[1], int(match[2]), state=None, _stop=stop, pid=proc.pid)  # type: ignore[arg-type]
