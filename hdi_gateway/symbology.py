"""Databento's symbology as pure functions over listed instruments and per-day volume / open interest.

`resolve` answers like `symbology.resolve`: `{input_symbol: [{"d0", "d1", "s"}]}` with UTC dates,
d0 inclusive, d1 exclusive, consecutive days with the same output merged. A contract is listed on UTC
day X when it was activated before X ends and had not expired when X began
(so it is still listed on its expiration day).
Continuous symbols `ROOT.{c|v|n}.N` rank the contracts of ROOT listed on day X:
c by expiration, v by the previous trade date's volume, n by the previous trade date's open interest
(ties and contracts without statistics fall back to expiration order); N = 0 is the lead.
The previous trade date of X is the latest date in `daily` strictly before X.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from hdi_core.errors import HdiError
from hdi_gateway.source import Instrument

DAY_NS = 86_400 * 1_000_000_000
STYPES_IN = ("raw_symbol", "instrument_id", "parent", "continuous")
STYPES_OUT = ("raw_symbol", "instrument_id")
ALL_SYMBOLS = "ALL_SYMBOLS"
CONTINUOUS_RE = re.compile(r"^(?P<root>[A-Z0-9]+)\.(?P<rule>[cvn])\.(?P<rank>\d+)$")
PARENT_RE = re.compile(r"^(?P<root>[A-Z0-9]+)\.FUT$")
# how many days before the first requested day `daily` must start so every day has a previous trade date
STATS_LOOKBACK_DAYS = 7


@dataclass(frozen=True)
class MappingInterval:
    """One interval of a DBN metadata symbol mapping (databento_dbn.metadata.MappingInterval protocol)."""

    start_date: dt.date
    end_date: dt.date
    symbol: str


@dataclass(frozen=True)
class SymbolMapping:
    """The mappings of one input symbol (databento_dbn.metadata.SymbolMapping protocol)."""

    raw_symbol: str
    intervals: tuple[MappingInterval, ...]


def parse_continuous(symbol: str) -> tuple[str, str, int] | None:
    """("ES", "v", 0) for "ES.v.0"; None when `symbol` is not a continuous symbol."""
    match = CONTINUOUS_RE.match(symbol)
    return (match["root"], match["rule"], int(match["rank"])) if match else None


def _root_of(instrument: Instrument) -> str:
    return instrument.parent.split(".", 1)[0]


def _day_bounds(days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    start = days.astype("datetime64[ns]").astype(np.int64)
    return start, start + DAY_NS


def _listed_matrix(instruments: Sequence[Instrument], days: np.ndarray) -> np.ndarray:
    """listed[i, d]: instrument i is listed on UTC day d."""
    day_start, day_end = _day_bounds(days)
    activation = np.array([i.activation_ns for i in instruments], dtype=np.int64)[:, None]
    expiration = np.array([i.expiration_ns for i in instruments], dtype=np.int64)[:, None]
    return (activation < day_end[None, :]) & (expiration > day_start[None, :])


def _previous_stats(
    daily: pd.DataFrame, instruments: Sequence[Instrument], days: np.ndarray, column: str
) -> np.ndarray:
    """value[i, d] of `column` for instrument i on the latest trade date before day d (-1 when unknown)."""
    out = np.full((len(instruments), len(days)), -1, dtype=np.int64)
    if daily is None or daily.empty or not len(instruments):
        return out
    stat_days = pd.to_datetime(pd.Series(daily["date"])).to_numpy().astype("datetime64[D]")
    trade_dates = np.unique(stat_days)
    prev = np.searchsorted(trade_dates, days, side="left") - 1  # latest trade date strictly before each day
    row_of = {iid: k for k, iid in enumerate(i.instrument_id for i in instruments)}
    rows = np.array([row_of.get(int(x), -1) for x in daily["instrument_id"].to_numpy()], dtype=np.int64)
    table = np.full((len(instruments), len(trade_dates)), -1, dtype=np.int64)
    known = rows >= 0
    table[rows[known], np.searchsorted(trade_dates, stat_days[known])] = daily[column].to_numpy()[known]
    has_prev = prev >= 0
    out[:, has_prev] = table[:, prev[has_prev]]
    return out


def _continuous_choice(
    instruments: Sequence[Instrument], listed: np.ndarray, score: np.ndarray | None, rank: int
) -> np.ndarray:
    """Per day, the index of the instrument holding `rank` (-1 if fewer are listed).

    Order: highest score first (None = calendar order), then nearest expiration, then instrument id.
    """
    expiration = np.array([i.expiration_ns for i in instruments], dtype=np.int64)
    iid = np.array([i.instrument_id for i in instruments], dtype=np.int64)
    choice = np.full(listed.shape[1], -1, dtype=np.int64)
    for d in range(listed.shape[1]):
        candidates = np.flatnonzero(listed[:, d])
        if rank >= candidates.size:
            continue
        keys = [iid[candidates], expiration[candidates]]
        if score is not None:
            keys.append(-score[candidates, d])
        choice[d] = candidates[np.lexsort(keys)[rank]]
    return choice


def _intervals(days: np.ndarray, outputs: list[str | None]) -> list[dict]:
    """Merge consecutive days with the same output into Databento's {d0, d1, s} intervals."""
    result: list[dict] = []
    run_start = 0
    for k in range(1, len(outputs) + 1):
        if k == len(outputs) or outputs[k] != outputs[run_start]:
            if outputs[run_start] is not None:
                result.append({"d0": str(days[run_start]), "d1": str(days[k - 1] + 1),
                               "s": outputs[run_start]})
            run_start = k
    return result


