"""The live client's own process: the unmodified `databento.Live` runs here and only forwards each record's raw
bytes to the capture, so the client's per-record decoding (one Python object a record, inside the client) and the
capture's columnar work run on different cores instead of sharing one interpreter lock.

Run as `python -m hdi_resources.databento.live_relay` by LiveFeed (hdi_resources.databento.live), never by hand.
Commands come as JSON lines on stdin (`open`, `close`); EOF on stdin (the capture stopped or died) ends the
relay. Everything goes back on stdout as frames: one kind byte, a little-endian uint32 length, the payload.
The key comes from the inherited environment (DATABENTO_API_KEY), never from the command line.
"""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import struct
import sys
import threading
import time
from typing import Any

import databento as db
from databento.common.error import BentoError

from hdi_resources.settings import redact

log = logging.getLogger("hdi.live")

HEADER = struct.Struct("<cI")
# frame kinds, relay -> capture
READY, METADATA, DATA, OPENED, AUTH_REFUSED, CONNECT_FAILED, DISCONNECTED, CLOSED = (
    b"R", b"M", b"D", b"O", b"A", b"F", b"X", b"K")
FORWARD_WAIT_S = 0.05  # the forwarder's longest sleep: how soon a disconnect is noticed
BATCH_GATHER_S = 0.0005  # after the first record of a batch, let the client's current read land too
STOP_WAIT_S = 5.0
MAX_FRAME = 1 << 30


class ByteSink(io.RawIOBase):
    """The stream the client writes into: DBN metadata first, then each record's bytes, kept until taken."""

    def __init__(self) -> None:
        super().__init__()
        self._buffer = bytearray()
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self.metadata: bytes | None = None

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        with self._lock:
            if self.metadata is None and bytes(data[:3]) == b"DBN":
                self.metadata = bytes(data)
            else:
                self._buffer += data
        if not self._ready.is_set():  # one wake-up per batch, not per record: the client calls this per record
            self._ready.set()
        return len(data)

    def take(self, timeout_s: float) -> bytearray:
        """Everything written so far (waiting up to `timeout_s` for something); the buffer starts afresh."""
        if not self._ready.wait(timeout_s):
            return bytearray()
        time.sleep(BATCH_GATHER_S)
        with self._lock:
            out, self._buffer = self._buffer, bytearray()
            self._ready.clear()
        return out


class Relay:
    """One client at a time; the forwarder thread moves its bytes to stdout, the main thread obeys commands."""

    def __init__(self, out_fd: int) -> None:
        self.out_fd = out_fd
        self._write_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self.client: db.Live | None = None
        self.sink: ByteSink | None = None
        self.generation = 0
        self._sent_metadata = False
        self._reported_down = True
        self._stopping = threading.Event()

    def frame(self, kind: bytes, payload: bytes | bytearray = b"") -> None:
        data = HEADER.pack(kind, len(payload)) + payload
        view = memoryview(data)
        with self._write_lock:
            while view:
                view = view[os.write(self.out_fd, view):]

    def open(self, command: dict[str, Any]) -> None:
        self.close(acknowledge=False)
        host, port = command["gateway"] or (None, command["port"])
        client = db.Live(key=os.environ.get("DATABENTO_API_KEY", ""), gateway=host, port=port,
                         ts_out=command["ts_out"], heartbeat_interval_s=command["heartbeat_s"])
        sink = ByteSink()
        client.add_stream(sink)
        try:
            for schema, symbols, stype_in in command["subscriptions"]:
                client.subscribe(dataset=command["dataset"], schema=schema, symbols=symbols, stype_in=stype_in,
                                 start=command["start"])
            client.start()
        except (BentoError, ValueError, OSError) as exc:
            message = redact(" ".join(str(exc).split()))
            self.frame(AUTH_REFUSED if "auth" in message.lower() else CONNECT_FAILED, message.encode())
            self._terminate(client)
            return
        with self._write_lock, self._state_lock:  # OPENED goes out before any of this connection's bytes
            self.client, self.sink = client, sink
            self.generation += 1
            self._sent_metadata = False
            self._reported_down = False
            self._write_locked(OPENED, b"")

    def close(self, acknowledge: bool = True) -> None:
        with self._state_lock:
            client, self.client, self.sink = self.client, None, None
            self.generation += 1
            self._reported_down = True
        if client is not None:
            self._terminate(client)
        if acknowledge:
            self.frame(CLOSED)

    @staticmethod
    def _terminate(client: db.Live) -> None:
        try:
            if client.is_connected():
                client.terminate()
                client.block_for_close(timeout=STOP_WAIT_S)
        except (BentoError, ValueError, OSError) as exc:
            log.info("live feed closed: %s", redact(str(exc)))

    def forward(self) -> None:
        """Forwarder thread: the current sink's bytes as DATA frames, a lost connection as one DISCONNECTED."""
        while not self._stopping.is_set():
            with self._state_lock:
                sink, client, generation = self.sink, self.client, self.generation
            if sink is None or client is None:
                self._stopping.wait(FORWARD_WAIT_S)
                continue
            data = sink.take(FORWARD_WAIT_S)
            with self._write_lock, self._state_lock:  # a closed connection's bytes never follow its CLOSED
                if generation != self.generation:
                    continue
                if not self._sent_metadata and sink.metadata is not None:
                    self._write_locked(METADATA, sink.metadata)
                    self._sent_metadata = True
                if data:
                    self._write_locked(DATA, data)
                if not data and not self._reported_down and not client.is_connected():
                    self._reported_down = True
                    self._write_locked(DISCONNECTED, b"the gateway closed the connection")

    def _write_locked(self, kind: bytes, payload: bytes | bytearray) -> None:
        view = memoryview(HEADER.pack(kind, len(payload)) + payload)
        while view:
            view = view[os.write(self.out_fd, view):]

    def stop(self) -> None:
        self._stopping.set()


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the capture, which then stops this relay
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s relay: %(message)s")
    out_fd = os.dup(sys.stdout.fileno())
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints never corrupt the frames
    relay = Relay(out_fd)
    forwarder = threading.Thread(target=relay.forward, daemon=True, name="hdi-live-relay")
    forwarder.start()
    relay.frame(READY)
    try:
        for line in sys.stdin:
            command = json.loads(line)
            if command["op"] == "open":
                relay.open(command)
            elif command["op"] == "close":
                relay.close()
    except BrokenPipeError:  # the capture is gone
        pass
    finally:
        relay.stop()
        relay.close(acknowledge=False)
        forwarder.join(STOP_WAIT_S)


if __name__ == "__main__":
    main()
