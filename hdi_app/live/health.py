"""The capture's health: counters the service updates, a status file `hdi live status` reads, a pid file, and
Prometheus text on the capture's own 127.0.0.1 port (GET /metrics).

Metrics live on the capture's port, not the API's: they are the capture process's own counters, visible even
when the database (which the API reads) is down. The status file (HDI_HOME/live/capture.json, replaced whole
every second) carries the same figures and the metrics URL.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from hdi_core.errors import HdiError
from hdi_resources.settings import hdi_home

STATUS_FILE = "capture.json"
PID_FILE = "capture.pid"
RATE_WINDOW_S = 10.0  # the message rate is averaged over this many seconds
STATUS_EVERY_S = 1.0
DEFAULT_STALL_AFTER_S = 15.0  # no record and no heartbeat for this long: STALLED


class State:
    CONNECTING = "CONNECTING"
    STREAMING = "STREAMING"
    STALLED = "STALLED"
    RECONNECTING = "RECONNECTING"
    STOPPED = "STOPPED"
    FAILED = "FAILED"


def live_dir() -> Path:
    path = hdi_home() / "live"
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class Health:
    """What the service reports; all times wall-clock seconds since the epoch unless named _ns (market time)."""

    pid: int = field(default_factory=os.getpid)
    state: str = State.CONNECTING
    gateway: str = ""
    products: list[str] = field(default_factory=list)
    schemas: list[str] = field(default_factory=list)
    started_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    last_data_at: float | None = None  # a record or heartbeat arrived
    last_ts_recv_ns: int | None = None  # the market time of the newest record
    lag_s: float | None = None  # wall now - the gateway's send time (ts_out) of the newest record
    messages: int = 0
    messages_by_schema: dict[str, int] = field(default_factory=dict)
    message_rate: float = 0.0
    heartbeats: int = 0
    reconnects: int = 0
    resubscribes: int = 0
    duplicates_dropped: int = 0
    bars_published: int = 0
    lake_files: int = 0
    late_trades: int = 0
    errors: list[str] = field(default_factory=list)
    stall_after_s: float = DEFAULT_STALL_AFTER_S
    metrics_url: str | None = None
    _rate: deque[tuple[float, int]] = field(default_factory=deque, repr=False)

    def count(self, schema: str, n: int) -> None:
        self.messages += n
        self.messages_by_schema[schema] = self.messages_by_schema.get(schema, 0) + n

    def tick(self, now: float) -> None:
        self.updated_at = now
        self._rate.append((now, self.messages))
        while self._rate and now - self._rate[0][0] > RATE_WINDOW_S:
            self._rate.popleft()
        first_t, first_n = self._rate[0]
        self.message_rate = (self.messages - first_n) / (now - first_t) if now > first_t else 0.0

    def snapshot(self) -> dict[str, Any]:
        doc = {k: v for k, v in asdict(self).items() if not k.startswith("_")}
        doc["errors"] = self.errors[-5:]
        return doc


def write_status(health: Health, path: Path | None = None) -> None:
    path = path or live_dir() / STATUS_FILE
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(health.snapshot(), indent=1))
    os.replace(tmp, path)


def read_status(path: Path | None = None) -> dict[str, Any] | None:
    path = path or live_dir() / STATUS_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise HdiError(f"{path}: unreadable capture status ({exc})") from None


def pid_alive(pid: int) -> bool:
    import psutil

    return pid > 0 and psutil.pid_exists(pid)


def claim_pid_file(path: Path | None = None) -> Path:
    """Write this process's pid; refuse when another capture on this HDI_HOME is still running."""
    path = path or live_dir() / PID_FILE
    try:
        other = int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        other = 0
    if other and other != os.getpid() and pid_alive(other):
        raise HdiError(f"a live capture is already running here (pid {other}, {path}); stop it first")
    path.write_text(f"{os.getpid()}\n")
    return path


def release_pid_file(path: Path) -> None:
    try:
        if int(path.read_text().strip()) == os.getpid():
            path.unlink()
    except (FileNotFoundError, ValueError):
        pass


