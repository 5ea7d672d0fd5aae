"""Symbol mappings of DBN metadata: which instrument an input symbol meant on which UTC dates."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class MappingInterval:
    """One input symbol resolved to one instrument over [start_date, end_date) (UTC dates)."""

    start_date: dt.date
    end_date: dt.date
    symbol: str  # instrument_id (as text) or raw symbol, per stype_out


@dataclass(frozen=True)
class SymbolMapping:
    """An input symbol and its intervals, in the shape `databento_dbn.Metadata(mappings=...)` reads."""

    raw_symbol: str
    intervals: list[MappingInterval]


Mappings = dict[str, list[MappingInterval]]


def as_date(value: Any) -> dt.date:
    """A date from a date, a datetime or an ISO-8601 string (its first ten characters)."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def interval_from(item: MappingInterval | Mapping[str, Any]) -> MappingInterval:
    """An interval from DBN metadata ({start_date, end_date, symbol}) or a resolve answer ({d0, d1, s})."""
    if isinstance(item, MappingInterval):
        return item
    return MappingInterval(
        as_date(item.get("start_date", item.get("d0"))),
        as_date(item.get("end_date", item.get("d1"))),
        str(item.get("symbol", item.get("s"))),
    )


def mappings_from(raw: Mapping[str, Iterable[MappingInterval | Mapping[str, Any]]] | None) -> Mappings:
    """{input symbol: [MappingInterval]} from `Metadata.mappings` or a symbology.resolve `result`."""
    return {str(symbol): [interval_from(iv) for iv in intervals] for symbol, intervals in (raw or {}).items()}


def merge_mappings(parts: Iterable[Mapping[str, Iterable[MappingInterval | Mapping[str, Any]]]]) -> Mappings:
    """Per input symbol, the parts' intervals in date order, touching/overlapping same-symbol ones merged."""
    collected: Mappings = {}
    for part in parts:
        for input_symbol, intervals in mappings_from(part).items():
            collected.setdefault(input_symbol, []).extend(intervals)
    merged: Mappings = {}
    for input_symbol, intervals in collected.items():
        out: list[MappingInterval] = []
        for iv in sorted(intervals, key=lambda i: (i.start_date, i.end_date)):
            if out and out[-1].symbol == iv.symbol and iv.start_date <= out[-1].end_date:
                last = out[-1]
                out[-1] = MappingInterval(last.start_date, max(last.end_date, iv.end_date), last.symbol)
            else:
                out.append(iv)
        merged[input_symbol] = out
    return merged


def mapping_objects(mappings: Mapping[str, Sequence[Any]] | Sequence[Any] | None) -> list[Any]:
    """Metadata(mappings=...) objects from {symbol: [intervals]} in any shape `mappings_from` reads
    (a sequence of ready mapping objects passes through)."""
    if not mappings:
        return []
    if not isinstance(mappings, Mapping):
        return list(mappings)
    return [SymbolMapping(symbol, intervals) for symbol, intervals in mappings_from(mappings).items()]
