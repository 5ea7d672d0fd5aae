"""A small read-only JSON API over the stored market data, for dashboards (seed 003).

    GET /api/market-data/{symbol}/{schema}/stats          row_count, min_ts, max_ts, latest_close, ...
    GET /api/market-data/{symbol}/{schema}/bars?start=&end=&limit=   rows in [start, end)

Unknown symbol or schema: 404 with a JSON error; bad dates or limit: 422. Request text never becomes SQL:
the path is matched against fixed patterns and every value travels as a bind parameter (Database.query /
Database.stats, and one parameterized lookup of the symbol's instrument ids)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import threading
from dataclasses import dataclass
from decimal import Decimal
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pyarrow as pa

from hdi_core.errors import HdiError
from hdi_resources.db import Database
from hdi_resources.db.read import BAR_SCHEMAS, SCHEMAS
from hdi_resources.settings import redact

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
DEFAULT_LIMIT = 10_000
MAX_LIMIT = 100_000
_ROUTE = re.compile(r"^/api/market-data/(?P<symbol>[^/]+)/(?P<schema>[^/]+)/(?P<view>stats|bars)/?$")
_SYMBOL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_CONTINUOUS = re.compile(r"^[A-Za-z0-9]+\.[cnv]\.\d+$")
_SCHEMA_ALIASES = {"definition": "definitions", "trade": "trades", "stats": "statistics"}


class ApiError(Exception):
    """An answer other than 200: status and a one-line message."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.extra = extra


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)  # presentation: prices leave fixed point only here
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def _parse_time(value: str | None, name: str) -> dt.datetime | None:
    if value is None or value == "":
        return None
    try:
        stamp = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(422, f"{name}: {value!r} is not an ISO date or timestamp (e.g. 2024-05-01)") from None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)


