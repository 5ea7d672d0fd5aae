"""Live-capture test helpers: `hdi replay live` and `hdi live capture` as child processes, the historical
gateway over the same synthetic market, and reading what a capture stored. Every wait has a timeout."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from hdi_gateway.live import LiveGateway, start_live_process

NS = 1_000_000_000
LIVE_KEY = "db-local-key"
HDI = [sys.executable, "-c", "from hdi_app.cli import main; main()"]


def ns_of(text: str) -> int:
    return int(np.datetime64(text, "ns").astype(np.int64))


@contextmanager
def live_gateway(at: str, speed: str, faults: str | None = None, extra: tuple[str, ...] = ()) -> Iterator[LiveGateway]:
    """`hdi replay live` as a child process on a free port (the synthetic market at its default volume)."""
    args = ["--at", at, "--speed", speed, *extra]
    if faults:
        args += ["--faults", faults]
    gateway = start_live_process(args)
    try:
        yield gateway
    finally:
        gateway.stop()


def capture_env(base: dict[str, str | None], gateway: LiveGateway) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()}
    for name, value in base.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    env["DATABENTO_API_KEY"] = LIVE_KEY
    env["HDI_DATABENTO_LIVE"] = f"127.0.0.1:{gateway.port}"
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    return env


def start_capture(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*HDI, "live", "capture", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen[str], timeout: float) -> tuple[int, str]:
    """Wait for a capture to end by itself (its --end); on timeout stop it (SIGTERM to that child) and fail."""
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        if proc.pid > 0 and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        raise AssertionError(f"capture did not finish within {timeout} s: {err[-2000:]}") from None
    return proc.returncode, err


def hdi(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HDI, *args], env=env, capture_output=True, text=True, timeout=timeout)


def wait_for(condition, timeout: float, what: str, every: float = 0.2):  # noqa: ANN001, ANN201
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"{what} not seen within {timeout} s")
