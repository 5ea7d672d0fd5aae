"""The capture loop: feed bytes -> columnar batches -> gap filter -> lake chunks, continuous series, bars in
PostgreSQL with NOTIFY; reconnects with backoff, resubscribes at each trade-date change, reports health.

One thread does the work (the client itself runs in a relay process that only forwards record bytes), so batches
are handled in arrival order and the gap filter sees what is held exactly.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from hdi_core.config.symbols import load_symbols
from hdi_core.errors import HdiError
from hdi_core.live.dedup import GapFilter
from hdi_core.live.records import RecordBatch, schema_of_rtype, split_records
from hdi_core.live.stream import ContinuousSeries, SeriesUpdate, StreamAccumulator, trade_source
from hdi_resources.databento.live import LiveAuthError, LiveFeed, LiveSubscription
from hdi_resources.db.core import Database
from hdi_resources.db.live import BackgroundPublisher, LiveBarPublisher, LiveBars
from hdi_resources.lake.live import LiveLake
from hdi_resources.settings import redact

from .health import STATUS_EVERY_S, Health, State, write_status

log = logging.getLogger("hdi.live")

READ_WAIT_S = 0.02  # longest wait for bytes before the loop looks at the clock, stalls and flushes
PROGRESS_EVERY_S = 10.0
LAKE_STOP_WAIT_S = 120.0  # the lake writer's last chunks at a stop
UNMAPPED = "_unmapped"  # lake folder for records whose instrument no mapping message named (never expected)


@dataclass
class CaptureConfig:
    products: list[str]
    schemas: list[str]
    gateway: str | None = None  # host:port; None = HDI_DATABENTO_LIVE, else Databento's own
    start_ns: int | None = None  # replay from here on the first connection (None: from now)
    end_ns: int | None = None  # stop once the market clock reaches this (tests, one-session runs)
    flush_interval_s: float = 2.0  # how often records go to the lake as a new chunk file
    stall_after_s: float = 15.0
    heartbeat_s: int = 5
    reconnect_give_up_s: float = 3600.0  # the backoff gives up after this long without a connection
    grace_ns: int | None = None
    compact_on_stop: bool = True
    accumulators: list[StreamAccumulator] = field(default_factory=list)


class CaptureService:
    def __init__(self, config: CaptureConfig, db: Database | None, lake: LiveLake | None = None,
                 health: Health | None = None) -> None:
        cfg = load_symbols()
        unknown = [p for p in config.products if p not in cfg.symbols]
        if unknown:
            raise HdiError(f"unknown product {unknown[0]!r} (configs/symbols.yaml has {', '.join(cfg.symbols)})")
        self.config = config
        self.rtype_schema = schema_of_rtype(config.schemas)
        self.source = trade_source(config.schemas)
        self.symbols = {p: f"{p}.{cfg.symbols[p].roll_rule or cfg.roll_rule}.0" for p in config.products}
        self.calendars = {p: cfg.symbols[p].calendar for p in config.products}
        datasets = {cfg.symbols[p].dataset or cfg.dataset for p in config.products}
        if len(datasets) != 1:
            raise HdiError(f"one live capture serves one dataset; these products span {sorted(datasets)}")
        self.dataset = datasets.pop()
        self.feed = LiveFeed(self.dataset, [LiveSubscription(s, tuple(self.symbols.values()))
                                            for s in config.schemas], config.gateway, heartbeat_s=config.heartbeat_s)
        self.gap = GapFilter()
        self.lake = lake or LiveLake()
        self.publisher = (BackgroundPublisher(LiveBarPublisher(db), self._published, self._publish_failed)
                          if db is not None else None)
        self.health = health or Health(gateway=self.feed.where, products=list(config.products),
                                       schemas=list(config.schemas), stall_after_s=config.stall_after_s)
        self.series: dict[str, ContinuousSeries] = {}
        self.product_of: dict[int, str] = {}  # instrument_id -> product, from the mapping messages
        self.pending: dict[tuple[str, str, str], list[np.ndarray | pa.Table]] = defaultdict(list)
        self.clock_ns: int | None = None
        self.next_resubscribe_ns: int | None = None
        self._resubscribe_at: int | None = None  # a batch crossed the boundary: resubscribe from there
        self.stop_event = threading.Event()
        self._last_flush = self._last_status = self._last_progress = time.monotonic()
        self._stall_logged = False
        self._lake_queue: queue.Queue[list | None] = queue.Queue()
        self._lake_thread = threading.Thread(target=self._lake_writer, daemon=True, name="hdi-live-lake")
        self._lake_thread.start()

    # -- the loop ---------------------------------------------------------------------------------------------
    def run(self) -> None:
        """Capture until stop() (SIGTERM/SIGINT) or the end time; always flushes what it holds."""
        try:
            self._connect(first=True)
            while not self.stop_event.is_set():
                data = self.feed.read(READ_WAIT_S)
                if data:
                    self._handle_bytes(data)
                self._housekeeping()
                if self.config.end_ns is not None and self.clock_ns is not None and self.clock_ns >= self.config.end_ns:
                    log.info("live capture reached its end time")
                    break
            self.health.state = State.STOPPED
        except LiveAuthError as exc:
            self.health.state = State.FAILED
            self.health.errors.append(str(exc))
            raise
        except BaseException:
            self.health.state = State.FAILED
            raise
        finally:
            self.feed.shutdown()
            self._finish()
            write_status(self.health)

    def stop(self) -> None:
        self.stop_event.set()

    def _connect(self, first: bool = False, at_ns: int | None = None) -> None:
        """(Re)connect with backoff: replay from the last record held (a gap fill), or from `at_ns` (a
        resubscription where the continuous mapping changes)."""
        self.health.state = State.CONNECTING if first else State.RECONNECTING
        write_status(self.health)

        def start() -> int | None:
            if at_ns is not None:
                return at_ns
            held = self.gap.resume_from()
            return held if held is not None else self.config.start_ns

        self.feed.open_with_backoff(start, self.config.reconnect_give_up_s, stopping=self.stop_event.is_set)
        if at_ns is not None:
            self.gap.resubscribed(at_ns, self.config.schemas)
        else:
            self.gap.reconnected()
        self.health.state = State.STREAMING
        self._stall_logged = False

    def _housekeeping(self) -> None:
        now = time.monotonic()
        silent = self.feed.seconds_since_data()
        if silent > self.config.stall_after_s:
            if not self._stall_logged:
                log.warning("live feed STALLED: no record or heartbeat for %.0f s (threshold %.0f s)", silent,
                            self.config.stall_after_s)
                self._stall_logged = True
            self.health.state = State.STALLED
        if not self.stop_event.is_set():
            if not self.feed.is_connected() or silent > self.config.stall_after_s + 2 * self.config.heartbeat_s:
                log.warning("live feed lost (%s); reconnecting from the last record held",
                            "disconnected" if not self.feed.is_connected() else "stalled")
                self.health.reconnects += 1
                self._flush_lake()
                self._connect()
            elif self._resubscribe_at is not None:
                at, self._resubscribe_at = self._resubscribe_at, None
                log.info("trade date or UTC date changed: resubscribing from %d so the continuous symbols map "
                         "afresh", at)
                self.health.resubscribes += 1
                self._flush_lake()
                self._compact_before(at)
                self._connect(at_ns=at)
                times = [s.next_resubscribe_ns(at) for s in self.series.values()]
                self.next_resubscribe_ns = min((t for t in times if t is not None), default=None)
        if now - self._last_flush >= self.config.flush_interval_s:
            self._flush_lake()
        if now - self._last_status >= STATUS_EVERY_S:
            self._last_status = now
            self.health.tick(time.time())
            self.health.duplicates_dropped = self.gap.duplicates_dropped
            self.health.late_trades = sum(s.bars.late_trades for s in self.series.values())
            write_status(self.health)
        if now - self._last_progress >= PROGRESS_EVERY_S:
            self._last_progress = now
            h = self.health
            log.info("live capture %s: %d records (%.0f/s), lag %s s, reconnects %d, bars %d", h.state, h.messages,
                     h.message_rate, "?" if h.lag_s is None else f"{h.lag_s:.3f}", h.reconnects, h.bars_published)

    # -- one batch --------------------------------------------------------------------------------------------
    def _handle_bytes(self, data: bytearray) -> None:
        batch, used = split_records(data, self.rtype_schema)
        if used != len(data):  # the client writes whole records; a remainder means a broken stream
            raise HdiError(f"live stream: {len(data) - used} bytes of a cut-off record")
        self.health.last_data_at = time.time()
        if self.health.state == State.STALLED:
            log.info("live feed flowing again")
            self.health.state = State.STREAMING
            self._stall_logged = False
        self.health.heartbeats += batch.heartbeats()
        if len(batch.errors):
            for err in batch.errors["err"]:
                message = redact(err.decode(errors="replace"))
                log.warning("live gateway error: %s", message)
                self.health.errors.append(message)
        self._take_mappings(batch.mappings)
        admitted = RecordBatch(mappings=batch.mappings)
        newest_out = 0
        fed: list[tuple[str, np.ndarray, int | None]] = []
        cut = self.next_resubscribe_ns if self._resubscribe_at is None else None
        for schema, records in batch.records.items():
            if cut is not None and len(records) and int(records["ts_recv"].max()) >= cut:
                # records past the boundary come again from the fresh subscription, mapped afresh
                self._resubscribe_at = cut
                before = records["ts_recv"].astype(np.int64) < cut
                records, batch.ts_out[schema] = records[before], batch.ts_out[schema][before]
            if self._resubscribe_at is not None and cut is None:
                continue  # waiting for the resubscription: this connection's records are replayed by it
            keep = self.gap.admit(schema, records)
            records, ts_out = records[keep], batch.ts_out[schema][keep]
            if not len(records):
                continue
            admitted.records[schema], admitted.ts_out[schema] = records, ts_out
            self.health.count(schema, len(records))
            recv = int(records["ts_recv"].max())
            self.clock_ns = recv if self.clock_ns is None else max(self.clock_ns, recv)
            newest_out = max(newest_out, int(ts_out.max()))
            self._to_lake(schema, records)
            fed.append((schema, records, self.clock_ns))
        if self.clock_ns is None:
            return
        self.health.last_ts_recv_ns = self.clock_ns
        if newest_out:
            self.health.lag_s = time.time() - newest_out / 1e9
        if self.next_resubscribe_ns is None and self.series:
            times = [s.next_resubscribe_ns(self.clock_ns) for s in self.series.values()]
            self.next_resubscribe_ns = min((t for t in times if t is not None), default=None)
        self._publish([s.on_batch(admitted, self.clock_ns) for s in self.series.values()])
        self._feed_accumulators(fed)

    def _feed_accumulators(self, fed: list[tuple[str, np.ndarray, int | None]]) -> None:
        """The order-flow hook, after the bars are out (the push endpoint never waits for it); each schema's
        records with the clock as it stood when they were admitted."""
        if not self.config.accumulators:
            return
        clock = self.clock_ns
        try:
            for schema, records, at in fed:
                self.clock_ns = at
                for accumulator in self.config.accumulators:
                    accumulator.update(schema, records)
        finally:
            self.clock_ns = clock

    def _take_mappings(self, mappings: np.ndarray) -> None:
        for product, symbol in self.symbols.items():
            mine = mappings[mappings["stype_in_symbol"] == symbol.encode()] if len(mappings) else mappings
            if not len(mine):
                continue
            if product not in self.series:
                start = int(self.clock_ns or mine["ts_event"].max() or time.time_ns())
                kwargs = {} if self.config.grace_ns is None else {"grace_ns": self.config.grace_ns}
                self.series[product] = ContinuousSeries(symbol, self.calendars[product], start, self.source,
                                                        **kwargs)
            for instrument in mine["instrument_id"]:
                self.product_of[int(instrument)] = product
            if self.series[product].on_mappings(mine):
                log.info("%s maps to %s (instrument %d)", symbol, self.series[product].raw_symbol,
                         self.series[product].instrument_id or 0)

    def _to_lake(self, schema: str, records: np.ndarray) -> None:
        """Queue records for their (product, trade date) partition: one grouping pass, no per-record work."""
        ids = records["instrument_id"]
        if ids[0] == ids[-1] and (len(ids) < 3 or (ids == ids[0]).all()):
            groups = [(int(ids[0]), records)]
        else:
            uniq, inverse = np.unique(ids, return_inverse=True)
            groups = [(int(u), records[inverse == k]) for k, u in enumerate(uniq)]
        for instrument, mine in groups:
            product = self.product_of.get(instrument, UNMAPPED)
            series = self.series.get(product)
            if series is None:
                self.pending[(schema, product, "unknown")].append(mine)
                continue
            s = series.sessions
            recv = mine["ts_recv"].astype(np.int64)
            row = np.clip(np.searchsorted(s.open_ns, recv[[0, -1]], side="right") - 1, 0, len(s) - 1)
            if s.trade_date[row[0]] == s.trade_date[row[1]]:  # arrival order: one trade date unless it changed
                self.pending[(schema, product, str(s.trade_date[row[0]]))].append(mine)
                continue
            days = s.trade_date[np.clip(np.searchsorted(s.open_ns, recv, side="right") - 1, 0, len(s) - 1)]
            for day in np.unique(days):
                self.pending[(schema, product, str(day))].append(mine[days == day])

    def _publish(self, updates: list[SeriesUpdate | None]) -> None:
        if self.publisher is None:
            return
        bars: list[LiveBars] = []
        for u in updates:
            if u is None:
                continue
            if len(u.closed):
                bars.append(LiveBars(u.symbol, u.instrument_id, u.raw_symbol, u.closed, True, u.sent_ns))
            if len(u.provisional):
                bars.append(LiveBars(u.symbol, u.instrument_id, u.raw_symbol, u.provisional, False, u.sent_ns))
        if bars:
            self.publisher.publish(bars)  # its own thread: the stream never waits for the database

    def _published(self, count: int) -> None:
        self.health.bars_published += count

    def _publish_failed(self, message: str) -> None:
        log.warning("live bars not published: %s", message)
        self.health.errors.append(message)

    # -- lake and the end -----------------------------------------------------------------------------------------
    def _flush_lake(self) -> None:
        """Hand what is held to the lake writer thread: Parquet encoding never stalls the stream."""
        self._last_flush = time.monotonic()
        work = [(key, parts) for key, parts in self.pending.items() if parts]
        self.pending = defaultdict(list)
        if work:
            self._lake_queue.put(work)
        self.health.lake_files = self.lake.files_written

    def _lake_writer(self) -> None:
        while True:
            work = self._lake_queue.get()
            try:
                if work is None:
                    return
                for (schema, product, day), parts in work:
                    data = pa.concat_tables(parts) if isinstance(parts[0], pa.Table) else np.concatenate(parts)
                    self.lake.append(schema, product, day, data)
            except Exception as exc:  # noqa: BLE001 - reported; the replay after a restart refills the lake
                message = redact(" ".join(str(exc).split()))[:300]
                log.error("live lake write failed: %s", message)
                self.health.errors.append(f"lake: {message}")
            finally:
                self._lake_queue.task_done()

    def _lake_settled(self) -> None:
        """Every queued chunk written (before a compaction reads the partitions); bounded like every wait."""
        deadline = time.monotonic() + LAKE_STOP_WAIT_S
        while self._lake_queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)
        if self._lake_queue.unfinished_tasks:
            raise HdiError(f"the live lake writer did not finish within {LAKE_STOP_WAIT_S:.0f} s")

    def _compact_before(self, clock_ns: int) -> None:
        """Compact every partition of a trade date that is over (its product's clock moved past it)."""
        self._lake_settled()
        for schema, product, day in self.lake.partitions():
            series = self.series.get(product)
            if series is None:
                continue
            s = series.sessions
            row = int(np.searchsorted(s.open_ns, clock_ns, side="right")) - 1
            if row >= 0 and str(s.trade_date[row]) > day:
                self.lake.compact(schema, product, day)

    def _finish(self) -> None:
        """Everything held goes to the lake. Only a capture that reached its end time closes its open bars and
        compacts: a stop mid-session leaves the open bar open for the next capture to continue."""
        ended = self.config.end_ns is not None and self.clock_ns is not None and self.clock_ns >= self.config.end_ns
        if ended:
            self._publish([s.flush() for s in self.series.values()])
        for accumulator in self.config.accumulators:  # the order-flow hook's end (hdi_app/live/orderflow.py)
            close = getattr(accumulator, "close", None)
            if callable(close):
                close(ended)
        self._flush_lake()
        self._lake_queue.put(None)
        self._lake_thread.join(timeout=LAKE_STOP_WAIT_S)
        if self._lake_thread.is_alive():
            log.error("the live lake writer did not finish within %.0f s", LAKE_STOP_WAIT_S)
        self.health.lake_files = self.lake.files_written
        if self.config.compact_on_stop and ended:
            for schema, product, day in self.lake.partitions():
                self.lake.compact(schema, product, day)
        if self.publisher is not None:
            self.publisher.close()
        self.health.duplicates_dropped = self.gap.duplicates_dropped
        self.health.late_trades = sum(s.bars.late_trades for s in self.series.values())


def run_capture(config: CaptureConfig, db: Database | None, on_start: Callable[[CaptureService], None] | None = None
                ) -> Health:
    service = CaptureService(config, db)
    if on_start is not None:
        on_start(service)
    service.run()
    return service.health
