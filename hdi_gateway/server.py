"""The local Databento-compatible Historical gateway, for the unmodified `databento.Historical` client.

Speaks HTTPS on 127.0.0.1 (the client forces https), HTTP Basic auth with the API key as user name, and the
/v0/ endpoints of Databento's Historical API (see /work/shared/notes/databento.md). Records come from a
DataSource (the synthetic market or a folder of DBN files) as DBN v3 structured arrays and leave as one
DBN stream, zstd-compressed while it is sent. Faults (429/5xx/dropped streams/slowness) can be injected.

Cost model (deterministic, USD per GB of billable size = record count x DBN v3 record size), chosen to be
in the range of Databento's CME prices: see COST_PER_GB.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pandas as pd

from hdi_core.dbn import SCHEMA_DTYPES, empty_records, iter_stream, metadata_bytes, schema_dtype, time_field
from hdi_core.environment import ENV_CA, ENV_GATEWAY
from hdi_core.errors import HdiError

from . import symbology
from .faults import FaultPlan
from .source import SCHEMAS, DataSource
from .tls import GatewayCertificate, ensure_certificate

log = logging.getLogger("hdi.replay.gateway")

ENV_GATEWAY_KEYS = "HDI_GATEWAY_KEYS"
NS_PER_DAY = 86_400 * 1_000_000_000
DOCS = "https://databento.com/docs/api-reference-historical"
ALL_SYMBOLS = "ALL_SYMBOLS"
STYPES_IN = ("raw_symbol", "instrument_id", "parent", "continuous")
STYPES_OUT = ("instrument_id", "raw_symbol")
SYMBOLOGY_LOOKBACK_DAYS = 14  # continuous rules rank by previous sessions' volume / open interest
# Complete response bodies kept per request, bounded by bytes: a repeated request streams stored bytes,
# as Databento serves from storage rather than by producing the data again.
BODY_CACHE_BYTES = int(os.environ.get("HDI_REPLAY_BODY_CACHE_MB", "384")) << 20
RECORD_COUNT_CACHE_SIZE = 4096
# Records produced to count a request (get_cost before get_range) are kept for the get_range that follows.
RECENT_RECORDS_BYTES = int(os.environ.get("HDI_REPLAY_RECENT_RECORDS_MB", "384")) << 20
WRITE_SIZE = 8 << 20  # bytes per socket write (and per HTTP chunk) when sending a stored body

# USD per GB (1e9 bytes) of billable size, by schema; deterministic stand-ins for Databento's CME rates.
COST_PER_GB: dict[str, float] = {
    "mbo": 1.80,
    "mbp-10": 2.40,
    "mbp-1": 1.00,
    "tbbo": 0.80,
    "trades": 0.50,
    "bbo-1s": 0.60,
    "bbo-1m": 0.60,
    "cbbo-1s": 0.60,
    "cbbo-1m": 0.60,
    "ohlcv-1s": 0.40,
    "ohlcv-1m": 0.40,
    "ohlcv-1h": 0.40,
    "ohlcv-1d": 0.40,
    "statistics": 0.25,
    "status": 0.10,
    "definition": 0.10,
    "imbalance": 0.50,
}
_DEFAULT_COST_PER_GB = 0.50
# Calls that can be hit by injected faults (the client's data and metadata calls).
_FAULTABLE = {
    "timeseries.get_range",
    "metadata.get_cost",
    "metadata.get_record_count",
    "metadata.get_billable_size",
    "metadata.get_dataset_range",
    "metadata.list_datasets",
    "metadata.list_schemas",
    "symbology.resolve",
}


class ApiError(Exception):
    """An HTTP error answered with Databento's JSON error shape."""

    def __init__(self, status: int, case: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.case = case
        self.message = message
        self.headers = headers or {}

    def body(self) -> bytes:
        detail = {"case": self.case, "message": self.message, "status_code": self.status, "docs": DOCS}
        return json.dumps({"detail": detail}).encode()


def _bad(field_name: str, message: str, case: str = "param_invalid") -> ApiError:
    return ApiError(422, case, f"Invalid value for '{field_name}': {message}")


# ---------------------------------------------------------------------------------------------- parsing

_INT = re.compile(r"^-?\d+$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_time(field_name: str, value: str) -> tuple[int, int]:
    """(ns since epoch UTC, resolution in ns) of a Databento start/end: int ns, ISO date or ISO datetime."""
    text = value.strip()
    if _INT.match(text):
        return int(text), 1
    try:
        ts = pd.Timestamp(text)
    except (ValueError, TypeError):
        raise _bad(field_name, f"'{value}' is not an ISO 8601 date/datetime or integer nanoseconds") from None
    if ts is pd.NaT:
        raise _bad(field_name, f"'{value}' is not a time")
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    if _DATE.match(text):
        return int(ts.value), NS_PER_DAY
    clock = re.split(r"[T ]", text, maxsplit=1)[1] if re.search(r"[T ]", text) else ""
    clock = re.split(r"[Z+\-]", clock, maxsplit=1)[0]
    parts = clock.split(":")
    if len(parts) == 1:
        resolution = 3_600 * 10**9
    elif len(parts) == 2:
        resolution = 60 * 10**9
    elif "." in parts[2]:
        resolution = 10 ** max(0, 9 - len(parts[2].split(".")[1]))
    else:
        resolution = 10**9
    return int(ts.value), resolution


def parse_date(field_name: str, value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value.strip()[:10])
    except ValueError:
        raise _bad(field_name, f"'{value}' is not an ISO 8601 date") from None


def iso_ns(ns: int) -> str:
    """Databento's timestamp text: 2020-12-28T00:00:00.000000000Z."""
    seconds, frac = divmod(int(ns), 10**9)
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}Z"


def ns_date(ns: int) -> dt.date:
    return dt.date(1970, 1, 1) + dt.timedelta(days=int(ns) // NS_PER_DAY)


def date_ns(day: dt.date) -> int:
    return (day - dt.date(1970, 1, 1)).days * NS_PER_DAY


# ---------------------------------------------------------------------------------------------- symbology


def resolve_symbols(
    source: DataSource,
    dataset: str,
    symbols: list[str],
    stype_in: str,
    stype_out: str,
    start_date: dt.date,
    end_date: dt.date,
) -> tuple[dict[str, list[dict[str, str]]], list[str]]:
    """Databento's resolve shape {symbol: [{"d0","d1","s"}]} and the symbols not found."""
    start_ns, end_ns = date_ns(start_date), date_ns(end_date)
    instruments = source.instruments(dataset, start_ns - SYMBOLOGY_LOOKBACK_DAYS * NS_PER_DAY, end_ns)
    daily = source.daily_stats(dataset, start_date - dt.timedelta(days=SYMBOLOGY_LOOKBACK_DAYS), end_date)
    try:
        result, not_found = symbology.resolve(
            instruments, daily, symbols, stype_in, stype_out, start_date, end_date
        )
    except HdiError as exc:
        raise ApiError(422, "symbology_invalid", str(exc)) from None
    return dict(result), list(not_found)


# ---------------------------------------------------------------------------------------------- queries


@dataclass
class RangeQuery:
    """A validated timeseries/metadata request; its records are produced one UTC day at a time."""

    source: DataSource
    dataset: str
    schema: str
    start_ns: int
    end_ns: int
    symbols: list[str]
    stype_in: str
    stype_out: str
    limit: int | None
    instrument_ids: np.ndarray | None = None  # None: every instrument
    intervals: list[tuple[int, int, int]] | None = None  # (d0_ns, d1_ns, instrument_id) a symbol selects
    mappings: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    not_found: list[str] = field(default_factory=list)
    empty: bool = False
    scan_start_ns: int | None = None  # where the source's data begins; days before it are skipped

    def chunks(self) -> Iterator[np.ndarray]:
        """The selected records in time order, one UTC day per chunk: bounded memory, and the response
        can be compressed and sent while later days are still being produced."""
        if self.empty or self.end_ns <= self.start_ns:
            return
        remaining = self.limit
        first_day = max(self.start_ns, self.scan_start_ns or 0) // NS_PER_DAY * NS_PER_DAY
        for day in range(first_day, self.end_ns, NS_PER_DAY):
            lo, hi = max(day, self.start_ns), min(day + NS_PER_DAY, self.end_ns)
            records = self.source.records(self.dataset, self.schema, self.instrument_ids, lo, hi)
            if len(records) and self.intervals is not None:
                # Each symbol selects its mapped instrument per day (continuous rolls, parent listings).
                mask = symbology.record_mask(
                    records["instrument_id"], records[time_field(self.schema)], self.intervals
                )
                records = records[np.asarray(mask, dtype=bool)]
            if remaining is not None:
                records = records[:remaining]
                remaining -= len(records)
            if len(records):
                yield records
            if remaining == 0:
                return

    @property
    def key(self) -> tuple[Any, ...]:
        """Everything that decides the records and the metadata head of this query's response."""
        return (
            self.dataset,
            self.schema,
            self.start_ns,
            self.end_ns,
            tuple(self.symbols),
            self.stype_in,
            self.stype_out,
            self.limit,
        )

    @property
    def records(self) -> np.ndarray:
        parts = list(self.chunks())
        return np.concatenate(parts) if parts else empty_records(self.schema)

    @property
    def record_count(self) -> int:
        return sum(len(part) for part in self.chunks())

    @property
    def billable_size(self) -> int:
        return self.record_count * schema_dtype(self.schema).itemsize

    def cost_of(self, billable_size: int) -> float:
        return round(billable_size / 1e9 * COST_PER_GB.get(self.schema, _DEFAULT_COST_PER_GB), 9)


class BodyCache:
    """LRU of complete response bodies bounded by their total bytes (a body over the bound is not kept)."""

    def __init__(self, max_bytes: int = BODY_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._bodies: OrderedDict[tuple[Any, ...], bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> bytes | None:
        with self._lock:
            body = self._bodies.get(key)
            if body is not None:
                self._bodies.move_to_end(key)
            return body

    def put(self, key: tuple[Any, ...], body: bytes) -> None:
        if len(body) > self.max_bytes:
            return
        with self._lock:
            old = self._bodies.pop(key, None)
            self._bytes -= len(old) if old is not None else 0
            self._bodies[key] = body
            self._bytes += len(body)
            while self._bytes > self.max_bytes:
                _, dropped = self._bodies.popitem(last=False)
                self._bytes -= len(dropped)


class GatewayApp:
    """The request logic, independent of the HTTP plumbing."""

    def __init__(
        self, source: DataSource, keys: Iterable[str] | None = None, faults: FaultPlan | None = None
    ):
        self.source = source
        self.keys = {k for k in keys if k} if keys is not None else None
        self.faults = faults
        self._lock = threading.Lock()
        self._datasets: list[str] | None = None
        self.bodies = BodyCache()
        self._record_counts: OrderedDict[tuple[Any, ...], int] = OrderedDict()
        self._recent_records: tuple[tuple[Any, ...], list[np.ndarray]] | None = None

    # -------------------------------------------------------------------- records and bodies

    def record_count(self, query: RangeQuery) -> int:
        """The query's record count, remembered per request (sources are fixed for the app's life)."""
        with self._lock:
            count = self._record_counts.get(query.key)
        if count is not None:
            return count
        count, kept_bytes = 0, 0
        kept: list[np.ndarray] | None = []
        for part in query.chunks():
            count += len(part)
            if kept is not None:
                kept.append(part)
                kept_bytes += part.nbytes
                if kept_bytes > RECENT_RECORDS_BYTES:
                    kept = None
        self._remember_count(query, count)
        if kept is not None:
            with self._lock:
                self._recent_records = (query.key, kept)
        return count

    def _take_recent_records(self, query: RangeQuery) -> list[np.ndarray] | None:
        with self._lock:
            recent, self._recent_records = self._recent_records, None
        return recent[1] if recent is not None and recent[0] == query.key else None

    def _remember_count(self, query: RangeQuery, count: int) -> None:
        with self._lock:
            self._record_counts[query.key] = count
            self._record_counts.move_to_end(query.key)
            while len(self._record_counts) > RECORD_COUNT_CACHE_SIZE:
                self._record_counts.popitem(last=False)

    def body_chunks(self, query: RangeQuery, head: bytes, compress: bool) -> Iterator[bytes | memoryview]:
        """Chunks of the response body: the stored body in large slices, or a fresh body.

        A fresh body is produced whole first (its exact size goes into the zstd frame header), compressed
        while it is sent, and kept once completely produced; a client that hangs up leaves nothing cached.
        """
        key = (query.key, compress)
        body = self.bodies.get(key)
        if body is not None:
            view = memoryview(body)
            return (view[i : i + WRITE_SIZE] for i in range(0, len(view), WRITE_SIZE))
        return self._fresh_body(query, head, compress, key)

    def _fresh_body(
        self, query: RangeQuery, head: bytes, compress: bool, key: tuple[Any, ...]
    ) -> Iterator[bytes]:
        parts = self._take_recent_records(query)
        if parts is None:
            parts = list(query.chunks())
            self._remember_count(query, sum(len(part) for part in parts))
        size = len(head) + sum(part.nbytes for part in parts)
        kept: list[bytes] | None = []
        kept_bytes = 0
        for chunk in iter_stream(head, parts, compress=compress, content_size=size):
            if kept is not None:
                kept.append(chunk)
                kept_bytes += len(chunk)
                if kept_bytes > self.bodies.max_bytes:
                    kept = None
            yield chunk
        del parts
        if kept is not None:
            self.bodies.put(key, b"".join(kept))

    # -------------------------------------------------------------------- auth and faults

    def check_auth(self, header: str | None) -> None:
        if not header or not header.lower().startswith("basic "):
            raise ApiError(
                401,
                "auth_no_api_key_provided",
                "No API key was provided. Pass your API key as the username of HTTP Basic auth.",
                {"WWW-Authenticate": 'Basic realm="Databento"'},
            )
        try:
            user = base64.b64decode(header.split(None, 1)[1]).decode().split(":", 1)[0]
        except (ValueError, UnicodeDecodeError):
            raise ApiError(401, "auth_malformed_credentials", "Malformed HTTP Basic credentials.") from None
        if not user:
            raise ApiError(401, "auth_no_api_key_provided", "No API key was provided.")
        accepted = user in self.keys if self.keys is not None else user.startswith("db-")
        if not accepted:
            raise ApiError(401, "auth_invalid_api_key", "The API key is invalid or has been revoked.")

    # -------------------------------------------------------------------- validation helpers

    def datasets(self) -> list[str]:
        if self._datasets is None:
            self._datasets = list(self.source.datasets())
        return self._datasets

    def _dataset(self, params: dict[str, str]) -> str:
        dataset = params.get("dataset", "").strip()
        if not dataset:
            raise ApiError(422, "param_missing", "Missing required parameter 'dataset'.")
        if dataset not in self.datasets():
            raise ApiError(
                422,
                "dataset_invalid",
                f"Invalid value for 'dataset': '{dataset}' is not available "
                f"(available: {', '.join(self.datasets())}).",
            )
        return dataset

    def _schema(self, params: dict[str, str], dataset: str) -> str:
        schema = params.get("schema", "trades").strip()
        if schema not in SCHEMA_DTYPES:
            raise _bad("schema", f"unknown schema '{schema}'", "schema_invalid")
        if schema not in self.source.schemas(dataset):
            raise _bad(
                "schema", f"schema '{schema}' is not available for dataset '{dataset}'", "schema_unavailable"
            )
        return schema

    @staticmethod
    def _choice(params: dict[str, str], name: str, default: str, allowed: Iterable[str]) -> str:
        value = params.get(name, default).strip() or default
        allowed = tuple(allowed)
        if value not in allowed:
            raise _bad(name, f"'{value}' is not one of {', '.join(allowed)}")
        return value

    @staticmethod
    def _symbols(params: dict[str, str]) -> list[str]:
        raw = params.get("symbols", ALL_SYMBOLS)
        symbols = [s.strip() for s in raw.split(",") if s.strip()]
        if not symbols or ALL_SYMBOLS in symbols:
            return [ALL_SYMBOLS]
        if len(symbols) > 2000:
            raise _bad("symbols", f"at most 2000 symbols per request, got {len(symbols)}")
        return symbols

    def range_query(self, params: dict[str, str], stype_out_field: bool = True) -> RangeQuery:
        dataset = self._dataset(params)
        schema = self._schema(params, dataset)
        stype_in = self._choice(params, "stype_in", "raw_symbol", STYPES_IN)
        stype_out = (
            self._choice(params, "stype_out", "instrument_id", ("instrument_id",))
            if stype_out_field
            else "instrument_id"
        )
        if "start" not in params or not params["start"].strip():
            raise ApiError(422, "param_missing", "Missing required parameter 'start'.")
        start_ns, resolution = parse_time("start", params["start"])
        end_text = params.get("end", "").strip()
        end_ns = parse_time("end", end_text)[0] if end_text else start_ns + resolution
        if end_ns <= start_ns:
            raise _bad(
                "end", f"end ({iso_ns(end_ns)}) must be after start ({iso_ns(start_ns)})", "end_before_start"
            )
        limit_text = params.get("limit", "").strip()
        limit: int | None = None
        if limit_text:
            if not _INT.match(limit_text) or int(limit_text) < 0:
                raise _bad("limit", f"'{limit_text}' is not a non-negative integer")
            limit = int(limit_text) or None
        symbols = self._symbols(params)
        if stype_in == "instrument_id" and symbols != [ALL_SYMBOLS]:
            bad = [s for s in symbols if not s.isdigit()]
            if bad:
                raise _bad("symbols", f"'{bad[0]}' is not an instrument ID")

        # Databento serves what it holds: the end is clamped to the dataset's available end.
        available_start, available_end, _ = self.source.dataset_range(dataset)
        end_ns = min(end_ns, max(available_end, start_ns)) if available_end else end_ns
        query = RangeQuery(
            self.source,
            dataset,
            schema,
            start_ns,
            end_ns,
            symbols,
            stype_in,
            stype_out,
            limit,
            scan_start_ns=available_start,
        )
        if end_ns <= start_ns:
            return query
        start_date = ns_date(start_ns)
        end_date = ns_date(end_ns - 1) + dt.timedelta(days=1)
        if symbols == [ALL_SYMBOLS]:
            if stype_in != "instrument_id":
                query.mappings, _ = resolve_symbols(
                    self.source, dataset, [ALL_SYMBOLS], "raw_symbol", "instrument_id", start_date, end_date
                )
            return query
        query.mappings, query.not_found = resolve_symbols(
            self.source, dataset, symbols, stype_in, "instrument_id", start_date, end_date
        )
        query.intervals = symbology.intervals_ns([iv for ivs in query.mappings.values() for iv in ivs])
        query.empty = not query.intervals
        if query.intervals:
            query.instrument_ids = np.unique(np.array([iv[2] for iv in query.intervals], dtype=np.uint32))
        return query

    # -------------------------------------------------------------------- endpoints

    def list_datasets(self, params: dict[str, str]) -> Any:
        start = params.get("start_date", "").strip()
        end = params.get("end_date", "").strip()
        out = []
        for dataset in self.datasets():
            lo, hi, _ = self.source.dataset_range(dataset)
            if start and hi and hi <= date_ns(parse_date("start_date", start)):
                continue
            if end and lo >= date_ns(parse_date("end_date", end)):
                continue
            out.append(dataset)
        return out

    def list_schemas(self, params: dict[str, str]) -> Any:
        held = set(self.source.schemas(self._dataset(params)))
        return [s for s in SCHEMAS if s in held] + sorted(held - set(SCHEMAS))

    def get_dataset_range(self, params: dict[str, str]) -> Any:
        dataset = self._dataset(params)
        lo, hi, by_schema = self.source.dataset_range(dataset)
        return {
            "start": iso_ns(lo),
            "end": iso_ns(hi),
            "schema": {s: {"start": iso_ns(a), "end": iso_ns(b)} for s, (a, b) in by_schema.items()},
        }

    def get_record_count(self, params: dict[str, str]) -> Any:
        return self.record_count(self.range_query(params, stype_out_field=False))

    def get_billable_size(self, params: dict[str, str]) -> Any:
        query = self.range_query(params)
        return self.record_count(query) * schema_dtype(query.schema).itemsize

    def get_cost(self, params: dict[str, str]) -> Any:
        query = self.range_query(params)
        return query.cost_of(self.record_count(query) * schema_dtype(query.schema).itemsize)

    def resolve(self, params: dict[str, str]) -> Any:
        dataset = self._dataset(params)
        stype_in = self._choice(params, "stype_in", "raw_symbol", STYPES_IN)
        stype_out = self._choice(params, "stype_out", "instrument_id", STYPES_OUT)
        if "start_date" not in params:
            raise ApiError(422, "param_missing", "Missing required parameter 'start_date'.")
        start_date = parse_date("start_date", params["start_date"])
        end_text = params.get("end_date", "").strip()
        end_date = parse_date("end_date", end_text) if end_text else start_date + dt.timedelta(days=1)
        if end_date <= start_date:
            raise _bad(
                "end_date",
                f"end_date ({end_date}) must be after start_date ({start_date})",
                "end_before_start",
            )
        symbols = self._symbols(params)
        result, not_found = resolve_symbols(
            self.source, dataset, symbols, stype_in, stype_out, start_date, end_date
        )
        status, message = (0, "OK")
        if not_found:
            status, message = (1, "Partially resolved") if result else (2, "Not found")
        return {
            "result": result,
            "symbols": symbols,
            "stype_in": stype_in,
            "stype_out": stype_out,
            "start_date": start_date.isoformat(),
            "end_date": end_date.isoformat(),
            "partial": [],
            "not_found": not_found,
            "message": message,
            "status": status,
        }

    ROUTES: dict[str, tuple[str, str]] = {
        "/v0/timeseries.get_range": ("POST", "timeseries.get_range"),
        "/v0/metadata.get_cost": ("POST", "metadata.get_cost"),
        "/v0/metadata.get_record_count": ("POST", "metadata.get_record_count"),
        "/v0/metadata.get_billable_size": ("POST", "metadata.get_billable_size"),
        "/v0/metadata.get_dataset_range": ("GET", "metadata.get_dataset_range"),
        "/v0/metadata.list_datasets": ("GET", "metadata.list_datasets"),
        "/v0/metadata.list_schemas": ("GET", "metadata.list_schemas"),
        "/v0/symbology.resolve": ("POST", "symbology.resolve"),
    }

    def json_handler(self, name: str) -> Callable[[dict[str, str]], Any]:
        return {
            "metadata.get_cost": self.get_cost,
            "metadata.get_record_count": self.get_record_count,
            "metadata.get_billable_size": self.get_billable_size,
            "metadata.get_dataset_range": self.get_dataset_range,
            "metadata.list_datasets": self.list_datasets,
            "metadata.list_schemas": self.list_schemas,
            "symbology.resolve": self.resolve,
        }[name]


# ---------------------------------------------------------------------------------------------- HTTP


class _DropConnection(Exception):
    """Injected `reset` fault: the connection is cut after part of the body."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hdi-replay-gateway/1.0"
    sys_version = ""
    server: _GatewayHTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        self._dispatch("POST")

    # -------------------------------------------------------------------- plumbing

    def _params(self, method: str) -> dict[str, str]:
        query = urlsplit(self.path).query
        params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
        if method == "POST":
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            params.update({k: v[-1] for k, v in parse_qs(body, keep_blank_values=True).items()})
        return params

    def _headers_common(self, request_id: str) -> dict[str, str]:
        return {"Databento-Request-Id": request_id, "Databento-Api-Version": "0", "Connection": "close"}

    def _send_head(self, status: int, length: int, content_type: str, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str]) -> None:
        self._send_head(status, len(body), content_type, headers)
        self.wfile.write(body)

    def _send_error(self, err: ApiError, request_id: str) -> None:
        self._send(
            err.status, err.body(), "application/json", {**self._headers_common(request_id), **err.headers}
        )

    def _dispatch(self, method: str) -> None:
        app = self.server.app
        request_id = uuid.uuid4().hex
        self.close_connection = True
        try:
            route = self.ROUTE_TABLE.get(urlsplit(self.path).path)
            if route is None:
                raise ApiError(404, "not_found", f"No such endpoint: {urlsplit(self.path).path}")
            expected, name = route
            params = self._params(method)
            app.check_auth(self.headers.get("Authorization"))
            if method != expected:
                raise ApiError(405, "method_not_allowed", f"{name} takes {expected}, not {method}")
            fault = app.faults.draw() if app.faults is not None and name in _FAULTABLE else None
            if fault == "slow":
                time.sleep(app.faults.slow_s if app.faults else 0)
            elif fault == "429":
                raise ApiError(
                    429,
                    "rate_limit_exceeded",
                    "Too many requests; retry after the delay given.",
                    {"Retry-After": str(app.faults.retry_after if app.faults else 1)},
                )
            elif fault in ("500", "502", "503", "504"):
                messages = {
                    "500": "Internal server error.",
                    "502": "Bad gateway.",
                    "503": "Service temporarily unavailable.",
                    "504": "The remote gateway timed out.",
                }
                raise ApiError(
                    int(fault), "internal_error" if fault == "500" else "service_unavailable", messages[fault]
                )
            if name == "timeseries.get_range":
                self._get_range(app, params, request_id, drop=fault == "reset")
            else:
                body = json.dumps(app.json_handler(name)(params)).encode()
                if fault == "reset":
                    self._send_partial(200, body, "application/json", self._headers_common(request_id))
                self._send(200, body, "application/json", self._headers_common(request_id))
        except ApiError as err:
            self._send_error(err, request_id)
        except _DropConnection:
            self._drop()
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, TimeoutError):
            self.close_connection = True
        except HdiError as err:
            self._send_error(ApiError(500, "internal_error", str(err)), request_id)
        except Exception as err:  # a bug in the gateway: answer 500 and keep serving
            log.exception("gateway request failed")
            self._send_error(ApiError(500, "internal_error", f"{type(err).__name__}: {err}"), request_id)

    ROUTE_TABLE = GatewayApp.ROUTES

    def _get_range(self, app: GatewayApp, params: dict[str, str], request_id: str, drop: bool) -> None:
        compression = app._choice(params, "compression", "zstd", ("zstd", "none"))
        app._choice(params, "encoding", "dbn", ("dbn",))
        query = app.range_query(params)
        head = metadata_bytes(
            query.dataset,
            query.schema,
            query.start_ns,
            query.end_ns,
            query.symbols,
            query.stype_in,
            query.stype_out,
            symbology.to_dbn_mappings(query.mappings),
            query.limit,
            not_found=query.not_found,
        )
        headers = {
            **self._headers_common(request_id),
            "Databento-Schema": query.schema,
            "Databento-Dataset": query.dataset,
        }
        chunks = app.body_chunks(query, head, compress=compression == "zstd")
        content_type = "application/octet-stream"
        if drop:
            self._send_partial(200, b"".join(chunks), content_type, headers)
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        write = self.wfile.write
        for chunk in chunks:
            if len(chunk):
                write(b"%x\r\n" % len(chunk))
                write(chunk)
                write(b"\r\n")
        write(b"0\r\n\r\n")

    def _send_partial(self, status: int, body: bytes, content_type: str, headers: dict[str, str]) -> None:
        """Headers announcing the whole body, then half of it, then the connection drops."""
        self._send_head(status, len(body), content_type, headers)
        self.wfile.write(body[: max(1, len(body) // 2)])
        raise _DropConnection

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class _GatewayHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: GatewayApp, context: ssl.SSLContext | None) -> None:
        self.app = app
        self.context = context
        super().__init__(address, _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        # TLS handshake in the worker thread, so one slow client cannot stall accept().
        if self.context is not None:
            request.settimeout(60)
            try:
                request = self.context.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                request.close()
                return
        try:
            super().finish_request(request, client_address)
        finally:
            try:
                request.close()
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection error from %s", client_address, exc_info=True)


# ---------------------------------------------------------------------------------------------- running


def accepted_keys_from_env(keys: Iterable[str] | None = None) -> list[str] | None:
    """Keys from --key options, else HDI_GATEWAY_KEYS (comma-separated), else None (any 'db-' key)."""
    listed = [k.strip() for k in (keys or []) if k and k.strip()]
    if not listed:
        listed = [k.strip() for k in os.environ.get(ENV_GATEWAY_KEYS, "").split(",") if k.strip()]
    return listed or None


@dataclass
class Gateway:
    """A running gateway: its URL, the CA bundle clients must trust, and how to stop it."""

    url: str
    ca_path: Path
    port: int
    _stop: Callable[[], None]
    pid: int | None = None

    def stop(self) -> None:
        self._stop()

    def client_env(self) -> dict[str, str]:
        """Environment for clients: HDI's own settings plus the CA bundle for requests and aiohttp."""
        ca = str(self.ca_path)
        return {ENV_GATEWAY: self.url, ENV_CA: ca, "REQUESTS_CA_BUNDLE": ca, "SSL_CERT_FILE": ca}

    def __enter__(self) -> Gateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def make_server(
    source: DataSource,
    host: str = "127.0.0.1",
    port: int = 0,
    faults: FaultPlan | None = None,
    keys: Iterable[str] | None = None,
    cert_dir: Path | None = None,
) -> tuple[_GatewayHTTPServer, GatewayCertificate]:
    """Bind the HTTPS server (not yet serving) with this HDI_HOME's gateway certificate."""
    cert = ensure_certificate(cert_dir)
    app = GatewayApp(source, keys=keys, faults=faults)
    server = _GatewayHTTPServer((host, port), app, context=cert.server_context())
    return server, cert


def start_gateway_thread(
    source: DataSource,
    faults: FaultPlan | None = None,
    keys: Iterable[str] | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    cert_dir: Path | None = None,
) -> Gateway:
    """Serve `source` from a background thread of this process; `stop()` shuts it down."""
    server, cert = make_server(source, host, port, faults, keys, cert_dir)
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.1},
        name=f"hdi-gateway-{server.server_address[1]}",
        daemon=True,
    )
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)

    return Gateway(
        url=f"https://{host}:{server.server_address[1]}",
        ca_path=cert.bundle_path,
        port=server.server_address[1],
        _stop=stop,
    )


def start_gateway_process(
    args: Iterable[str] = (), env: dict[str, str] | None = None, timeout_s: float = 120.0
) -> Gateway:
    """Run `hdi replay serve ARGS` as a child process; returns once it printed its export lines."""
    command = [sys.executable, "-c", "from hdi_app.cli import main; main()", "replay", "serve", *args]
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})}
    )
    exports: dict[str, str] = {}
    deadline = time.monotonic() + timeout_s

    def kill() -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()

    assert proc.stdout is not None
    while len(exports) < 2:
        if time.monotonic() > deadline:
            kill()
            raise HdiError(f"gateway process did not start within {timeout_s:.0f} s")
        line = proc.stdout.readline()
        if not line:
            err = proc.stderr.read() if proc.stderr else ""
            kill()
            raise HdiError(
                f"gateway process exited: {err.strip().splitlines()[-1] if err.strip() else 'no output'}"
            )
        match = re.match(r"export (\w+)=(\S+)", line.strip())
        if match:
            exports[match[1]] = match[2]
    url = exports[ENV_GATEWAY]
    return Gateway(
        url=url, ca_path=Path(exports[ENV_CA]), port=int(url.rsplit(":", 1)[1]), _stop=kill, pid=proc.pid
    )


def serve_forever(
    source: DataSource,
    host: str,
    port: int,
    faults: FaultPlan | None,
    keys: Iterable[str] | None,
    announce: Callable[[str], None],
) -> None:
    """Bind, announce the export lines, serve until killed (SIGTERM/SIGINT stop it cleanly)."""
    server, cert = make_server(source, host, port, faults, keys)
    url = f"https://{host}:{server.server_address[1]}"
    announce(f"export {ENV_GATEWAY}={url}")
    announce(f"export {ENV_CA}={cert.bundle_path}")

    def on_signal(signum: int, frame: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
