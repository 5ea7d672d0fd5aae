"""Live bars in PostgreSQL (migration 0016): idempotent upserts of closed and open 1 s bars, each announced by
NOTIFY hdi_live_bars with the bar as JSON in the same transaction, and the LISTEN side the API's push endpoint
uses. Works the same on native PostgreSQL and TimescaleDB."""

from __future__ import annotations

import json
import logging
import queue
import select
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np
import psycopg2
import psycopg2.extensions
from psycopg2.extras import execute_values

from hdi_core.units import PRICE_SCALE
from hdi_resources.db.core import Database, url_string
from hdi_resources.settings import redact

log = logging.getLogger("hdi.live")

CHANNEL = "hdi_live_bars"
LISTEN_POLL_S = 1.0  # the listener wakes this often to notice a stop request or a dead connection
RECONNECT_WAIT_S = 2.0
STATEMENT_TIMEOUT_MS = 10_000  # an upsert of a batch's bars never waits longer on a lock or a busy server
QUEUE_LIMIT = 10_000  # a subscriber this far behind loses its oldest updates (it is told so)
_COLUMNS = ("continuous_symbol", "ts", "ts_ns", "trade_date", "session_id", "instrument_id", "raw_symbol",
            "open_fixed", "high_fixed", "low_fixed", "close_fixed", "volume", "trade_count", "vwap", "is_closed")
_UPSERT = (f"INSERT INTO live_bars ({', '.join(_COLUMNS)}) VALUES %s "
           "ON CONFLICT (continuous_symbol, ts) DO UPDATE SET "
           + ", ".join(f"{c} = EXCLUDED.{c}" for c in _COLUMNS[2:]) + ", updated_at = now() "
           # a closed bar is final: a late provisional state never reopens it
           "WHERE NOT live_bars.is_closed OR EXCLUDED.is_closed")


def _dsn(db: Database) -> str:
    """libpq's URL form of the app role's URL (SQLAlchemy's names the driver, libpq refuses that)."""
    return url_string(db.app_url.set(drivername="postgresql"))


def _price(fixed: int) -> str:
    return str(Decimal(int(fixed)) / PRICE_SCALE)


@dataclass(frozen=True)
class LiveBars:
    """The bars of one continuous symbol that one batch changed (BAR_DTYPE arrays of hdi_core.live.bars)."""

    symbol: str
    instrument_id: int
    raw_symbol: str
    bars: np.ndarray
    closed: bool
    sent_ns: int = 0  # the gateway's send time (ts_out) of the trade behind the update


def bar_rows(update: LiveBars) -> list[tuple[Any, ...]]:
    b = update.bars
    days = b["trade_date"].astype("datetime64[D]").astype(object)
    stamps = b["ts_event"].astype("datetime64[ns]").astype("datetime64[us]").astype(object)
    return [(update.symbol, f"{stamps[i].isoformat()}+00:00", int(b["ts_event"][i]), days[i], int(b["session_id"][i]),
             update.instrument_id, update.raw_symbol, int(b["open"][i]), int(b["high"][i]), int(b["low"][i]),
             int(b["close"][i]), int(b["volume"][i]), int(b["trade_count"][i]), float(b["vwap"][i]), update.closed)
            for i in range(len(b))]


def bar_json(row: tuple[Any, ...], sent_ns: int) -> str:
    """The NOTIFY payload: prices as exact decimal text and as fixed-point integers (well under 8000 bytes)."""
    doc = dict(zip(_COLUMNS, row, strict=True))
    doc["trade_date"] = str(doc["trade_date"])
    if not isinstance(doc["ts"], str):  # a row read back: a datetime
        doc["ts"] = doc["ts"].isoformat()
    for name in ("open", "high", "low", "close"):
        doc[name] = _price(doc[f"{name}_fixed"])
    doc["sent_ns"] = int(sent_ns)
    doc["published_ns"] = time.time_ns()
    return json.dumps(doc, separators=(",", ":"))


