"""The live feed: the unmodified `databento.Live` client, reconnected with exponential backoff, its records
handed over as raw bytes in batches (never one Python object per record on HDI's side).

The client writes every record's bytes to a stream (`Live.add_stream`); `ByteSink` is that stream, a buffer the
capture drains in batches and splits columnar (hdi_core.live.records). The client's own reconnect policy is not
used: it resubscribes without `start=`, losing the gap. `LiveFeed.open(start_ns)` makes a new client and
subscribes with `start=` the last `ts_recv` the capture holds (intraday replay), and the capture's GapFilter drops
what the replay repeats. The key comes from DATABENTO_API_KEY and is never logged; the gateway is Databento's own
unless HDI_DATABENTO_LIVE=host:port (e.g. `hdi replay live`) or `gateway=` names another. Every wait has a timeout.
"""

from __future__ import annotations

import io
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import databento as db
from databento.common.error import BentoError
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential_jitter

from hdi_core.errors import ConfigError, GatewayNotConfiguredError, HdiError
from hdi_resources.settings import ENV_API_KEY, redact

log = logging.getLogger("hdi.live")

ENV_LIVE_GATEWAY = "HDI_DATABENTO_LIVE"  # host:port of a live gateway; unset = Databento's own
DATABENTO_LIVE_PORT = 13000
DEFAULT_HEARTBEAT_S = 5  # the gateway sends a heartbeat after this many seconds without records
STOP_WAIT_S = 5.0


class LiveAuthError(HdiError):
    """The gateway refused the key: retrying cannot help."""


class LiveConnectError(HdiError):
    """The gateway could not be reached or refused the subscription (after the backoff gave up)."""


@dataclass(frozen=True)
class LiveSubscription:
    """One subscription line: a schema for some symbols of one symbology."""

    schema: str
    symbols: tuple[str, ...]
    stype_in: str = "continuous"


def parse_gateway(text: str | None) -> tuple[str, int] | None:
    """'host:port' -> (host, port); None or '' = Databento's own gateway."""
    text = (text if text is not None else os.environ.get(ENV_LIVE_GATEWAY, "")).strip()
    if not text:
        return None
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"live gateway {text!r} is not host:port (e.g. 127.0.0.1:13000; {ENV_LIVE_GATEWAY})")
    return host, int(port)


def live_key() -> str:
    key = os.environ.get(ENV_API_KEY, "").strip()
    if not key:
        raise GatewayNotConfiguredError(
            f"{ENV_API_KEY} is not set: export your Databento key, or for the offline live gateway "
            f"(`hdi replay live`) its key (db-local-key by default)")
    return key


class ByteSink(io.RawIOBase):
    """The stream the client writes into: DBN metadata first, then each record's bytes, kept until taken."""

    def __init__(self) -> None:
        super().__init__()
        self._buffer = bytearray()
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self.metadata: bytes | None = None
        self.bytes_in = 0
        self.last_write = time.monotonic()  # any record, heartbeats included: the feed is alive

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        size = len(data)
        with self._lock:
            if self.metadata is None and bytes(data[:3]) == b"DBN":
                self.metadata = bytes(data)
            else:
                self._buffer += data
                self.bytes_in += size
            self.last_write = time.monotonic()
        if not self._ready.is_set():  # one wake-up per batch, not per record: the client calls this per record
            self._ready.set()
        return size

    def take(self, timeout_s: float) -> bytearray:
        """Everything written so far (waiting up to `timeout_s` for something); the buffer starts afresh."""
        if not self._ready.wait(timeout_s):
            return bytearray()
        with self._lock:
            out, self._buffer = self._buffer, bytearray()
            self._ready.clear()
        return out


def _transient(exc: BaseException) -> bool:
    return not isinstance(exc, LiveAuthError) and isinstance(exc, (BentoError, OSError, LiveConnectError))


class LiveFeed:
    """One capture's connection to a live gateway, made afresh on every (re)connect."""

    def __init__(self, dataset: str, subscriptions: Sequence[LiveSubscription], gateway: str | None = None,
                 heartbeat_s: int = DEFAULT_HEARTBEAT_S, ts_out: bool = True) -> None:
        self.dataset = dataset
        self.subscriptions = list(subscriptions)
        self.gateway = parse_gateway(gateway)
        self.heartbeat_s = heartbeat_s
        self.ts_out = ts_out
        self.client: db.Live | None = None
        self.sink = ByteSink()
        self.connects = 0

    @property
    def where(self) -> str:
        return "Databento's live gateway" if self.gateway is None else f"{self.gateway[0]}:{self.gateway[1]}"

    def open(self, start_ns: int | None) -> None:
        """Connect, authenticate, subscribe every schema (replaying from `start_ns` when given) and start."""
        self.close()
        host, port = self.gateway if self.gateway else (None, DATABENTO_LIVE_PORT)
        client = db.Live(key=live_key(), gateway=host, port=port, ts_out=self.ts_out,
                         heartbeat_interval_s=self.heartbeat_s)
        sink = ByteSink()
        client.add_stream(sink)
        try:
            for sub in self.subscriptions:
                client.subscribe(dataset=self.dataset, schema=sub.schema, symbols=list(sub.symbols),
                                 stype_in=sub.stype_in, start=start_ns)
            client.start()
        except (BentoError, ValueError) as exc:
            message = redact(" ".join(str(exc).split()))
            if "auth" in message.lower():
                raise LiveAuthError(f"live gateway {self.where} refused the key: {message}") from None
            raise LiveConnectError(f"live gateway {self.where}: {message}") from None
        self.client, self.sink = client, sink
        self.connects += 1
        log.info("live feed connected to %s (connection %d, start=%s)", self.where, self.connects, start_ns)

    def open_with_backoff(self, start: Callable[[], int | None], give_up_s: float, initial_s: float = 0.2,
                          max_wait_s: float = 30.0, stopping: Callable[[], bool] = lambda: False) -> None:
        """`open(start())`, retried with exponential backoff and jitter on transient failures for up to
        `give_up_s`; a refused key is not retried; `stopping()` ends the waits early."""
        stop = stop_after_delay(give_up_s)
        retrying = Retrying(
            wait=wait_exponential_jitter(multiplier=initial_s, max=max_wait_s, jitter=initial_s),
            stop=lambda state: stopping() or stop(state),
            retry=retry_if_exception(_transient), reraise=True,
            before_sleep=lambda state: log.warning("live feed: %s; retrying in %.1f s",
                                                   state.outcome.exception() if state.outcome else "?",
                                                   state.next_action.sleep if state.next_action else 0),
        )
        for attempt in retrying:
            with attempt:
                self.open(start())

    def read(self, timeout_s: float) -> bytearray:
        return self.sink.take(timeout_s)

    def seconds_since_data(self) -> float:
        return time.monotonic() - self.sink.last_write

    def is_connected(self) -> bool:
        return self.client is not None and self.client.is_connected()

    def close(self) -> None:
        """Drop the connection now (what is in flight is lost: the next open replays it)."""
        client, self.client = self.client, None
        if client is None:
            return
        try:
            if client.is_connected():
                client.terminate()
                client.block_for_close(timeout=STOP_WAIT_S)
        except (BentoError, ValueError) as exc:
            log.info("live feed closed: %s", redact(str(exc)))
