"""One client connection of the live gateway: CRAM authentication, subscriptions, then the DBN stream paced by
the replay clock, with heartbeats, faults and slow-reader handling."""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import struct
import time
from dataclasses import dataclass, field

import databento_dbn as dbn
import numpy as np

from hdi_gateway.live import messages, protocol
from hdi_gateway.live.clock import ReplayClock
from hdi_gateway.live.faults import DEFAULT_SEND_BUFFER_BYTES, FaultSource, LiveFaults
from hdi_gateway.live.protocol import AuthRequest, ControlError, SubscriptionRequest
from hdi_gateway.live.stream import Batch, StreamPlan, record_ends, with_ts_out
from hdi_gateway.live.subscriptions import Selection, SubscriptionRefused, resolve
from hdi_gateway.source import DataSource

log = logging.getLogger("hdi.replay.live")

AUTH_TIMEOUT_S = 30.0  # as the client's own AUTH_TIMEOUT_SECONDS
IDLE_TICK_S = 0.005  # wall seconds between windows once the stream has caught up with the clock
TARGET_RECORDS = 50_000  # records per window the adaptive window size aims for
MIN_WINDOW_NS = 1_000_000
MAX_WINDOW_NS = 6 * 3600 * 1_000_000_000
# Data ahead of the stream is produced early in the background (the source caches it), so a new trade date's
# generation (seconds for a book) does not stall a live stream: this far ahead in market time, or this many wall
# seconds ahead at the session's speed, whichever is further.
PREFETCH_MARKET_NS = 15 * 60 * 1_000_000_000
PREFETCH_WALL_S = 20.0
PREFETCH_PROBE_NS = 1_000_000  # the window read at the prefetch point: enough to make the source generate it
CLOSE_GRACE_S = 2.0  # wall seconds a closing connection may flush before it is aborted
MAX_SPEED_READER_PAUSE_S = 300.0  # at speed max, how long a reader may stop reading before it is dropped
SLOW_READER_CLOSE_GRACE_S = 30.0  # ... a slow reader's, so its ErrorMsg still reaches it if it reads again
_session_ids = itertools.count(1)


@dataclass
class GatewayState:
    """What every session shares: the data, the clock, the accepted keys and the faults."""

    source: DataSource
    clock: ReplayClock
    keys: list[str]
    faults: FaultSource
    sessions: dict[int, str] = field(default_factory=dict)  # session id -> peer, for status


class SessionClosed(Exception):
    """The session ends here (client gone, fault fired, slow reader)."""