class MarketDataApi:
    """The request logic, separate from HTTP so it can be called directly."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- routing ---------------------------------------------------------------------------------------
    def handle(self, path: str, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        try:
            return 200, self._route(path, query)
        except ApiError as exc:
            return exc.status, {"error": str(exc), "status": exc.status, **exc.extra}
        except HdiError as exc:
            return 500, {"error": redact(str(exc)), "status": 500}

    def _route(self, path: str, query: dict[str, list[str]]) -> dict[str, Any]:
        if path.rstrip("/") == "/api/health":
            return {"status": "ok"}
        match = _ROUTE.match(path)
        if not match:
            raise ApiError(404, f"no such endpoint {path!r}; use /api/market-data/{{symbol}}/{{schema}}/stats "
                                f"or /bars")
        symbol = unquote(match["symbol"])
        schema = self._schema(unquote(match["schema"]))
        if not _SYMBOL.match(symbol):
            raise ApiError(404, f"unknown symbol {symbol!r}")
        if match["view"] == "stats":
            return self.stats(symbol, schema)
        return self.bars(symbol, schema, query)

    @staticmethod
    def _schema(text: str) -> str:
        schema = _SCHEMA_ALIASES.get(text.lower(), text.lower())
        if schema not in SCHEMAS:
            raise ApiError(404, f"unknown schema {text!r}", schemas=list(SCHEMAS))
        return schema

    # -- symbol resolution -----------------------------------------------------------------------------
    def _continuous(self, symbol: str, schema: str) -> bool:
        """True for a continuous symbol (ES.v.0) asked for bars: those live in continuous_bars."""
        if not (_CONTINUOUS.match(symbol) and schema in BAR_SCHEMAS):
            return False
        with self.db.raw() as conn, conn.cursor() as cur:
            cur.execute("SELECT 1 FROM continuous_bars WHERE continuous_symbol = %s LIMIT 1", (symbol,))
            if cur.fetchone() is None:
                raise ApiError(404, f"unknown symbol {symbol!r} (no continuous bars stored)")
        return True

    def instrument_ids(self, symbol: str) -> list[int]:
        """A raw symbol, product root or instrument id -> instrument ids (definitions, then vendor mappings)."""
        if symbol.isdigit():
            return [int(symbol)]
        self.db.ensure_migrated()
        with self.db.raw() as conn, conn.cursor() as cur:
            cur.execute(
                """SELECT instrument_id FROM definitions_data
                       WHERE raw_symbol = %s OR (asset = %s AND instrument_class = 'F')
                   UNION SELECT instrument_id FROM vendor_symbols WHERE symbol = %s""",
                (symbol, symbol, symbol),
            )
            ids = sorted({int(row[0]) for row in cur.fetchall()})
        if not ids:
            raise ApiError(404, f"unknown symbol {symbol!r}")
        return ids

    # -- views -----------------------------------------------------------------------------------------
    def stats(self, symbol: str, schema: str) -> dict[str, Any]:
        if self._continuous(symbol, schema):
            return {k: _json_value(v) for k, v in self.db.stats(symbol, schema).items()}
        parts = [self.db.stats(str(i), schema, raw=True) for i in self.instrument_ids(symbol)]
        filled = [p for p in parts if p["row_count"]]
        result: dict[str, Any] = {
            "row_count": sum(p["row_count"] for p in filled),
            "min_ts": min((p["min_ts"] for p in filled), key=dt.datetime.fromisoformat, default=None),
            "max_ts": max((p["max_ts"] for p in filled), key=dt.datetime.fromisoformat, default=None),
            "latest_close": None,
            "latest_ts": None,
            "symbol": symbol,
            "timeframe": parts[0]["timeframe"],
            "vendor": parts[0]["vendor"],
        }
        if filled:
            latest = max(filled, key=lambda p: dt.datetime.fromisoformat(p["latest_ts"]))
            result["latest_close"] = _json_value(latest["latest_close"])
            result["latest_ts"] = latest["latest_ts"]
        else:
            result["message"] = "No data ingested yet"
        return result

    def bars(self, symbol: str, schema: str, query: dict[str, list[str]]) -> dict[str, Any]:
        start = _parse_time(query.get("start", [None])[-1], "start")
        end = _parse_time(query.get("end", [None])[-1], "end")
        if start and end and start >= end:
            raise ApiError(422, f"start {start.isoformat()} must be before end {end.isoformat()}")
        limit_text = query.get("limit", [str(DEFAULT_LIMIT)])[-1]
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_LIMIT:
            raise ApiError(422, f"limit: {limit_text!r} is not a whole number from 1 to {MAX_LIMIT}")
        limit = int(limit_text)
        if self._continuous(symbol, schema):
            table = self.db.query(symbol, schema, start, end, limit=limit + 1)
        else:
            parts = [self.db.query(str(i), schema, start, end, raw=True, limit=limit + 1)
                     for i in self.instrument_ids(symbol)]
            table = pa.concat_tables(parts) if parts else pa.table({})
            time_col = "ts" if "ts" in table.column_names else "ts_event"
            if table.num_rows:
                table = table.sort_by([(time_col, "ascending"), ("instrument_id", "ascending")])
        truncated = table.num_rows > limit
        rows = [{k: _json_value(v) for k, v in row.items()} for row in table.slice(0, limit).to_pylist()]
        return {
            "symbol": symbol,
            "schema": schema,
            "start": start.isoformat() if start else None,
            "end": end.isoformat() if end else None,
            "count": len(rows),
            "truncated": truncated,
            "rows": rows,
        }


class _Handler(BaseHTTPRequestHandler):
    api: MarketDataApi
    server_version = "hdi-api/1"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        parts = urlsplit(self.path)
        status, payload = self.api.handle(parts.path, parse_qs(parts.query, keep_blank_values=True))
        self._send(status, payload)

    def _refuse(self) -> None:
        self._send(405, {"error": f"{self.command} is not allowed: the API is read-only", "status": 405})

    do_POST = do_PUT = do_DELETE = do_PATCH = _refuse  # noqa: N815

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload, default=str).encode()
        self.send_response(status, HTTPStatus(status).phrase)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        log.info("%s %s", self.address_string(), format % args)


def make_server(db: Database, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> ThreadingHTTPServer:
    handler = type("Handler", (_Handler,), {"api": MarketDataApi(db)})
    try:
        server = ThreadingHTTPServer((host, port), handler)
    except OSError as exc:
        raise HdiError(f"cannot listen on {host}:{port} ({exc.strerror})") from None
    server.daemon_threads = True
    return server


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
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def start_api_thread(db: Database, host: str = DEFAULT_HOST, port: int = 0) -> ApiServer:
    server = make_server(db, host, port)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True,
                              name=f"hdi-api-{server.server_address[1]}")
    thread.start()
    return ApiServer(server, thread)
