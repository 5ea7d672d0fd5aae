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
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np
import psycopg2
import psycopg2.extensions

from hdi_core.units import PRICE_SCALE
from hdi_resources.db.core import Database, url_string
from hdi_resources.settings import redact

log = logging.getLogger("hdi.live")

CHANNEL = "hdi_live_bars"
LISTEN_POLL_S = 1.0  # the listener wakes this often to notice a stop request or a dead connection
RECONNECT_WAIT_S = 2.0
STATEMENT_TIMEOUT_MS = 10_000  # an upsert of a batch's bars never waits longer on a lock or a busy server
QUEUE_LIMIT = 10_000
STOP_WAIT_S = 30.0  # a subscriber this far behind loses its oldest updates (it is told so)
_COLUMNS = ("continuous_symbol", "ts", "ts_ns", "trade_date", "session_id", "instrument_id", "raw_symbol",
            "open_fixed", "high_fixed", "low_fixed", "close_fixed", "volume", "trade_count", "vwap", "is_closed")

_ARRAYS = ("symbol text, ts_ns bigint, ts_text text, day int, sid bigint, iid bigint, raw text, o bigint, "
           "h bigint, l bigint, c bigint, vol bigint, cnt bigint, vwap float8, closed bool, sent bigint")
# One statement per batch: the bars as column arrays, upserted, then one NOTIFY each in order with the bar as
# JSON built here (prices also as exact decimal text, as bar_json writes them)
_PUBLISH = (
    "WITH b AS (SELECT * FROM unnest("
    + ", ".join(f"%({c.split()[0]})s::{c.split()[1]}[]" for c in _ARRAYS.split(", "))
    + ") WITH ORDINALITY AS t(" + ", ".join(c.split()[0] for c in _ARRAYS.split(", ")) + ", ord)), "
    f"up AS (INSERT INTO live_bars ({', '.join(_COLUMNS)}) "
    "SELECT symbol, 'epoch'::timestamptz + (ts_ns / 1000) * interval '1 microsecond', ts_ns, "
    "date '1970-01-01' + day, sid, iid, raw, o, h, l, c, vol, cnt, vwap, closed FROM b "
    "ON CONFLICT (continuous_symbol, ts) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in _COLUMNS[2:]) + ", updated_at = now() "
    "WHERE NOT live_bars.is_closed OR EXCLUDED.is_closed) "
    "SELECT count(pg_notify(%(channel)s, json_build_object("
    "'continuous_symbol', symbol, 'ts', ts_text, 'ts_ns', ts_ns, 'trade_date', (date '1970-01-01' + day)::text, "
    "'session_id', sid, 'instrument_id', iid, 'raw_symbol', raw, 'open_fixed', o, 'high_fixed', h, "
    "'low_fixed', l, 'close_fixed', c, 'volume', vol, 'trade_count', cnt, 'vwap', vwap, 'is_closed', closed, "
    "'open', trim_scale(o::numeric / 1000000000)::text, 'high', trim_scale(h::numeric / 1000000000)::text, "
    "'low', trim_scale(l::numeric / 1000000000)::text, 'close', trim_scale(c::numeric / 1000000000)::text, "
    "'sent_ns', sent, 'published_ns', (extract(epoch FROM clock_timestamp()) * 1000000000)::bigint)::text)) "
    "FROM (SELECT * FROM b ORDER BY ord) q"
)


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
        """Every bar of `updates` upserted and notified in one statement: the rows travel as one array per
        column and PostgreSQL builds each NOTIFY payload (no per-bar work in Python on the capture's path)."""
        parts = [u for u in updates if len(u.bars)]
        if not parts:
            return 0
        parts = _last_state_only(parts)
        if not parts:
            return 0
        b = np.concatenate([u.bars for u in parts])
        counts = [len(u.bars) for u in parts]

        def each(values: list[Any]) -> list[Any]:
            return np.repeat(np.array(values, dtype=object), counts).tolist()

        stamps = b["ts_event"].astype("datetime64[ns]").astype("datetime64[us]")
        whole = bool((stamps.astype(np.int64) % 1_000_000 == 0).all())  # isoformat shows microseconds if any
        params = {
            "channel": CHANNEL, "symbol": each([u.symbol for u in parts]), "ts_ns": b["ts_event"].tolist(),
            "ts_text": [f"{t}+00:00" for t in np.datetime_as_string(stamps, unit="s" if whole else "us")],
            "day": b["trade_date"].tolist(), "sid": b["session_id"].tolist(),
            "iid": each([u.instrument_id for u in parts]), "raw": each([u.raw_symbol for u in parts]),
            "o": b["open"].tolist(), "h": b["high"].tolist(), "l": b["low"].tolist(), "c": b["close"].tolist(),
            "vol": b["volume"].tolist(), "cnt": b["trade_count"].tolist(), "vwap": b["vwap"].tolist(),
            "closed": each([u.closed for u in parts]), "sent": each([int(u.sent_ns) for u in parts]),
        }
        conn = self._connection()
        try:
            with conn.cursor() as cur:
                cur.execute(_PUBLISH, params)
            conn.commit()
        except psycopg2.Error:
            conn.rollback()
            self.close()  # the next publish reconnects; the capture logs and retries this batch once
            raise
        self.published += len(b)
        return len(b)

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg2.Error:
                pass
            self._conn = None


