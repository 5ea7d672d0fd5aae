"""What one `get_range` becomes: date chunks (the unit priced, fetched and cached) and what it returns."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa

from hdi_core.dbn import MappingInterval
from hdi_core.errors import HdiError
from hdi_core.units import DAY_NS, NS

TimeLike = pd.Timestamp | dt.datetime | dt.date | str | int
SymbolsLike = Iterable[str | int] | str | int | None


@dataclass
class FetchResult:
    """What `get_range` returns: the rows as one Arrow table plus where they came from and what they cost."""

    table: pa.Table
    mappings: dict[str, list[MappingInterval]]
    cost_usd: float
    bytes: int  # compressed bytes received over the network (cache hits count 0)
    from_cache: int  # chunks served from the disk cache
    chunks: int  # chunks the request was split into
    cache_files: list[str] = field(default_factory=list)

    @property
    def fetched(self) -> int:
        """Chunks that went over the network."""
        return self.chunks - self.from_cache


@dataclass(frozen=True)
class ChunkRequest:
    """One `timeseries.get_range` call: the unit that is priced, fetched and cached."""

    dataset: str
    schema: str
    symbols: tuple[str, ...]
    stype_in: str
    stype_out: str
    start_ns: int
    end_ns: int
    limit: int | None

    def cache_key(self, source: str) -> str:
        """Hash of everything that decides the bytes the server sends (and which server sends them)."""
        payload = json.dumps(
            {
                "source": source,
                "dataset": self.dataset,
                "schema": self.schema,
                "symbols": sorted(self.symbols),
                "stype_in": self.stype_in,
                "stype_out": self.stype_out,
                "start": self.start_ns,
                "end": self.end_ns,
                "limit": self.limit,
            },
            sort_keys=True,
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:32]

    def label(self) -> str:
        """`GLBX.MDP3 trades ES.v.0 2024-01-01..2024-02-01`: names a request in logs and errors."""
        return (
            f"{self.dataset} {self.schema} {','.join(self.symbols)} "
            f"{format_ts(self.start_ns)}..{format_ts(self.end_ns)}"
        )

    def spanning(self, last: ChunkRequest) -> ChunkRequest:
        """This request stretched to end where `last` ends (one call for a run of consecutive chunks)."""
        return ChunkRequest(self.dataset, self.schema, self.symbols, self.stype_in, self.stype_out,
                            self.start_ns, last.end_ns, self.limit)


def to_ns(value: TimeLike) -> int:
    """Any start/end form the Databento client takes, as int ns since the epoch (naive means UTC)."""
    if isinstance(value, int):
        return value
    ts = pd.Timestamp(value)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return int(ts.value)


def format_ts(ns: int) -> str:
    """A date when the instant is midnight UTC, else full ISO-8601."""
    ts = pd.Timestamp(ns, unit="ns", tz="UTC")
    return ts.date().isoformat() if ns % DAY_NS == 0 else ts.isoformat()


def iso(ns: int) -> str:
    """The wire form of a start/end: ISO-8601 with an explicit UTC offset."""
    return pd.Timestamp(ns, unit="ns", tz="UTC").isoformat()


def ns_date(ns: int) -> dt.date:
    return dt.datetime.fromtimestamp(ns / NS, dt.UTC).date()


def normalise_symbols(symbols: SymbolsLike, stype_in: str) -> tuple[str, ...]:
    """Symbols as the client sends them: comma lists split, raw symbols upper-cased, None = ALL_SYMBOLS."""
    if symbols is None:
        return ("ALL_SYMBOLS",)
    if isinstance(symbols, str):
        items = symbols.split(",")
    elif isinstance(symbols, int):
        items = [str(symbols)]
    else:
        items = [str(s) for s in symbols]
    cleaned = [s.strip() for s in items if str(s).strip()]
    if not cleaned:
        raise HdiError("no symbols given; pass at least one symbol (or None for ALL_SYMBOLS)")
    if stype_in == "raw_symbol":
        cleaned = [s.upper() for s in cleaned]
    return tuple(cleaned)


def split_chunks(start_ns: int, end_ns: int, interval_days: int) -> list[tuple[int, int]]:
    """[start, end) cut into consecutive spans of `interval_days` (the last one shorter)."""
    if end_ns <= start_ns:
        raise HdiError(f"empty date range: start {format_ts(start_ns)} is not before end {format_ts(end_ns)}")
    step = max(1, interval_days) * DAY_NS
    bounds = list(range(start_ns, end_ns, step)) + [end_ns]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def consecutive_runs(chunks: list[ChunkRequest]) -> list[ChunkRequest]:
    """Each run of chunks that follow one another, as one request spanning the run."""
    runs: list[list[ChunkRequest]] = []
    for chunk in chunks:
        if runs and runs[-1][-1].end_ns == chunk.start_ns:
            runs[-1].append(chunk)
        else:
            runs.append([chunk])
    return [run[0].spanning(run[-1]) for run in runs]
