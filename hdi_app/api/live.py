"""The live push endpoint: GET /live/bars?symbol=ES.v.0[&timeout=S] streams server-sent events, one `bar` event
per bar update (the open bar as it changes, then closed), fed by PostgreSQL LISTEN/NOTIFY (hdi_resources.db.live).

The first event is the newest stored bar (so a new client has a state at once); a comment line (`: keepalive`)
goes out after KEEPALIVE_S without an update, so proxies and clients see a live connection and a gone client
is noticed. `timeout` (seconds, at most MAX_TIMEOUT_S; default: until the client leaves) ends the stream.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from http.server import BaseHTTPRequestHandler

from hdi_resources.db.live import LiveBarListener, latest_bar_json
from hdi_resources.db.readerrors import BadRequest
from hdi_resources.db.reconnect import ReconnectingDatabase

log = logging.getLogger(__name__)

PATH = "/live/bars"
KEEPALIVE_S = 15.0
MAX_TIMEOUT_S = 24 * 3600
_PARAMS = {"symbol", "timeout"}


class LivePush:
    """One LISTEN connection per API process (started on the first push client), shared by every client."""

    def __init__(self, source: ReconnectingDatabase) -> None:
        self.source = source
        self._listener: LiveBarListener | None = None
        self._lock = threading.Lock()

    def listener(self) -> LiveBarListener:
        with self._lock:
            if self._listener is None:
                self._listener = LiveBarListener(self.source.current)
            return self._listener

    def stop(self) -> None:
        with self._lock:
            if self._listener is not None:
                self._listener.stop()
                self._listener = None

    def parse(self, query: dict[str, list[str]]) -> tuple[str, float | None]:
        unknown = sorted(set(query) - _PARAMS)
        if unknown:
            raise BadRequest(f"unknown parameter {unknown[0][:30]!r}; /live/bars takes symbol, timeout")
        symbols = query.get("symbol") or []
        if len(symbols) != 1 or not symbols[0] or len(symbols[0]) > 64:
            raise BadRequest("give symbol once, e.g. /live/bars?symbol=ES.v.0")
        timeout = (query.get("timeout") or [None])[0]
        if timeout is None:
            return symbols[0], None
        try:
            seconds = float(timeout)
        except ValueError:
            seconds = -1.0
        if not 0 < seconds <= MAX_TIMEOUT_S:
            raise BadRequest(f"timeout {timeout[:20]!r} is not a number of seconds from 0 to {MAX_TIMEOUT_S}")
        return symbols[0], seconds

    def stream(self, handler: BaseHTTPRequestHandler, symbol: str, timeout_s: float | None) -> None:
        """Answer with an event stream until the timeout, the client leaving, or the server stopping."""
        listener = self.listener()
        updates = listener.subscribe(symbol)
        try:
            listener.ready.wait(10.0)  # LISTEN is in place before the first read: no update falls between
            handler.send_response(200)
            handler.send_header("Content-Type", "text/event-stream; charset=utf-8")
            handler.send_header("Cache-Control", "no-store")
            handler.send_header("Connection", "close")
            handler.send_header("X-Accel-Buffering", "no")
            handler.end_headers()
            handler.close_connection = True
            first = self.source.run(lambda db: latest_bar_json(db, symbol))
            handler.wfile.write(b"retry: 1000\n\n" + (_event(first) if first else b""))
            handler.wfile.flush()
            deadline = None if timeout_s is None else time.monotonic() + timeout_s
            while True:
                left = KEEPALIVE_S if deadline is None else min(KEEPALIVE_S, deadline - time.monotonic())
                if left <= 0:
                    return
                try:
                    payload = updates.get(timeout=left)
                except queue.Empty:
                    handler.wfile.write(b": keepalive\n\n")
                else:
                    chunk = [_event(payload)]
                    while not updates.empty() and len(chunk) < 256:  # a burst goes out in one write
                        chunk.append(_event(updates.get_nowait()))
                    handler.wfile.write(b"".join(chunk))
                handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            return
        finally:
            listener.unsubscribe(symbol, updates)


def _event(payload: str) -> bytes:
    return f"event: bar\ndata: {payload}\n\n".encode()
