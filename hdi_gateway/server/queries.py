"""Range queries: symbols resolved to instrument ids, records produced in chunks, and the byte-bounded cache
of complete response bodies."""

from __future__ import annotations

import datetime as dt
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hdi_core.dbn import empty_records, schema_dtype, time_field
from hdi_core.errors import HdiError
from hdi_gateway import symbology
from hdi_gateway.server.protocol import (
    BODY_CACHE_BYTES,
    COST_PER_GB,
    DEFAULT_COST_PER_GB,
    NS_PER_DAY,
    SYMBOLOGY_LOOKBACK_DAYS,
    ApiError,
    date_ns,
)
from hdi_gateway.source import DataSource

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
        return round(billable_size / 1e9 * COST_PER_GB.get(self.schema, DEFAULT_COST_PER_GB), 9)


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

