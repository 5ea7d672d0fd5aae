"""Order flow in `hdi live capture`: the capture's accumulator hook (CaptureConfig.accumulators) feeding each
product's hdi_core.live.flow.ProductFlow with the admitted records (arrival order, after the gap filter, so a
replay after a dropped connection is never counted twice), and publishing what closes:

- the live lake: `lake/live/orderflow-<kind>/symbol=ES/trade_date=D/` (kinds: hdi_core.live.flow.KINDS),
  compacted when the capture reaches its end time;
- PostgreSQL: the order-flow tables as source 'live' (idempotent upserts; the open session's provisional profile
  too, overwritten as it grows), never over a historical row. History replaces them after the session
  (hdi_assets/live/orderflow.py).

Publishing runs on its own thread (Parquet and SQL never stall the stream); a database error is logged and
counted, and the lake keeps everything.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from hdi_core.config.orderflow import orderflow_params
from hdi_core.config.symbols import load_symbols
from hdi_core.live.flow import BOOK_SCHEMAS, FlowResults, ProductFlow
from hdi_resources.db import orderflow as rows
from hdi_resources.lake.live import LiveLake
from hdi_resources.settings import redact

if TYPE_CHECKING:
    from hdi_resources.db.core import Database

    from .service import CaptureService

log = logging.getLogger("hdi.live")

STOP_WAIT_S = 120.0
LAKE_PREFIX = "orderflow-"


def lake_kind(kind: str) -> str:
    """The live lake folder of one result kind (e.g. orderflow-delta-1m)."""
    return f"{LAKE_PREFIX}{kind}"


class LiveOrderFlow:
    """The hook: `update(schema, records)` per admitted batch, `close(ended)` when the capture stops."""

    def __init__(self, service: CaptureService, db: Database | None, lake: LiveLake | None = None) -> None:
        self.service = service
        self.db = db
        self.lake = lake or LiveLake()
        cfg = load_symbols()
        self.ticks = {p: cfg.symbols[p].tick_size_fixed for p in service.symbols}
        self.flows: dict[str, ProductFlow] = {}
        self.errors = 0
        self.rows_published = 0
        self._queue: queue.Queue[tuple[str, FlowResults] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._publisher, daemon=True, name="hdi-live-orderflow")
        self._thread.start()

    def _flow(self, product: str) -> ProductFlow | None:
        series = self.service.series.get(product)
        if series is None or series.instrument_id is None:
            return None
        if product not in self.flows:
            self.flows[product] = ProductFlow(series.sessions, self.ticks[product], orderflow_params(product))
        return self.flows[product]

    def update(self, schema: str, records: np.ndarray) -> None:
        trades_from = self.service.source
        if schema != trades_from and schema not in BOOK_SCHEMAS:
            return
        clock = int(self.service.clock_ns or 0)
        for product, series in self.service.series.items():
            flow = self._flow(product)
            if flow is None:
                continue
            out = FlowResults()
            if schema == trades_from:
                mine = records["instrument_id"] == series.instrument_id
                if schema == "mbo":
                    mine &= records["action"] == b"T"
                trades = records[mine] if not mine.all() else records
                out.merge(flow.on_trades(trades["ts_event"], trades["price"], trades["size"], trades["side"], clock))
            if schema in BOOK_SCHEMAS:  # this product's contracts only (another calendar must not cut its dates)
                ids = [i for i, p in self.service.product_of.items() if p == product]
                book = records[np.isin(records["instrument_id"], ids)] if len(self.service.series) > 1 else records
                if len(book):
                    out.merge(flow.on_book(schema, book, int(series.instrument_id), series.raw_symbol))
            if out:
                self._queue.put((product, out))

    def close(self, ended: bool) -> None:
        """At the capture's stop: an ended capture closes every open bar, date and detector; then the publisher
        finishes its queue (bounded wait) and the lake partitions are compacted."""
        if ended:
            for product, flow in self.flows.items():
                self._queue.put((product, flow.flush()))
        self._queue.put(None)
        self._thread.join(timeout=STOP_WAIT_S)
        if self._thread.is_alive():
            log.error("the order-flow publisher did not finish within %.0f s", STOP_WAIT_S)
        elif ended:
            for schema, product, day in self.lake.partitions():
                self.lake.compact(schema, product, day)
        late = sum(f.late_trades for f in self.flows.values())
        log.info("order flow: %d rows published, %d late trades left out, %d publishing errors",
                 self.rows_published, late, self.errors)

    # -- publishing (its own thread) ------------------------------------------------------------------------------
    def _publisher(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            product, results = item
            try:
                self._publish(product, results)
            except Exception as exc:  # noqa: BLE001 - reported; the capture goes on
                self.errors += 1
                message = redact(" ".join(str(exc).split()))[:300]
                log.warning("order flow not published: %s", message)
                self.service.health.errors.append(f"orderflow: {message}")

    def _publish(self, product: str, results: FlowResults) -> None:
        flow = self.flows[product]
        symbol = self.service.symbols[product]
        if results.provisional is not None and self.db is not None:  # before any final profile of this batch
            levels = results.provisional[0]
            self.rows_published += rows.upsert_live_orderflow(
                self.db, "orderflow_profile", symbol, rows.profile_rows(levels, rows.LIVE_ADJUSTMENT),
                levels["trade_date"].to_numpy().astype("datetime64[D]"))
        for kind, parts in results.closed.items():
            table = pa.concat_tables(parts)
            dates = _trade_dates(flow, kind, table)
            for day in np.unique(dates):
                self.lake.append(lake_kind(kind), product, str(day), table.filter(pa.array(dates == day)))
            if self.db is not None and kind != "profile-summary":
                name, data = rows.result_rows(kind, table)
                self.rows_published += rows.upsert_live_orderflow(self.db, name, symbol, data, dates)


def _trade_dates(flow: ProductFlow, kind: str, table: pa.Table) -> np.ndarray:
    """Each row's trade date (datetime64[D]): its own column, else (footprint) its bar's session."""
    if "trade_date" in table.column_names:
        return table["trade_date"].to_numpy().astype("datetime64[D]")
    ts = table["ts_event"].to_numpy()
    return flow.dates[np.searchsorted(flow.day_open, ts, "right") - 1]


def attach(service: Any, db: Database | None) -> LiveOrderFlow:
    """Put live order flow on a capture service (before it runs)."""
    flow = LiveOrderFlow(service, db)
    service.config.accumulators.append(flow)
    return flow
