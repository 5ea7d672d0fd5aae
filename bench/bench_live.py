"""Live capture latency and throughput: `hdi replay live` (child process) -> `hdi live capture` (child process;
the unmodified databento.Live runs in its relay child process) -> PostgreSQL NOTIFY -> the API's /live/bars push
endpoint (in this process) -> an event-stream reader (in this process).

Each rate gets a fresh gateway, which produces the market time the run will reach before its clock starts
(`--warm-up`: no generation stall then burst mid-run), and a fresh capture; the measurement starts once the
capture has caught up with the stream and then ran SETTLE_S at the rate (the output says so).

At each target rate of MBO messages per second (1k, 10k, 100k: the replay speed is chosen from the synthetic
market's own MBO rate; the capture takes trades and mbo of ES, NQ and GC), for --seconds of wall time:
  - latency: the reader's receive time minus the gateway's send time (Databento's ts_out, which the capture
    asks for) of the trade behind each bar update, p50 / p99 / max in ms (goal: p99 < 100 ms at 10k/s);
  - lag growth: the median latency of the last third minus that of the first third (goal at 100k/s: no
    growth, i.e. about zero);
  - messages/s the capture sustained (records it took, over the measured wall time) against the target.

    python bench/bench_live.py [--rates 1000,10000,100000] [--seconds 15]

Under a scratch HDI_HOME (`make bench` gives one) it starts the embedded PostgreSQL and stops it after.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hdi_app.api.server import start_api_thread  # noqa: E402
from hdi_gateway.live import start_live_process  # noqa: E402
from hdi_gateway.synthetic import SyntheticMarket  # noqa: E402
from hdi_resources.db import Database  # noqa: E402

NS = 1_000_000_000
AT = "2024-03-05T15:00"  # 09:00 CT on a Tuesday: regular trading hours
PRODUCTS = "ES,NQ,GC"
FRONT = {"ES": 10291, "NQ": 20291, "GC": 30292}  # the synthetic front contracts that day (instrument ids)
WARMUP_LIMIT_S = 120.0  # the gateway generating its first sessions, the capture catching up with the stream
CAUGHT_UP_LAG_S = 0.25
SETTLE_S = 3.0  # after catching up, this long at the target rate before the measurement starts
START_ALLOWANCE_S = 30.0  # wall seconds the capture may take to start and catch up (for the gateway's warm-up)
HDI = [sys.executable, "-c", "from hdi_app.cli import main; main()"]


def market_mbo_rate(seconds: int = 3600) -> float:
    """MBO messages per market second of the front contracts at AT (what sets the replay speed)."""
    at = int(np.datetime64(AT, "ns").astype(np.int64))
    records = SyntheticMarket(seed=7).records("GLBX.MDP3", "mbo", np.array(list(FRONT.values())), at,
                                              at + seconds * NS)
    return len(records) / seconds


def caught_up(status: Path) -> None:
    """Wait until the capture has caught up with the stream (lag under CAUGHT_UP_LAG_S twice in a row)."""
    deadline, good = time.monotonic() + WARMUP_LIMIT_S, 0
    while time.monotonic() < deadline and good < 2:
        time.sleep(0.5)
        try:
            lag = json.loads(status.read_text()).get("lag_s")
        except (FileNotFoundError, ValueError):
            continue
        good = good + 1 if lag is not None and lag < CAUGHT_UP_LAG_S else 0
    if good < 2:
        print(f"  (the capture had not caught up after {WARMUP_LIMIT_S:.0f} s; measuring anyway)")


class Reader(threading.Thread):
    """Reads /live/bars for one symbol: (receive wall ns, gateway send ns) per update."""

    def __init__(self, port: int, symbol: str, seconds: float) -> None:
        super().__init__(daemon=True)
        self.port, self.symbol, self.seconds = port, symbol, seconds
        self.samples: list[tuple[int, int, int]] = []

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.seconds + 30)
        conn.request("GET", f"/live/bars?symbol={self.symbol}&timeout={self.seconds}")
        answer = conn.getresponse()
        while line := answer.fp.readline():
            if line.startswith(b"data: "):
                now = time.time_ns()
                doc = json.loads(line[6:])
                if doc["sent_ns"]:
                    self.samples.append((now, doc["sent_ns"], doc["published_ns"]))
        conn.close()


def run_rate(rate: int, market_rate: float, seconds: float, db: Database, api_port: int, env: dict) -> None:
    speed = rate / market_rate
    # the gateway produces the market time the run will reach (and its own look-ahead) before its clock starts
    hours = ((START_ALLOWANCE_S + SETTLE_S + seconds) * speed + max(900.0, 20.0 * speed)) / 3600
    gateway = start_live_process(["--at", AT, "--speed", f"{speed:.3f}", "--warm-up", "mbo,trades",
                                  "--warm-up-products", PRODUCTS, "--warm-up-hours", f"{hours:.2f}"],
                                 env={**env, "HDI_REPLAY_SESSION_CACHE_MB": "2048"})
    capture = None
    readers: list[Reader] = []
    try:
        env = {**env, "HDI_DATABENTO_LIVE": f"127.0.0.1:{gateway.port}", "DATABENTO_API_KEY": "db-local-key"}
        status = Path(env["HDI_HOME"]) / "live" / "capture.json"
        status.unlink(missing_ok=True)  # the previous step's status must not pass for this capture's
        capture = subprocess.Popen([*HDI, "live", "capture", "--products", PRODUCTS, "--schemas", "trades,mbo",
                                    "--stall-after", "30"], env=env, stderr=subprocess.PIPE, text=True)
        caught_up(status)
        time.sleep(SETTLE_S)
        before = json.loads(status.read_text())["messages_by_schema"].get("mbo", 0) if status.exists() else 0
        readers = [Reader(api_port, f"{p}.v.0", seconds) for p in PRODUCTS.split(",")]
        started = time.monotonic()
        for reader in readers:
            reader.start()
        for reader in readers:
            reader.join(seconds + 60)
        elapsed = time.monotonic() - started
        after = json.loads(status.read_text())["messages_by_schema"].get("mbo", 0)
    finally:
        if capture is not None and capture.pid > 0 and capture.poll() is None:
            capture.send_signal(signal.SIGTERM)
            try:
                _, err = capture.communicate(timeout=60)
                if not any(r.samples for r in readers):
                    print(err[-3000:])
            except subprocess.TimeoutExpired:
                capture.kill()
                capture.communicate(timeout=10)
        gateway.stop()
    samples = sorted(s for r in readers for s in r.samples)
    if not samples:
        print(f"  {rate:>7,}/s  no bar updates received (speed {speed:.0f}x)")
        return
    lat = np.array([(now - sent) / 1e6 for now, sent, _ in samples])
    capture_part = np.array([(published - sent) / 1e6 for _, sent, published in samples])
    third = max(1, len(lat) // 3)
    growth = statistics.median(lat[-third:]) - statistics.median(lat[:third])
    sustained = (after - before) / elapsed
    p50, p99 = np.percentile(lat, 50), np.percentile(lat, 99)
    print(f"  {rate:>7,}/s target (speed {speed:6.0f}x): mbo {sustained:9,.0f}/s sustained, "
          f"{len(lat):6,} bar updates; latency p50 {p50:7.1f} ms  p99 {p99:7.1f} ms"
          f"  max {lat.max():7.1f} ms; lag growth first->last third {growth:+.1f} ms; load average "
          f"{os.getloadavg()[0]:.1f}", flush=True)
    print(f"             of which gateway send -> capture's publish: p50 {np.percentile(capture_part, 50):7.1f} ms  "
          f"p99 {np.percentile(capture_part, 99):7.1f} ms (the rest: NOTIFY -> API -> reader)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="1000,10000,100000")
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args()
    market_rate = market_mbo_rate()
    print(f"live capture -> push endpoint, products {PRODUCTS}, schemas trades+mbo; synthetic MBO "
          f"{market_rate:.0f} msgs per market second in the hour from {AT}; each rate: a fresh gateway (its data "
          f"produced before its clock starts) and capture, "
          f"warmed up until the capture has caught up (lag < {CAUGHT_UP_LAG_S} s) plus {SETTLE_S:.0f} s at the "
          f"rate, then measured for {args.seconds:.0f} s; load average {os.getloadavg()[0]:.1f}", flush=True)
    db = Database()
    db.ensure_migrated()
    api = start_api_thread(db)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.setdefault("HDI_HOME", str(Path(os.environ.get("HDI_HOME", ".hdi")).resolve()))
    try:
        for rate in (int(r) for r in args.rates.split(",")):
            run_rate(rate, market_rate, args.seconds, db, api.server.server_address[1], env)
    finally:
        api.stop()
        db.close(stop_if_started=True)


if __name__ == "__main__":
    main()