class LiveBarPublisher:
    """Upserts bar updates and notifies listeners, one transaction per batch, on its own connection."""

    def __init__(self, db: Database) -> None:
        self.db = db
        db.ensure_migrated()
        self._conn: Any = None
        self.published = 0

    def _connection(self) -> Any:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg2.connect(_dsn(self.db), connect_timeout=15,
                                          options=f"-c timezone=UTC -c statement_timeout={STATEMENT_TIMEOUT_MS}",
                                          application_name="hdi-live-capture")
        return self._conn

    def publish(self, updates: Iterable[LiveBars]) -> int:
        rows: list[tuple[Any, ...]] = []
        payloads: list[str] = []
        for update in updates:
            for row in bar_rows(update):
                rows.append(row)
                payloads.append(bar_json(row, update.sent_ns))
        if not rows:
            return 0
        conn = self._connection()
        try:
            with conn.cursor() as cur:
                execute_values(cur, _UPSERT, rows, page_size=1000)
                cur.execute("SELECT pg_notify(%s, p) FROM unnest(%s::text[]) AS p", (CHANNEL, payloads))
            conn.commit()
        except psycopg2.Error:
            conn.rollback()
            self.close()  # the next publish reconnects; the capture logs and retries this batch once
            raise
        self.published += len(rows)
        return len(rows)

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg2.Error:
                pass
            self._conn = None


def read_live_bars(db: Database, symbol: str, trade_date: str | None = None,
                   closed_only: bool = True) -> list[dict[str, Any]]:
    """Stored live bars of one symbol (one trade date when given), by time, as dicts."""
    sql = f"SELECT {', '.join(_COLUMNS)} FROM live_bars WHERE continuous_symbol = %s"
    args: list[Any] = [symbol]
    if trade_date is not None:
        sql += " AND trade_date = %s"
        args.append(trade_date)
    if closed_only:
        sql += " AND is_closed"
    with db.raw() as conn, conn.cursor() as cur:
        cur.execute(sql + " ORDER BY ts", args)
        return [dict(zip(_COLUMNS, row, strict=True)) for row in cur.fetchall()]


def latest_bar_json(db: Database, symbol: str) -> str | None:
    """The newest stored bar of a symbol as the NOTIFY payload would carry it (a new push client's first event)."""
    with db.raw() as conn, conn.cursor() as cur:
        cur.execute(f"SELECT {', '.join(_COLUMNS)} FROM live_bars WHERE continuous_symbol = %s "
                    "ORDER BY ts DESC LIMIT 1", (symbol,))
        row = cur.fetchone()
    return None if row is None else bar_json(tuple(row), 0)


def delete_live_day(db: Database, symbol: str, trade_date: str) -> int:
    with db.raw() as conn, conn.cursor() as cur:
        cur.execute("DELETE FROM live_bars WHERE continuous_symbol = %s AND trade_date = %s", (symbol, trade_date))
        return int(cur.rowcount)


class LiveBarListener:
    """LISTEN hdi_live_bars on one connection, fanned out to per-client queues by symbol (a thread)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._subscribers: dict[str, set[queue.Queue[str]]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.ready = threading.Event()

    def subscribe(self, symbol: str) -> queue.Queue[str]:
        q: queue.Queue[str] = queue.Queue(maxsize=QUEUE_LIMIT)
        with self._lock:
            self._subscribers.setdefault(symbol, set()).add(q)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, daemon=True, name="hdi-live-listen")
                self._thread.start()
        return q

    def unsubscribe(self, symbol: str, q: queue.Queue[str]) -> None:
        with self._lock:
            self._subscribers.get(symbol, set()).discard(q)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=LISTEN_POLL_S * 3)

    def _dispatch(self, payload: str) -> None:
        try:
            symbol = json.loads(payload)["continuous_symbol"]
        except (ValueError, KeyError):
            return
        with self._lock:
            targets = list(self._subscribers.get(symbol, ()))
        for q in targets:
            try:
                q.put_nowait(payload)
            except queue.Full:  # a stuck client: drop its oldest update rather than block everyone
                try:
                    q.get_nowait()
                    q.put_nowait(payload)
                except (queue.Empty, queue.Full):
                    pass

    def _run(self) -> None:
        while not self._stop.is_set():
            conn = None
            try:
                conn = psycopg2.connect(_dsn(self.db), connect_timeout=15,
                                        application_name="hdi-live-listen")
                conn.set_isolation_level(psycopg2.extensions.ISOLATION_LEVEL_AUTOCOMMIT)
                with conn.cursor() as cur:
                    cur.execute(f"LISTEN {CHANNEL}")
                self.ready.set()
                while not self._stop.is_set():
                    if select.select([conn], [], [], LISTEN_POLL_S)[0]:
                        conn.poll()
                        while conn.notifies:
                            self._dispatch(conn.notifies.pop(0).payload)
            except psycopg2.Error as exc:
                self.ready.clear()
                log.warning("live bar listener: %s; reconnecting in %.0f s", redact(str(exc)).strip(),
                            RECONNECT_WAIT_S)
                self._stop.wait(RECONNECT_WAIT_S)
            finally:
                if conn is not None:
                    conn.close()