def _output(instrument: Instrument, stype_out: str) -> str:
    return str(instrument.instrument_id) if stype_out == "instrument_id" else instrument.raw_symbol


def _per_instrument(
    chosen: list[int], instruments: Sequence[Instrument], listed: np.ndarray, days: np.ndarray, stype_out: str
) -> list[dict]:
    """Intervals of every chosen instrument over the days it is listed, ordered by start then symbol."""
    entries: list[dict] = []
    for i in chosen:
        value = _output(instruments[i], stype_out)
        entries.extend(_intervals(days, [value if on else None for on in listed[i]]))
    entries.sort(key=lambda e: (e["d0"], e["s"]))
    return entries


def resolve(
    instruments: list[Instrument],
    daily: pd.DataFrame,
    symbols: list[str],
    stype_in: str,
    stype_out: str,
    start_date: dt.date,
    end_date: dt.date,
) -> tuple[dict[str, list[dict]], list[str]]:
    """Databento's symbology.resolve over [start_date, end_date): (result, not_found).

    `daily` (columns date, instrument_id, volume, open_interest) must cover the trade date before
    start_date for the v and n rules (STATS_LOOKBACK_DAYS before start_date is always enough).
    """
    if stype_in not in STYPES_IN:
        raise HdiError(f"stype_in {stype_in!r} is not supported; use one of {', '.join(STYPES_IN)}")
    if stype_out not in STYPES_OUT:
        raise HdiError(f"stype_out {stype_out!r} is not supported; use one of {', '.join(STYPES_OUT)}")
    if end_date <= start_date:
        raise HdiError(f"end_date {end_date} must be after start_date {start_date}")
    days = np.arange(np.datetime64(start_date, "D"), np.datetime64(end_date, "D"))
    listed = _listed_matrix(instruments, days) if instruments else np.zeros((0, len(days)), dtype=bool)
    in_range = [k for k in range(len(instruments)) if listed[k].any()]
    if list(symbols) == [ALL_SYMBOLS]:
        symbols = _all_symbols([instruments[k] for k in in_range], stype_in)
    result: dict[str, list[dict]] = {}
    not_found: list[str] = []
    scores: dict[tuple[str, str], np.ndarray] = {}
    for symbol in symbols:
        entries: list[dict] = []
        if stype_in == "raw_symbol":
            entries = _per_instrument([k for k in in_range if instruments[k].raw_symbol == symbol],
                                      instruments, listed, days, stype_out)
        elif stype_in == "instrument_id":
            wanted = int(symbol) if symbol.isdigit() else None
            entries = _per_instrument([k for k in in_range if instruments[k].instrument_id == wanted],
                                      instruments, listed, days, stype_out)
        elif stype_in == "parent":
            entries = _per_instrument([k for k in in_range if instruments[k].parent == symbol],
                                      instruments, listed, days, stype_out)
        else:
            parsed = parse_continuous(symbol)
            if parsed is not None:
                root, rule, rank = parsed
                members = [k for k in range(len(instruments)) if _root_of(instruments[k]) == root]
                if members:
                    subset = [instruments[k] for k in members]
                    score = None
                    if rule != "c":
                        column = "volume" if rule == "v" else "open_interest"
                        if (root, column) not in scores:
                            scores[(root, column)] = _previous_stats(daily, subset, days, column)
                        score = scores[(root, column)]
                    choice = _continuous_choice(subset, listed[members], score, rank)
                    entries = _intervals(days, [None if c < 0 else _output(subset[c], stype_out)
                                                for c in choice])
        if entries:
            result[symbol] = entries
        else:
            not_found.append(symbol)
    return result, not_found


