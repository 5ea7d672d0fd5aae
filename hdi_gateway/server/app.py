"""The gateway's request logic, independent of the HTTP plumbing: auth, range queries and the JSON endpoints."""

from __future__ import annotations

import base64
import datetime as dt
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from hdi_core.dbn import SCHEMA_DTYPES, iter_stream, schema_dtype
from hdi_gateway import symbology
from hdi_gateway.faults import FaultPlan
from hdi_gateway.server.protocol import (
    ALL_SYMBOLS,
    INT_PATTERN,
    RECENT_RECORDS_BYTES,
    RECORD_COUNT_CACHE_SIZE,
    STYPES_IN,
    STYPES_OUT,
    WRITE_SIZE,
    ApiError,
    bad_param,
    date_ns,
    iso_ns,
    ns_date,
    parse_date,
    parse_time,
)
from hdi_gateway.server.queries import BodyCache, RangeQuery, resolve_symbols
from hdi_gateway.source import SCHEMAS, DataSource


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
            raise bad_param("schema", f"unknown schema '{schema}'", "schema_invalid")
        if schema not in self.source.schemas(dataset):
            raise bad_param(
                "schema", f"schema '{schema}' is not available for dataset '{dataset}'", "schema_unavailable"
            )
        return schema

    @staticmethod
    def _choice(params: dict[str, str], name: str, default: str, allowed: Iterable[str]) -> str:
        value = params.get(name, default).strip() or default
        allowed = tuple(allowed)
        if value not in allowed:
            raise bad_param(name, f"'{value}' is not one of {', '.join(allowed)}")
        return value

    @staticmethod
    def _symbols(params: dict[str, str]) -> list[str]:
        raw = params.get("symbols", ALL_SYMBOLS)
        symbols = [s.strip() for s in raw.split(",") if s.strip()]
        if not symbols or ALL_SYMBOLS in symbols:
            return [ALL_SYMBOLS]
        if len(symbols) > 2000:
            raise bad_param("symbols", f"at most 2000 symbols per request, got {len(symbols)}")
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
            raise bad_param(
                "end", f"end ({iso_ns(end_ns)}) must be after start ({iso_ns(start_ns)})", "end_before_start"
            )
        limit_text = params.get("limit", "").strip()
        limit: int | None = None
        if limit_text:
            if not INT_PATTERN.match(limit_text) or int(limit_text) < 0:
                raise bad_param("limit", f"'{limit_text}' is not a non-negative integer")
            limit = int(limit_text) or None
        symbols = self._symbols(params)
        if stype_in == "instrument_id" and symbols != [ALL_SYMBOLS]:
            bad = [s for s in symbols if not s.isdigit()]
            if bad:
                raise bad_param("symbols", f"'{bad[0]}' is not an instrument ID")

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
            raise bad_param(
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