def judge(status: dict[str, Any], now: float | None = None) -> tuple[str, int]:
    """(state, exit code) as `hdi live status` reports it: 0 streaming, 2 stalled, 1 not running."""
    now = time.time() if now is None else now
    stall = float(status.get("stall_after_s") or DEFAULT_STALL_AFTER_S)
    if status.get("state") in (State.STOPPED, State.FAILED) or not pid_alive(int(status.get("pid") or 0)):
        return (status.get("state") if status.get("state") in (State.STOPPED, State.FAILED) else "NOT RUNNING"), 1
    last = status.get("last_data_at") or status.get("started_at") or 0
    if status.get("state") == State.STALLED or now - float(last) > stall:
        return State.STALLED, 2
    if now - float(status.get("updated_at") or 0) > max(stall, 5 * STATUS_EVERY_S):
        return State.STALLED, 2  # the service itself stopped reporting
    return str(status.get("state")), 0


def prometheus_text(health: Health) -> str:
    now = time.time()
    lag = "NaN" if health.lag_s is None else f"{health.lag_s:.6f}"
    since = now - health.last_data_at if health.last_data_at else now - health.started_at
    lines = [
        "# HELP hdi_live_messages_total Market-data records captured.",
        "# TYPE hdi_live_messages_total counter",
        *(f'hdi_live_messages_total{{schema="{s}"}} {n}' for s, n in sorted(health.messages_by_schema.items())),
        "# HELP hdi_live_message_rate Records per second over the last 10 s.",
        "# TYPE hdi_live_message_rate gauge", f"hdi_live_message_rate {health.message_rate:.3f}",
        "# HELP hdi_live_lag_seconds Wall time minus the gateway's send time (ts_out) of the newest record.",
        "# TYPE hdi_live_lag_seconds gauge", f"hdi_live_lag_seconds {lag}",
        "# HELP hdi_live_seconds_since_data Seconds since the last record or heartbeat.",
        "# TYPE hdi_live_seconds_since_data gauge", f"hdi_live_seconds_since_data {since:.3f}",
        "# HELP hdi_live_last_record_timestamp_seconds Market time (ts_recv) of the newest record.",
        "# TYPE hdi_live_last_record_timestamp_seconds gauge",
        f"hdi_live_last_record_timestamp_seconds {(health.last_ts_recv_ns or 0) / 1e9:.9f}",
        "# HELP hdi_live_reconnects_total Reconnections to the gateway.",
        "# TYPE hdi_live_reconnects_total counter", f"hdi_live_reconnects_total {health.reconnects}",
        "# HELP hdi_live_duplicates_dropped_total Replayed records already held, dropped.",
        "# TYPE hdi_live_duplicates_dropped_total counter",
        f"hdi_live_duplicates_dropped_total {health.duplicates_dropped}",
        "# HELP hdi_live_bars_published_total Bar updates upserted and notified.",
        "# TYPE hdi_live_bars_published_total counter", f"hdi_live_bars_published_total {health.bars_published}",
        "# HELP hdi_live_stalled 1 when no record or heartbeat arrived for the stall threshold.",
        "# TYPE hdi_live_stalled gauge", f"hdi_live_stalled {int(health.state == State.STALLED)}",
    ]
    return "\n".join(lines) + "\n"


class MetricsServer:
    """GET /metrics (Prometheus text) and /status (JSON) on 127.0.0.1, in a thread."""

    def __init__(self, health: Health, port: int = 0, host: str = "127.0.0.1") -> None:
        class Handler(BaseHTTPRequestHandler):
            timeout = 10

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self.path.split("?")[0] == "/metrics":
                    body, kind = prometheus_text(health).encode(), "text/plain; version=0.0.4"
                elif self.path.split("?")[0] == "/status":
                    body, kind = json.dumps(health.snapshot()).encode(), "application/json"
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

        try:
            self.server = ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:
            raise HdiError(f"cannot listen for metrics on {host}:{port} ({exc.strerror})") from None
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2},
                                       daemon=True, name="hdi-live-metrics")
        self.thread.start()
        bound = self.server.server_address
        self.url = f"http://{bound[0]}:{bound[1]}/metrics"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