def _all_symbols(instruments: list[Instrument], stype_in: str) -> list[str]:
    if stype_in == "instrument_id":
        return sorted({str(i.instrument_id) for i in instruments}, key=int)
    if stype_in == "parent":
        return sorted({i.parent for i in instruments})
    return sorted({i.raw_symbol for i in instruments})


def intervals_ns(
    entries: list[dict], instruments: Sequence[Instrument] | None = None
) -> list[tuple[int, int, int]]:
    """resolve() entries -> (d0_ns, d1_ns, instrument_id) for record_mask.

    Entries whose `s` is a raw symbol need `instruments` to find the id (the one listed in the interval).
    """
    out = []
    for entry in entries:
        d0 = int(np.datetime64(entry["d0"], "D").astype("datetime64[ns]").astype(np.int64))
        d1 = int(np.datetime64(entry["d1"], "D").astype("datetime64[ns]").astype(np.int64))
        symbol = entry["s"]
        if symbol.isdigit():
            out.append((d0, d1, int(symbol)))
            continue
        matches = [i for i in instruments or () if i.raw_symbol == symbol
                   and i.activation_ns < d1 and i.expiration_ns > d0]
        if not matches:
            raise HdiError(
                f"symbol mapping {symbol!r} ({entry['d0']}..{entry['d1']}) names no listed instrument")
        out.append((d0, d1, matches[0].instrument_id))
    return out


def record_mask(
    instrument_id: np.ndarray, ts_recv: np.ndarray, intervals: list[tuple[int, int, int]]
) -> np.ndarray:
    """True for each record whose instrument is mapped at its ts_recv by one of the (d0_ns, d1_ns, id).

    Intervals are [d0_ns, d1_ns) (UTC day boundaries from resolve()); this is how a continuous-symbol request
    is filtered day by day."""
    instrument_id = np.asarray(instrument_id)
    ts = np.asarray(ts_recv).astype(np.int64, copy=False)
    mask = np.zeros(instrument_id.shape, dtype=bool)
    by_id: dict[int, list[tuple[int, int]]] = {}
    for d0, d1, iid in intervals:
        by_id.setdefault(int(iid), []).append((int(d0), int(d1)))
    for iid, spans in by_id.items():
        rows = np.flatnonzero(instrument_id == iid)  # one pass per mapped instrument, not per record
        if rows.size == 0:
            continue
        t = ts[rows]
        hit = np.zeros(rows.size, dtype=bool)
        for d0, d1 in spans:
            hit |= (t >= d0) & (t < d1)
        mask[rows[hit]] = True
    return mask


def to_dbn_mappings(result: dict[str, list[dict]]) -> list[SymbolMapping]:
    """resolve()'s result as the `mappings` argument of databento_dbn.Metadata."""
    return [
        SymbolMapping(
            raw_symbol=symbol,
            intervals=tuple(
                MappingInterval(dt.date.fromisoformat(e["d0"]), dt.date.fromisoformat(e["d1"]), e["s"])
                for e in entries),
        )
        for symbol, entries in result.items()
    ]