class LiveSession:
    def __init__(self, state: GatewayState, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.state = state
        self.reader = reader
        self.writer = writer
        self.session_id = next(_session_ids)
        self.dataset = ""
        self.heartbeat_s = float(protocol.DEFAULT_HEARTBEAT_S)
        self.plan: StreamPlan | None = None
        self.pending: list[SubscriptionRequest] = []
        self.sent_records = 0
        self.last_write = time.monotonic()
        self.fault_generation = -1
        self.fault_base = 0  # records sent when the current fault generation was first seen
        self.ts_out = False  # the client asked for each record's send time (ts_out) appended

    # ------------------------------------------------------------------ control phase

    async def _line(self, timeout: float) -> dict[str, str]:
        try:
            line = await asyncio.wait_for(self.reader.readline(), timeout)
        except (TimeoutError, asyncio.LimitOverrunError, ValueError) as exc:
            raise SessionClosed(f"no control line: {exc!r}") from None
        if not line:
            raise SessionClosed("client closed the connection")
        return protocol.parse_line(line)

    async def _authenticate(self) -> None:
        challenge = protocol.new_challenge()
        self.writer.write(protocol.greeting() + protocol.format_line(cram=challenge))
        fields = await self._line(AUTH_TIMEOUT_S)
        try:
            request = AuthRequest.parse(fields)
            error = None
            if not protocol.authenticate(challenge, request.auth, self.state.keys):
                error = protocol.AUTH_FAILED_MESSAGE
            elif request.dataset not in self.state.source.datasets():
                error = f"Unknown dataset {request.dataset!r}; available: {', '.join(self.state.source.datasets())}"
            elif request.encoding != "dbn":
                error = f"Unsupported encoding {request.encoding!r}; the gateway sends dbn"
            elif request.compression not in ("none", ""):
                error = f"Unsupported compression {request.compression!r}; the offline gateway sends none"
        except ControlError as exc:
            error = str(exc)
        if error is not None:
            self.writer.write(protocol.format_line(success=0, error=error))
            await self._close()
            raise SessionClosed(f"authentication refused: {error}")
        self.dataset = request.dataset
        self.heartbeat_s = float(request.heartbeat_interval_s)
        self.ts_out = request.ts_out
        self.writer.write(protocol.format_line(success=1, session_id=self.session_id))

    async def _read_until_start(self) -> None:
        while True:
            fields = await self._line(AUTH_TIMEOUT_S * 20)
            if "start_session" in fields:
                return
            try:
                self.pending.append(SubscriptionRequest.parse(fields))
            except ControlError as exc:
                log.info("session %s: %s", self.session_id, exc)

    async def _read_later_subscriptions(self) -> None:
        """Subscriptions sent after start_session join at the stream's current time."""
        while True:
            line = await self.reader.readline()
            if not line:
                return
            try:
                self.pending.append(SubscriptionRequest.parse(protocol.parse_line(line)))
            except ControlError as exc:
                log.info("session %s: %s", self.session_id, exc)

    # ------------------------------------------------------------------ stream

    def _metadata(self, start_ns: int) -> bytes:
        schemas = {r.schema for r in self.pending}
        stypes = {r.stype_in for r in self.pending}
        meta = dbn.Metadata(
            dataset=self.dataset, start=int(start_ns), end=None, limit=None,
            schema=dbn.Schema(schemas.pop()) if len(schemas) == 1 else None,
            stype_in=dbn.SType(stypes.pop()) if len(stypes) == 1 else None,
            stype_out=dbn.SType.INSTRUMENT_ID, symbols=[], partial=[], not_found=[], mappings=[],
            ts_out=self.ts_out, version=3,
        )
        return bytes(meta)

    async def _subscribe_pending(self, now_ns: int, started: bool = False) -> None:
        assert self.plan is not None
        requests, self.pending = self.pending, []
        for request in requests:
            if started and request.start_ns is not None:  # as Databento: replay only before the session starts
                self.writer.write(self._records(messages.error_message(
                    now_ns, "start= cannot be given once the session has started",
                    messages.ERROR_INVALID_SUBSCRIPTION)))
                continue
            try:
                selection: Selection = await asyncio.to_thread(
                    resolve, self.state.source, self.dataset, request, now_ns)
            except SubscriptionRefused as refused:
                self.writer.write(self._records(refused.record))
                continue
            self.writer.write(self._records(selection.mappings + b"".join(selection.errors)))
            self.plan.add(selection)

    async def _send(self, data: bytes, faults: LiveFaults) -> None:
        self.writer.write(data)
        self.last_write = time.monotonic()
        transport = self.writer.transport
        if transport.get_write_buffer_size() <= faults.send_buffer_bytes:
            return
        # at max speed the gateway paces itself to the reader: backpressure is a slow reader only when the
        # reader stops altogether
        patience = MAX_SPEED_READER_PAUSE_S if self.state.clock.is_max else faults.slow_reader_s
        try:
            await asyncio.wait_for(self.writer.drain(), patience)
        except TimeoutError:
            text = (f"Slow reader: the client did not read {faults.send_buffer_bytes} buffered bytes within "
                    f"{patience:g} s; disconnecting")
            self.writer.write(self._records(messages.error_message(
                self.state.clock.now(), text, messages.ERROR_SKIPPED_RECORDS_AFTER_SLOW_READING)))
            await self._close(SLOW_READER_CLOSE_GRACE_S)
            raise SessionClosed(text) from None

    def _records(self, data: bytes) -> bytes:
        """Live-only records (mappings, system, errors) as sent: with ts_out when the session asked for it."""
        if not self.ts_out or not data:
            return data
        return with_ts_out(np.frombuffer(data, dtype=np.uint8), record_ends(data), time.time_ns())

    def _batch_bytes(self, batch: Batch) -> bytes:
        if not self.ts_out:
            return batch.tobytes()
        return with_ts_out(batch.payload, batch.ends, time.time_ns())

    def _reset(self) -> None:
        """Drop the connection as a network failure would: TCP reset, unsent bytes lost."""
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()

    async def _close(self, grace_s: float = CLOSE_GRACE_S) -> None:
        self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), grace_s)
        except (TimeoutError, OSError):
            self.writer.transport.abort()

    def _fault_state(self) -> LiveFaults:
        faults = self.state.faults.current()
        if faults.generation != self.fault_generation:
            self.fault_generation = faults.generation
            self.fault_base = self.sent_records
        return faults

    async def _stream(self) -> None:
        clock = self.state.clock
        start_now = clock.now()
        self.plan = StreamPlan(self.state.source, self.dataset)
        self.writer.write(self._metadata(start_now))
        await self._subscribe_pending(start_now)
        data_end = self.state.source.dataset_range(self.dataset)[1]
        send_buffer = self._fault_state().send_buffer_bytes
        sock = self.writer.get_extra_info("socket")
        if sock is not None and send_buffer < DEFAULT_SEND_BUFFER_BYTES:
            # a bounded send buffer means the kernel's too, or megabytes hide in it before the gateway notices
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
        cursor = min(self.plan.first_start() or start_now, start_now)
        window = 1_000_000_000
        later = asyncio.create_task(self._read_later_subscriptions())
        prefetch: asyncio.Future | None = None
        prefetched_to = cursor
        try:
            while True:
                if later.done():
                    raise SessionClosed("client closed the connection")
                if self.writer.transport.is_closing():
                    raise SessionClosed("client gone")
                faults = self._fault_state()
                if self.pending:
                    await self._subscribe_pending(cursor, started=True)
                stall = faults.stall_s > 0 and (faults.stall_at_ns is None or cursor >= faults.stall_at_ns)
                if stall and faults.claim(f"stall:{faults.generation}"):
                    log.info("session %s: stalling %.1f s (fault)", self.session_id, faults.stall_s)
                    await asyncio.sleep(faults.stall_s)
                    self.last_write = time.monotonic()
                if faults.drop_at_ns is not None and cursor >= faults.drop_at_ns and faults.claim(
                        f"drop:{faults.generation}"):
                    self._reset()
                    raise SessionClosed("dropped (fault drop_at)")
                target = cursor + window if clock.is_max else min(clock.now(), cursor + window)
                for edge in (faults.stall_at_ns, faults.drop_at_ns):  # stop exactly at a fault's time
                    if edge is not None and cursor < edge < target:
                        target = edge
                target = min(target, data_end)
                if target > cursor:
                    listings = self.plan.new_listings(target)
                    if listings:
                        self.writer.write(self._records(listings))
                    batch: Batch = await asyncio.to_thread(self.plan.window, cursor, target)
                    window = _adapt(window, batch.count)
                    await self._send_batch(batch, faults)
                    cursor = target
                    clock.advance(cursor)
                ahead = self._prefetch_point(cursor)
                if ahead is not None and ahead > prefetched_to and (prefetch is None or prefetch.done()):
                    prefetch = asyncio.ensure_future(asyncio.to_thread(
                        self.plan.window, ahead, ahead + PREFETCH_PROBE_NS))
                    prefetched_to = ahead + PREFETCH_PROBE_NS
                if time.monotonic() - self.last_write >= self.heartbeat_s:
                    await self._send(self._records(messages.heartbeat(cursor)), faults)
                if clock.is_max and cursor < data_end:
                    await asyncio.sleep(0)
                elif not clock.is_max and clock.now() - cursor < window:
                    await asyncio.sleep(IDLE_TICK_S)
                else:
                    await asyncio.sleep(0 if cursor < data_end else IDLE_TICK_S * 20)
        finally:
            later.cancel()
            if prefetch is not None:
                prefetch.cancel()

    def _prefetch_point(self, cursor: int) -> int | None:
        """Where to produce data ahead of the stream (None at speed max: the stream itself is ahead)."""
        speed = self.state.clock.speed
        if speed is None or self.plan is None or not self.plan.selections:
            return None
        ahead = max(PREFETCH_MARKET_NS, int(PREFETCH_WALL_S * speed * 1_000_000_000))
        # probe once per market minute: the source generates whole trade dates, so finer probes add nothing
        return (cursor + ahead) // 60_000_000_000 * 60_000_000_000

    async def _send_batch(self, batch: Batch, faults: LiveFaults) -> None:
        if faults.drop_after is not None:
            remaining = faults.drop_after - (self.sent_records - self.fault_base)
            if batch.count >= remaining and faults.claim(f"drop:{faults.generation}"):
                head = batch.head(remaining)
                if head.count:
                    self.writer.write(self._batch_bytes(head))
                    await asyncio.wait_for(self.writer.drain(), faults.slow_reader_s)
                self.sent_records += head.count
                if head.count:
                    self.state.clock.advance(int(head.send_ns[-1]))
                self._reset()
                raise SessionClosed(f"dropped after {self.sent_records} records (fault drop_after)")
        if batch.count:
            await self._send(self._batch_bytes(batch), faults)
            self.sent_records += batch.count

    async def run(self) -> None:
        peer = self.writer.get_extra_info("peername")
        self.state.sessions[self.session_id] = str(peer)
        try:
            await self._authenticate()
            await self._read_until_start()
            await self._stream()
        except SessionClosed as closed:
            log.info("session %s (%s) ended: %s", self.session_id, peer, closed)
        except (ConnectionError, OSError) as exc:
            log.info("session %s (%s) lost: %s", self.session_id, peer, exc)
        finally:
            self.state.sessions.pop(self.session_id, None)
            if not self.writer.transport.is_closing():
                await self._close()


def _adapt(window: int, count: int) -> int:
    """Grow the market-time window while windows are sparse, shrink it when one holds too many records."""
    if count > TARGET_RECORDS:
        return max(MIN_WINDOW_NS, window // 2)
    if count < TARGET_RECORDS // 4:
        return min(MAX_WINDOW_NS, window * 2)
    return window
