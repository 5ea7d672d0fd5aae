"""A small read-only JSON API over the stored market data, through the same read layer as the CLI.

    GET /api/health
    GET /api/symbols                                           the symbol catalogue
    GET /api/market-data/{symbol}/{schema}/stats               row_count, min_ts, max_ts, latest_close, ...
    GET /api/market-data/{symbol}/{schema}/bars?start=&end=&limit=&offset=&tz=&prices=&raw=&adjustment=
        (pages of at most `limit` rows, 10,000 by default: `next_offset` names the next page)
        order flow too: schema delta-1s..delta-1d, footprint-1m, profile, absorption, icebergs (issue 15)
    GET /api/market-data/{symbol}/rolls?start=&end=&tz=&prices=
    GET /api/market-data/{symbol}/chart?start=&end=&bars=      candles, rolls, shifted raw contracts, checks
    GET /chart                                                 the chart page (HTML); /static/... its library
    GET /live/bars?symbol=ES.v.0[&timeout=S]                   live bar updates as server-sent events (api/live.py)

Every answer but the chart page and its static files, errors included, is JSON with its status: 400 bad parameter,
404 unknown symbol / schema / nothing stored in the range, 405 other methods, 413 over-long request, 503 database
unavailable. Request text
never becomes SQL: paths match fixed patterns and every value travels as a bind parameter."""

from __future__ import annotations

import logging
import re
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pyarrow as pa

from hdi_core.errors import HdiError
from hdi_resources.db import Database
from hdi_resources.db import read as reads
from hdi_resources.db.orderflow import ORDERFLOW_SCHEMAS, query_orderflow
from hdi_resources.db.readerrors import BadRequest, DatabaseUnavailable, ReadError
from hdi_resources.db.reconnect import ReconnectingDatabase

from . import live
from .jsonout import RawJson, dumps, table_json

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
DEFAULT_LIMIT = 10_000
MAX_LIMIT = 100_000
ALLOWED = "GET, HEAD, OPTIONS"
_ROUTE = re.compile(r"^/api/market-data/(?P<symbol>[^/]+)/(?P<schema>[^/]+)/(?P<view>stats|bars|rows)/?$")
_ROLLS = re.compile(r"^/api/market-data/(?P<symbol>[^/]+)/rolls/?$")
_CHART = re.compile(r"^/api/market-data/(?P<symbol>[^/]+)/chart/?$")
# the chart page and the only files it loads: a fixed list, so no request path ever reaches the file system
PAGES = {"/chart": "chart.html", "/chart/": "chart.html"}  # `/` stays JSON: every other answer is JSON
STATIC = {"/static/lightweight-charts.standalone.production.js": "application/javascript; charset=utf-8",
          "/static/lightweight-charts.LICENSE": "text/plain; charset=utf-8"}
_WHOLE = re.compile(r"[0-9]{1,12}")
_PARAMS = {"bars": {"start", "end", "limit", "offset", "tz", "prices", "raw", "adjustment"},
           "rolls": {"start", "end", "tz", "prices"}, "stats": {"raw"}, "chart": {"start", "end", "bars"}}


