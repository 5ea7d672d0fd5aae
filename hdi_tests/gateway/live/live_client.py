"""Test helpers: the unmodified databento.Live client collecting records through a callback, every wait
bounded by a timeout."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import databento as db
import databento_dbn as dbn

DATASET = "GLBX.MDP3"
KEY = "db-local-key"
WAIT_S = 60.0


@dataclass
class Collector:
    """Records as the client delivered them, with the wall time each arrived."""

    records: list = field(default_factory=list)
    arrived: list[float] = field(default_factory=list)
    _changed: threading.Condition = field(default_factory=threading.Condition)

    def __call__(self, record) -> None:
        with self._changed:
            self.records.append(record)
            self.arrived.append(time.monotonic())
            self._changed.notify_all()

    def wait_until(self, condition: Callable[[list], bool], timeout: float = WAIT_S) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not condition(self.records):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"condition not met within {timeout} s ({len(self.records)} records)")
                self._changed.wait(min(left, 0.2))

    def of(self, kind: type) -> list:
        return [r for r in self.records if isinstance(r, kind)]

    def data(self) -> list:
        """Market data records (no mapping, system or error messages)."""
        skip = (dbn.SymbolMappingMsg, dbn.SystemMsg, dbn.ErrorMsg)
        return [r for r in self.records if not isinstance(r, skip)]


def connect(port: int, key: str = KEY, heartbeat_interval_s: int | None = None) -> db.Live:
    return db.Live(key, gateway="127.0.0.1", port=port, heartbeat_interval_s=heartbeat_interval_s)


def stream(
    port: int, schema: str, symbols: list[str] | str, stype_in: str = "raw_symbol", start: int | None = None,
    heartbeat_interval_s: int | None = None,
) -> tuple[db.Live, Collector]:
    """Subscribe, start, and collect in the background; the caller terminates the client."""
    client = connect(port, heartbeat_interval_s=heartbeat_interval_s)
    collector = Collector()
    client.add_callback(collector)
    client.subscribe(DATASET, schema, symbols, stype_in=stype_in, start=start)
    client.start()
    return client, collector


def send_ns(record) -> int:
    """The time a live record is sent at: ts_recv, or for a bar the end of its interval."""
    if hasattr(record, "ts_recv"):
        return int(record.ts_recv)
    interval = {0x20: 1, 0x21: 60, 0x22: 3600, 0x23: 86_400}[int(record.rtype)] * 1_000_000_000
    return int(record.ts_event) + interval
