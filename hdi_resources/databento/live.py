"""The live feed: the unmodified `databento.Live` client, reconnected with exponential backoff, its records
handed over as raw bytes in batches (never one Python object per record on HDI's side).

The client runs in a relay child process (hdi_resources.databento.live_relay): it writes every record's bytes to
a stream (`Live.add_stream`) and the relay forwards them in batches through a pipe, so its per-record decoding
and the capture's columnar work (hdi_core.live.records) run on two cores. The client's own reconnect policy is
not used: it resubscribes without `start=`, losing the gap. `LiveFeed.open(start_ns)` makes a new client and
subscribes with `start=` the last `ts_recv` the capture holds (intraday replay), and the capture's GapFilter drops
what the replay repeats. The key comes from DATABENTO_API_KEY (inherited by the relay, never on its command line)
and is never logged; the gateway is Databento's own unless HDI_DATABENTO_LIVE=host:port (e.g. `hdi replay live`)
or `gateway=` names another. Every wait has a timeout; `shutdown()` stops the relay (EOF, then its checked pid).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from databento.common.error import BentoError
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential_jitter

from hdi_core.errors import ConfigError, GatewayNotConfiguredError, HdiError
from hdi_resources.databento.live_relay import (
    AUTH_REFUSED,
    CLOSED,
    CONNECT_FAILED,
    DATA,
    DISCONNECTED,
    HEADER,
    METADATA,
    OPENED,
    READY,
)
from hdi_resources.settings import ENV_API_KEY

log = logging.getLogger("hdi.live")

ENV_LIVE_GATEWAY = "HDI_DATABENTO_LIVE"  # host:port of a live gateway; unset = Databento's own
DATABENTO_LIVE_PORT = 13000
DEFAULT_HEARTBEAT_S = 5  # the gateway sends a heartbeat after this many seconds without records
STOP_WAIT_S = 5.0
OPEN_WAIT_S = 90.0  # the relay's answer to open/close (the client's own auth timeout is 30 s)
RELAY_MODULE = "hdi_resources.databento.live_relay"
REPO_ROOT = Path(__file__).resolve().parents[2]  # where hdi_resources lives: the relay imports it from there
PIPE_BYTES = 1 << 20
READ_BYTES = 1 << 20


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


def _transient(exc: BaseException) -> bool:
    return not isinstance(exc, LiveAuthError) and isinstance(exc, (BentoError, OSError, LiveConnectError))



class _Relay:
    """The relay child process (hdi_resources.databento.live_relay) and the frames it sends back."""

    def __init__(self) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)}
        self.proc = subprocess.Popen([sys.executable, "-m", RELAY_MODULE], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env=env, bufsize=0)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.fd = self.proc.stdout.fileno()
        os.set_blocking(self.fd, False)
        with contextlib.suppress(OSError, AttributeError):  # a larger pipe: fewer wake-ups at high rates
            fcntl.fcntl(self.fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        self._pending = bytearray()
        self._ready = False

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_ready(self, timeout_s: float) -> None:
        """The relay announces itself once the client library is loaded (its READY frame)."""
        if self._ready:
            return
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for kind, _ in self.frames(deadline - time.monotonic()):
                if kind == READY:
                    self._ready = True
                    return
        raise LiveConnectError(f"the live relay process did not start within {timeout_s:.0f} s")

    def send(self, command: dict[str, object]) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(command).encode() + b"\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise LiveConnectError("the live relay process is gone") from None

    def frames(self, timeout_s: float) -> list[tuple[bytes, bytes | bytearray]]:
        """The whole frames that arrived (waiting up to `timeout_s` for bytes); [] on a timeout."""
        if not self._read(timeout_s):
            return []
        out: list[tuple[bytes, bytes | bytearray]] = []
        buf, at = self._pending, 0
        while len(buf) - at >= HEADER.size:
            kind, size = HEADER.unpack_from(buf, at)
            if len(buf) - at - HEADER.size < size:
                break
            out.append((kind, buf[at + HEADER.size:at + HEADER.size + size]))
            self._ready = self._ready or kind == READY
            at += HEADER.size + size
        del buf[:at]
        return out

    def _read(self, timeout_s: float) -> bool:
        if not select.select([self.fd], [], [], max(0.0, timeout_s))[0]:
            return False
        got = False
        while True:
            try:
                chunk = os.read(self.fd, READ_BYTES)
            except BlockingIOError:
                return got
            if not chunk:
                if not got:
                    raise LiveConnectError("the live relay process exited")
                return got
            self._pending += chunk
            got = True

    def stop(self) -> None:
        """EOF on its stdin ends the relay; if it does not, it is stopped by its pid (our child, checked)."""
        proc = self.proc
        with contextlib.suppress(OSError):
            if proc.stdin is not None:
                proc.stdin.close()
        try:
            proc.wait(timeout=STOP_WAIT_S + 2)
        except subprocess.TimeoutExpired:
            if proc.pid > 0 and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=STOP_WAIT_S)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=STOP_WAIT_S)
        if proc.stdout is not None:
            proc.stdout.close()


class LiveFeed:
    """One capture's connection to a live gateway, made afresh on every (re)connect; the client itself runs in a
    relay child process (hdi_resources.databento.live_relay) that forwards its raw record bytes."""

    def __init__(self, dataset: str, subscriptions: Sequence[LiveSubscription], gateway: str | None = None,
                 heartbeat_s: int = DEFAULT_HEARTBEAT_S, ts_out: bool = True) -> None:
        self.dataset = dataset
        self.subscriptions = list(subscriptions)
        self.gateway = parse_gateway(gateway)
        self.heartbeat_s = heartbeat_s
        self.ts_out = ts_out
        self.metadata: bytes | None = None
        self.connects = 0
        self.bytes_in = 0
        self._relay: _Relay | None = None
        self._connected = False
        self._last_data = time.monotonic()  # any record, heartbeats included: the feed is alive

    @property
    def where(self) -> str:
        return "Databento's live gateway" if self.gateway is None else f"{self.gateway[0]}:{self.gateway[1]}"

    def _relay_process(self) -> _Relay:
        if self._relay is None or not self._relay.alive():
            if self._relay is not None:
                self._relay.stop()
            self._relay = _Relay()
        return self._relay

    def open(self, start_ns: int | None) -> None:
        """Connect, authenticate, subscribe every schema (replaying from `start_ns` when given) and start."""
        self.close()
        live_key()  # a missing key is a configuration error here, before any process starts
        relay = self._relay_process()
        relay.send({"op": "open", "start": start_ns, "dataset": self.dataset, "ts_out": self.ts_out,
                    "heartbeat_s": self.heartbeat_s, "port": DATABENTO_LIVE_PORT,
                    "gateway": list(self.gateway) if self.gateway else None,
                    "subscriptions": [[s.schema, list(s.symbols), s.stype_in] for s in self.subscriptions]})
        kind, payload = self._await(relay, (OPENED, AUTH_REFUSED, CONNECT_FAILED), OPEN_WAIT_S, "connect")
        if kind == AUTH_REFUSED:
            raise LiveAuthError(f"live gateway {self.where} refused the key: {payload.decode(errors='replace')}")
        if kind == CONNECT_FAILED:
            raise LiveConnectError(f"live gateway {self.where}: {payload.decode(errors='replace')}")
        self._connected = True
        self._last_data = time.monotonic()
        self.connects += 1
        log.info("live feed connected to %s (connection %d, start=%s, relay pid %d)", self.where, self.connects,
                 start_ns, relay.proc.pid)

    def _await(self, relay: _Relay, kinds: tuple[bytes, ...], timeout_s: float, what: str
               ) -> tuple[bytes, bytes | bytearray]:
        """The relay's answer to a command; frames of an earlier connection met on the way are dropped."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for kind, payload in relay.frames(deadline - time.monotonic()):
                if kind in kinds:
                    return kind, payload
        relay.stop()
        self._relay = None
        raise LiveConnectError(f"live gateway {self.where}: the relay did not {what} within {timeout_s:.0f} s")

    def open_with_backoff(self, start: Callable[[], int | None], give_up_s: float, initial_s: float = 0.2,
                          max_wait_s: float = 30.0, stopping: Callable[[], bool] = lambda: False) -> None:
        """`open(start())`, retried with exponential backoff and jitter on transient failures for up to
        `give_up_s` (counted once the relay process is up); a refused key is not retried; `stopping()` ends the
        waits early."""
        self._relay_process().wait_ready(OPEN_WAIT_S)
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
        """The record bytes that arrived (whole records, in arrival order), waiting up to `timeout_s`."""
        if self._relay is None or not self._connected:
            time.sleep(timeout_s)
            return bytearray()
        try:
            frames = self._relay.frames(timeout_s)
        except LiveConnectError:
            self._connected = False
            return bytearray()
        out = bytearray()
        for kind, payload in frames:
            if kind == DATA:
                out += payload
            elif kind == METADATA:
                self.metadata = bytes(payload)
            elif kind == DISCONNECTED:
                self._connected = False
        if out:
            self._last_data = time.monotonic()
            self.bytes_in += len(out)
        return out

    def seconds_since_data(self) -> float:
        return time.monotonic() - self._last_data

    def is_connected(self) -> bool:
        return self._connected and self._relay is not None and self._relay.alive()

    def close(self) -> None:
        """Drop the connection now (what is in flight is lost: the next open replays it)."""
        relay, was = self._relay, self._connected
        self._connected = False
        if relay is None or not relay.alive() or not was:
            return
        try:
            relay.send({"op": "close"})
            self._await(relay, (CLOSED,), OPEN_WAIT_S, "close")
        except LiveConnectError as exc:
            log.info("live feed closed: %s", exc)

    def shutdown(self) -> None:
        """Close the connection and stop the relay process (the capture is stopping)."""
        self.close()
        relay, self._relay = self._relay, None
        if relay is not None:
            relay.stop()
