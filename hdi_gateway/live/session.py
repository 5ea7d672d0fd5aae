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
from hdi_gateway.live.faults import FaultSource, LiveFaults
from hdi_gateway.live.protocol import AuthRequest, ControlError, SubscriptionRequest
from hdi_gateway.live.stream import Batch, StreamPlan
from hdi_gateway.live.subscriptions import Selection, SubscriptionRefused, resolve
from hdi_gateway.source import DataSource

log = logging.getLogger("hdi.replay.live")

AUTH_TIMEOUT_S = 30.0  # as the client's own AUTH_TIMEOUT_SECONDS
IDLE_TICK_S = 0.005  # wall seconds between windows once the stream has caught up with the clock
TARGET_RECORDS = 50_000  # records per window the adaptive window size aims for
MIN_WINDOW_NS = 1_000_000
MAX_WINDOW_NS = 6 * 3600 * 1_000_000_000
CLOSE_GRACE_S = 2.0  # wall seconds a closing connection may flush before it is aborted
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
        self.ts_out = False  # the client asked for the send time (ts_out) after every record

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
        self.ts_out = request.ts_out
        self.heartbeat_s = float(request.heartbeat_interval_s)
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

    async def _subscribe_pending(self, now_ns: int) -> None:
        assert self.plan is not None
        requests, self.pending = self.pending, []
        for request in requests:
            try:
                selection: Selection = await asyncio.to_thread(
                    resolve, self.state.source, self.dataset, request, now_ns)
            except SubscriptionRefused as refused:
                self.writer.write(self._stamped(refused.record))
                continue
            self.writer.write(self._stamped(selection.mappings + b"".join(selection.errors)))
            self.plan.add(selection)

    async def _send(self, data: bytes, faults: LiveFaults) -> None:
        self.writer.write(data)
        self.last_write = time.monotonic()
        transport = self.writer.transport
        if transport.get_write_buffer_size() <= faults.send_buffer_bytes:
            return
        if self.state.clock.is_max:
            # at max speed the gateway paces itself to the reader: backpressure is not a slow reader
            while transport.get_write_buffer_size() > faults.send_buffer_bytes:
                if transport.is_closing():
                    raise SessionClosed("client gone")
                try:
                    await asyncio.wait_for(self.writer.drain(), faults.slow_reader_s)
                except TimeoutError:
                    continue
            return
        try:
            await asyncio.wait_for(self.writer.drain(), faults.slow_reader_s)
        except TimeoutError:
            text = (f"Slow reader: the client did not read {faults.send_buffer_bytes} buffered bytes within "
                    f"{faults.slow_reader_s:g} s; disconnecting")
            self.writer.write(self._stamped(messages.error_message(
                self.state.clock.now(), text, messages.ERROR_SKIPPED_RECORDS_AFTER_SLOW_READING)))
            await self._close()
            raise SessionClosed(text) from None

    def _batch_bytes(self, batch: Batch) -> bytes:
        if not self.ts_out or not batch.count:
            return batch.tobytes()
        return with_ts_out(batch.payload, batch.ends, time.time_ns())

    def _stamped(self, data: bytes) -> bytes:
        """Control-time records (mappings, heartbeats, errors) carry ts_out too when the client asked for it."""
        if not self.ts_out or not data:
            return data
        ends, pos = [], 0
        while pos < len(data):  # a handful of records: their lengths walked one by one
            pos += data[pos] * 4
            ends.append(pos)
        return with_ts_out(np.frombuffer(data, np.uint8), np.asarray(ends, np.int64), time.time_ns())

    def _reset(self) -> None:
        """Drop the connection as a network failure would: TCP reset, unsent bytes lost."""
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()

    async def _close(self) -> None:
        self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), CLOSE_GRACE_S)
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
        cursor = min(self.plan.first_start() or start_now, start_now)
        window = 1_000_000_000
        later = asyncio.create_task(self._read_later_subscriptions())
        try:
            while True:
                if later.done():
                    raise SessionClosed("client closed the connection")
                if self.writer.transport.is_closing():
                    raise SessionClosed("client gone")
                faults = self._fault_state()
                if self.pending:
                    await self._subscribe_pending(cursor)
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
                    batch: Batch = await asyncio.to_thread(self.plan.window, cursor, target)
                    window = _adapt(window, batch.count)
                    await self._send_batch(batch, faults)
                    cursor = target
                    clock.advance(cursor)
                if time.monotonic() - self.last_write >= self.heartbeat_s:
                    await self._send(self._stamped(messages.heartbeat(cursor)), faults)
                if clock.is_max and cursor < data_end:
                    await asyncio.sleep(0)
                elif not clock.is_max and clock.now() - cursor < window:
                    await asyncio.sleep(IDLE_TICK_S)
                else:
                    await asyncio.sleep(0 if cursor < data_end else IDLE_TICK_S * 20)
        finally:
            later.cancel()

    async def _send_batch(self, batch: Batch, faults: LiveFaults) -> None:
        if faults.drop_after is not None:
            remaining = faults.drop_after - (self.sent_records - self.fault_base)
            if batch.count >= remaining and faults.claim(f"drop:{faults.generation}"):
                head = batch.head(remaining)
                if head.count:
                    self.writer.write(self._batch_bytes(head))
                    await asyncio.wait_for(self.writer.drain(), faults.slow_reader_s)
                self.sent_records += head.count
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


def with_ts_out(payload: np.ndarray, ends: np.ndarray, ts_out_ns: int) -> bytes:
    """Each record followed by the 8-byte send time, its `length` counting it (Databento's ts_out), columnar."""
    sizes = np.diff(ends, prepend=0)
    n = len(ends)
    new_ends = ends + 8 * np.arange(1, n + 1, dtype=np.int64)
    new_starts = new_ends - sizes - 8
    out = np.empty(int(new_ends[-1]), dtype=np.uint8)
    out[np.arange(len(payload), dtype=np.int64) + 8 * np.repeat(np.arange(n, dtype=np.int64), sizes)] = payload
    out[new_starts] = ((sizes + 8) // 4).astype(np.uint8)
    stamp = np.full(n, ts_out_ns, dtype="<u8").view(np.uint8).reshape(n, 8)
    out[(new_ends - 8)[:, None] + np.arange(8, dtype=np.int64)] = stamp
    return out.tobytes()


def _adapt(window: int, count: int) -> int:
    """Grow the market-time window while windows are sparse, shrink it when one holds too many records."""
    if count > TARGET_RECORDS:
        return max(MIN_WINDOW_NS, window // 2)
    if count < TARGET_RECORDS // 4:
        return min(MAX_WINDOW_NS, window * 2)
    return window