class ApiError(Exception):
    """An answer other than 200: status and a one-line message."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.extra = extra


def _one(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise BadRequest(f"{name} is given {len(values)} times; give it once")
    return values[0]


def _whole(text: str | None, name: str, default: int, high: int, low: int = 1) -> int:
    """Strictly ASCII digits in [low, high]: str.isdigit() accepts '²', which int() refuses."""
    if text is None:
        return default
    if not _WHOLE.fullmatch(text) or not low <= int(text) <= high:
        raise BadRequest(f"{name} {text[:20]!r} is not a whole number from {low} to {high:,}")
    return int(text)


def _flag(text: str | None, name: str) -> bool:
    if text is None or text.lower() in ("", "0", "false", "no"):
        return False
    if text.lower() in ("1", "true", "yes"):
        return True
    raise BadRequest(f"{name} {text[:20]!r} is not true or false")


def _rows(table: pa.Table) -> RawJson:
    return table_json(table)  # column-wise: several times faster than a dict per row


class MarketDataApi:
    """The request logic, separate from HTTP so it can be called directly."""

    def __init__(self, db: Database | ReconnectingDatabase) -> None:
        self.source = db if isinstance(db, ReconnectingDatabase) else ReconnectingDatabase(db)

    def handle(self, path: str, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        try:
            return 200, self._route(path, query)
        except ApiError as exc:
            return exc.status, {"error": str(exc), "status": exc.status, **exc.extra}
        except DatabaseUnavailable:
            return 503, {"error": "database unavailable; try again shortly", "status": 503}
        except ReadError as exc:
            return exc.status, {"error": str(exc), "status": exc.status}
        except HdiError as exc:
            log.warning("read failed: %s", exc)
            return 500, {"error": "the read failed; see the server log", "status": 500}

    def _read(self, fn: Callable[[Database], Any]) -> Any:
        return self.source.run(fn)

    def _route(self, path: str, query: dict[str, list[str]]) -> dict[str, Any]:
        clean = path.rstrip("/")
        if clean == "/api/health":
            return {"status": "ok"}
        if clean == "/api/symbols":
            return self.symbols()
        if chart := _CHART.match(path):
            return self.chart(unquote(chart["symbol"]), query)
        match = _ROUTE.match(path)
        rolls = _ROLLS.match(path) if not match else None
        if not match and not rolls:
            raise ApiError(404, "no such endpoint; use /api/market-data/{symbol}/{schema}/stats or /bars, "
                                "/api/market-data/{symbol}/rolls, /api/symbols; the chart page is /chart")
        view = "rolls" if rolls else ("bars" if match["view"] == "rows" else match["view"])
        unknown = sorted(set(query) - _PARAMS[view])
        if unknown:
            raise BadRequest(f"unknown parameter {unknown[0][:30]!r}; {view} takes "
                             f"{', '.join(sorted(_PARAMS[view])) or 'none'}")
        symbol = unquote((rolls or match)["symbol"])
        if rolls:
            return self.rolls(symbol, query)
        schema = unquote(match["schema"])
        if view == "stats":
            raw = _flag(_one(query, "raw"), "raw")
            return self._read(lambda db: reads.stats(db, symbol, schema, raw=raw))
        return self.bars(symbol, schema, query)

    def symbols(self) -> dict[str, Any]:
        from hdi_resources.db.catalog import TARGETS, entries

        def read(db: Database) -> list[Any]:
            with reads._cursor(db) as cur:
                return entries(cur, db, TARGETS)

        rows = self._read(read)
        return {"count": len(rows), "symbols": [dict(vars(e)) for e in rows]}

    def bars(self, symbol: str, schema: str, query: dict[str, list[str]]) -> dict[str, Any]:
        limit = _whole(_one(query, "limit"), "limit", DEFAULT_LIMIT, MAX_LIMIT)
        offset = _whole(_one(query, "offset"), "offset", 0, reads.MAX_LIMIT, low=0)
        start, end, tz = _one(query, "start"), _one(query, "end"), _one(query, "tz") or "utc"
        prices = _one(query, "prices") or "decimal"
        raw, method = _flag(_one(query, "raw"), "raw"), _one(query, "adjustment")
        if schema.strip().lower() in ORDERFLOW_SCHEMAS:  # order flow: delta-1m, footprint-1m, profile, ...
            table = self._read(lambda db: query_orderflow(db, symbol, schema, start, end, limit=limit + 1,
                                                          offset=offset, tz=tz, prices=prices))
        else:
            table = self._read(lambda db: reads.query(db, symbol, schema, start, end, raw=raw, limit=limit + 1,
                                                      adjustment_method=method, tz=tz, prices=prices,
                                                      offset=offset))
        truncated = table.num_rows > limit
        page = table.slice(0, limit)
        meta = {k.decode()[4:]: v.decode() for k, v in (table.schema.metadata or {}).items()
                if k.startswith(b"hdi.")}
        resolved = {k: meta.get(k) or None for k in ("symbol", "adjustment_method", "instrument_ids", "range")}
        return {"symbol": symbol, "schema": schema, "start": start, "end": end, "time_zone": tz, "prices": prices,
                "resolved": resolved,
                "offset": offset, "count": page.num_rows, "truncated": truncated,
                "next_offset": offset + limit if truncated else None, "rows": _rows(page)}

    def chart(self, symbol: str, query: dict[str, list[str]]) -> dict[str, Any]:
        from .chart import chart_data, to_json

        unknown = sorted(set(query) - _PARAMS["chart"])
        if unknown:
            raise BadRequest(f"unknown parameter {unknown[0][:30]!r}; chart takes bars, end, start")
        start, end, bars = _one(query, "start"), _one(query, "end"), _one(query, "bars")
        return to_json(self._read(lambda db: chart_data(db, symbol, start, end, bars)))

    def rolls(self, symbol: str, query: dict[str, list[str]]) -> dict[str, Any]:
        start, end, tz = _one(query, "start"), _one(query, "end"), _one(query, "tz") or "utc"
        prices = _one(query, "prices") or "decimal"
        table = self._read(lambda db: reads.rolls(db, symbol, start, end, tz=tz, prices=prices))
        return {"symbol": symbol, "count": table.num_rows, "rolls": _rows(table)}


class _Handler(BaseHTTPRequestHandler):
    api: MarketDataApi
    push: live.LivePush
    server_version = "hdi-api/1"
    timeout = 15  # a client that stalls mid-request loses its thread after this many seconds

    def _answer(self, body: bool = True) -> None:
        try:
            parts = urlsplit(self.path)
            query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=False, max_num_fields=50)
        except ValueError:  # a malformed target ("http://[x") or over 50 parameters
            self._send(400, {"error": "malformed request target or query string (at most 50 parameters)",
                             "status": 400}, body=body)
            return
        if parts.path in PAGES or parts.path in STATIC:
            self._send_file(parts.path, body=body)
            return
        if parts.path == live.PATH and body:
            self._push(query)
            return
        try:
            status, payload = self.api.handle(parts.path, query)
        except Exception:  # noqa: BLE001 - whatever broke, the client still gets JSON
            log.exception("request %r failed", self.path[:200])
            status, payload = 500, {"error": "internal error", "status": 500}
        self._send(status, payload, body=body)

    def _push(self, query: dict[str, list[str]]) -> None:
        try:
            symbol, timeout = self.push.parse(query)
        except BadRequest as exc:
            self._send(400, {"error": str(exc), "status": 400})
            return
        self.push.stream(self, symbol, timeout)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._answer()

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(body=False)

    def do_OPTIONS(self) -> None:  # noqa: N802
        self._send(200, {"allow": ALLOWED.split(", ")}, extra={"Allow": ALLOWED})

    def _refuse(self) -> None:
        self._send(405, {"error": f"{self.command} is not allowed: the API is read-only ({ALLOWED})",
                         "status": 405}, extra={"Allow": ALLOWED})

    do_POST = do_PUT = do_DELETE = do_PATCH = do_TRACE = do_CONNECT = _refuse  # noqa: N815

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own errors (bad request line, over-long URL or headers, unknown method) as JSON."""
        if code == HTTPStatus.NOT_IMPLEMENTED:  # an unknown method
            code, message = 405, f"method not allowed: the API is read-only ({ALLOWED})"
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = "error"
        self.close_connection = True
        text = (message or phrase).splitlines()[0][:200] if (message or phrase) else phrase
        self._send(code, {"error": text, "status": code}, extra={"Allow": ALLOWED} if code == 405 else None,
                   body=getattr(self, "command", None) != "HEAD")

    def _send_file(self, path: str, body: bool = True) -> None:
        """The chart page or one of its bundled files (read from the package, never from a request path)."""
        from .chart import static_file

        name = PAGES.get(path) or path.removeprefix("/static/")
        data = static_file(name)
        try:
            self.send_response(200, "OK")
            self.send_header("Content-Type", STATIC.get(path, "text/html; charset=utf-8"))
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            if body:
                self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _send(self, status: int, payload: dict[str, Any], extra: dict[str, str] | None = None,
              body: bool = True) -> None:
        data = dumps(payload).encode()
        if getattr(self, "request_version", "HTTP/0.9") == "HTTP/0.9":  # a bad or 0.9 request line: still a status
            self.request_version = "HTTP/1.0"
        try:
            self.send_response(status, HTTPStatus(status).phrase)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            for key, value in (extra or {}).items():
                self.send_header(key, value)
            self.end_headers()
            if body:
                self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        log.info("%s %s", self.address_string(), format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64
    drain_bytes = 1 << 20  # unread request bytes read away (bounded) so closing does not reset the answer

    def shutdown_request(self, request: Any) -> None:
        """Half-close, then read what the client still sends before closing: a socket closed with unread
        input sends a reset, and the client may lose the answer (a rejected over-long request, say)."""
        try:
            request.shutdown(socket.SHUT_WR)
            request.settimeout(1.0)
            left = self.drain_bytes
            while left > 0 and (chunk := request.recv(65536)):
                left -= len(chunk)
        except OSError:
            pass
        self.close_request(request)


def make_server(db: Database | ReconnectingDatabase, host: str = DEFAULT_HOST,
                port: int = DEFAULT_PORT) -> ThreadingHTTPServer:
    api = MarketDataApi(db)
    handler = type("Handler", (_Handler,), {"api": api, "push": live.LivePush(api.source)})
    try:
        return _Server((host, port), handler)
    except OSError as exc:
        raise HdiError(f"cannot listen on {host}:{port} ({exc.strerror})") from None


@dataclass
class ApiServer:
    """A running API in a background thread (tests, `hdi demo`); `stop()` shuts it down."""

    server: ThreadingHTTPServer
    thread: threading.Thread

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        self.server.RequestHandlerClass.push.stop()  # type: ignore[attr-defined]
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def start_api_thread(db: Database | ReconnectingDatabase, host: str = DEFAULT_HOST, port: int = 0) -> ApiServer:
    server = make_server(db, host, port)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True,
                              name=f"hdi-api-{server.server_address[1]}")
    thread.start()
    return ApiServer(server, thread)
