"""The live gateway's TCP server: in a thread of this process (tests), or in the foreground (`hdi replay live`)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hdi_core.errors import HdiError
from hdi_gateway.live.clock import ReplayClock
from hdi_gateway.live.faults import FaultSource
from hdi_gateway.live.protocol import ENV_LIVE_GATEWAY, MAX_LINE_BYTES, accepted_keys
from hdi_gateway.live.session import GatewayState, LiveSession
from hdi_gateway.source import DataSource

log = logging.getLogger("hdi.replay.live")
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


def make_state(
    source: DataSource,
    at_ns: int,
    speed: float | None = 1.0,
    keys: Iterable[str] | None = None,
    faults: str | None = None,
    control_file: Path | None = None,
) -> GatewayState:
    return GatewayState(source=source, clock=ReplayClock(at_ns, speed), keys=accepted_keys(keys),
                        faults=FaultSource(faults, control_file))


WARM_STEP_NS = 3600 * 1_000_000_000  # one probe a market hour: the source generates whole trade dates
WARM_PROBE_NS = 1_000_000


def warm_up(source: DataSource, dataset: str, schemas: Iterable[str], start_ns: int, end_ns: int,
            roots: Iterable[str] | None = None) -> int:
    """Produce the data of [start_ns, end_ns) before the replay clock starts (the source caches it), so the first
    minutes of a paced stream are not a generation stall then a burst; `roots` (e.g. ES, NQ) limits the products.
    Returns the probes made."""
    wanted = None if roots is None else {f"{r}.FUT" for r in roots}
    ids = None
    if wanted is not None:
        ids = np.array(sorted(i.instrument_id for i in source.instruments(dataset, start_ns, end_ns)
                              if i.parent in wanted), dtype=np.uint32)
    probes = 0
    for schema in schemas:
        for at in range(int(start_ns), int(end_ns), WARM_STEP_NS):
            source.records(dataset, schema, ids, at, at + WARM_PROBE_NS)
            probes += 1
    return probes


async def _serve(state: GatewayState, host: str, port: int) -> asyncio.Server:
    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await LiveSession(state, reader, writer).run()
        except asyncio.CancelledError:  # the gateway is stopping: end the connection quietly
            writer.transport.abort()

    return await asyncio.start_server(on_connect, host, port, limit=MAX_LINE_BYTES)


@dataclass
class LiveGateway:
    """A running live gateway: where clients connect (`databento.Live(key, gateway=host, port=port)`)."""

    host: str
    port: int
    state: GatewayState
    _stop: Callable[[], None]
    pid: int | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def stop(self) -> None:
        self._stop()

    def __enter__(self) -> LiveGateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_live_thread(state: GatewayState, host: str = "127.0.0.1", port: int = 0) -> LiveGateway:
    """Serve from a background thread with its own event loop; `stop()` closes the server and every session."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    box: dict[str, object] = {}

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            box["server"] = loop.run_until_complete(_serve(state, host, port))
        except OSError as exc:
            box["error"] = exc
            started.set()
            return
        started.set()
        loop.run_forever()
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()

    thread = threading.Thread(target=run, name="hdi-live-gateway", daemon=True)
    thread.start()
    if not started.wait(START_TIMEOUT_S) or "error" in box:
        raise HdiError(f"live gateway did not start on {host}:{port}: {box.get('error', 'timeout')}")
    server: asyncio.Server = box["server"]  # type: ignore[assignment]
    bound = server.sockets[0].getsockname()[1]

    def stop() -> None:
        async def shutdown() -> None:
            server.close()
            for task in [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]:
                task.cancel()
            await asyncio.sleep(0)

        if loop.is_closed() or not loop.is_running():
            return
        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(STOP_TIMEOUT_S)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(STOP_TIMEOUT_S)

    return LiveGateway(host, bound, state, stop)


def serve_forever(
    state: GatewayState, host: str, port: int, announce: Callable[[str], None], pid_file: Path | None = None
) -> None:
    """Bind, announce `export HDI_DATABENTO_LIVE=host:port`, serve until SIGTERM/SIGINT."""
    async def main() -> None:
        server = await _serve(state, host, port)
        bound = server.sockets[0].getsockname()[1]
        if pid_file is not None:
            pid_file.parent.mkdir(parents=True, exist_ok=True)
            pid_file.write_text(f"{os.getpid()}\n")
        announce(f"export {ENV_LIVE_GATEWAY}={host}:{bound}")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        async with server:
            await stop.wait()
            server.close()
            for task in [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]:
                task.cancel()

    try:
        asyncio.run(main())
    finally:
        if pid_file is not None:
            pid_file.unlink(missing_ok=True)