def _last_state_only(parts: list[LiveBars]) -> list[LiveBars]:
    """One row per (symbol, bar) in one statement (an upsert cannot touch a row twice): the latest state wins, and
    a closed state beats any open one (a closed bar is final)."""
    closed: dict[str, set[int]] = {}
    for u in parts:
        if u.closed:
            closed.setdefault(u.symbol, set()).update(u.bars["ts_event"].tolist())
    seen: dict[str, set[int]] = {}
    out: list[LiveBars] = []
    for u in reversed(parts):
        held = seen.setdefault(u.symbol, set())
        blocked = held if u.closed else held | closed.get(u.symbol, set())
        ts = u.bars["ts_event"].tolist()
        keep = np.array([t not in blocked for t in ts], dtype=bool)
        held.update(t for t, k in zip(ts, keep, strict=True) if k)
        if keep.all():
            out.append(u)
        elif keep.any():
            out.append(LiveBars(u.symbol, u.instrument_id, u.raw_symbol, u.bars[keep], u.closed, u.sent_ns))
    return out[::-1]


class BackgroundPublisher:
    """Publishes from its own thread, so the capture never waits for the database: what queues up while one
    statement runs goes out in the next one (the latest state of each bar; closed bars all, in order)."""

    def __init__(self, publisher: LiveBarPublisher, on_published: Callable[[int], None],
                 on_error: Callable[[str], None]) -> None:
        self.publisher = publisher
        self._on_published, self._on_error = on_published, on_error
        self._queue: queue.SimpleQueue[list[LiveBars] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, daemon=True, name="hdi-live-publish")
        self._thread.start()

    def publish(self, updates: list[LiveBars]) -> None:
        self._queue.put(updates)

    def _run(self) -> None:
        while True:
            work = [self._queue.get()]
            while not self._queue.empty():
                work.append(self._queue.get_nowait())
            stop = None in work
            updates = [u for batch in work if batch is not None for u in batch]
            if updates:
                try:
                    self._on_published(self.publisher.publish(updates))
                except Exception as exc:  # noqa: BLE001 - the database may come back; the lake keeps everything
                    self._on_error(redact(" ".join(str(exc).split()))[:300])
            if stop:
                return

    def close(self, timeout_s: float = STOP_WAIT_S) -> None:
        """Publish what is queued, then stop (bounded) and close the connection."""
        self._queue.put(None)
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            log.error("the live bar publisher did not finish within %.0f s", timeout_s)
        self.publisher.close()


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
