"""Symbol resolution every read shares, from the symbol catalogue: a root (ES) or continuous symbol (ES.v.0)
asked for bars reads the continuous series; a raw symbol (ESU4, via definitions or the vendor's symbol
mappings) or an instrument id reads that contract's vendor rows; a root on a vendor schema reads every
outright contract of the product."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .catalog import Entry, entries, known_symbols, mapped_ids
from .readerrors import BadRequest, NotFound

if TYPE_CHECKING:
    from .core import Database

BAR_SCHEMAS = {"ohlcv-1s": "1s", "ohlcv-1m": "1m", "ohlcv-5m": "5m", "ohlcv-15m": "15m", "ohlcv-1h": "1h",
               "ohlcv-1d": "1d"}
VENDOR_TABLES = {"trades": "trades_data", "tbbo": "tbbo_data", "statistics": "statistics_data",
                 "definitions": "definitions_data"}
SCHEMAS = (*BAR_SCHEMAS, *VENDOR_TABLES)
SCHEMA_ALIASES = {"definition": "definitions", "trade": "trades", "stats": "statistics"}
HIGH_FREQUENCY = frozenset({"ohlcv-1s", "trades", "tbbo", "statistics"})  # reads guarded against no bounds
MAX_SYMBOL_CHARS = 64
MAX_LISTED = 30


def schema_name(text: str) -> str:
    """A schema as typed (any case, a few singular aliases) -> its canonical name, or a one-line error."""
    key = SCHEMA_ALIASES.get(text.strip().lower(), text.strip().lower())
    if key not in SCHEMAS:
        raise NotFound(f"unknown schema {text[:40]!r}; use one of {', '.join(SCHEMAS)}")
    return key


@dataclass(frozen=True)
class Selection:
    """What one symbol and schema resolved to: the table, its filter and the catalogue rows it covers."""

    table: str
    schema: str
    shown: str
    granularity: str | None
    rows: list[Entry] = field(default_factory=list)
    continuous_symbol: str | None = None
    adjustment_method: str | None = None
    instrument_ids: tuple[int, ...] = ()
    elsewhere: tuple[str, ...] = ()  # other schemas holding this symbol, for "nothing stored here" messages

    @property
    def by_trade_date_column(self) -> bool:
        return self.table == "continuous_bars"

    @property
    def row_count(self) -> int:
        return sum(e.row_count for e in self.rows)

    def span(self, by_trade_date: bool) -> tuple[Any, Any]:
        lows = [e.min_trade_date if by_trade_date else e.min_ts for e in self.rows]
        highs = [e.max_trade_date if by_trade_date else e.max_ts for e in self.rows]
        lows, highs = [v for v in lows if v is not None], [v for v in highs if v is not None]
        return (min(lows) if lows else None), (max(highs) if highs else None)

    def where(self) -> tuple[str, list[Any]]:
        if self.table == "continuous_bars":
            return ("continuous_symbol = %s AND granularity = %s AND adjustment_method = %s",
                    [self.continuous_symbol, self.granularity, self.adjustment_method])
        clause, params = "instrument_id = ANY(%s)", [list(self.instrument_ids)]
        if self.granularity:
            clause += " AND granularity = %s"
            params.append(self.granularity)
        return clause, params

    def stored(self) -> str:
        """'stored: 2024-07-01 .. 2024-07-31 (trade dates)' or the instants, for messages."""
        lo, hi = self.span(self.by_trade_date_column)
        if lo is None:
            return "nothing stored"
        show = (lambda v: v.isoformat()) if isinstance(lo, dt.date) and not isinstance(lo, dt.datetime) \
            else (lambda v: v.astimezone(dt.UTC).isoformat())
        unit = " (trade dates)" if self.by_trade_date_column else ""
        return f"stored: {show(lo)} .. {show(hi)}{unit}"


def _schema_of(entry: Entry) -> str:
    """The schema a user asks for to read this catalogue row ('rolls' for the roll table)."""
    if entry.target in ("continuous_bars", "ohlcv_data"):
        return next(s for s, g in BAR_SCHEMAS.items() if g == entry.granularity)
    return next((s for s, t in VENDOR_TABLES.items() if t == entry.target), "rolls")


def _check_text(symbol: str) -> str:
    text = (symbol or "").strip()
    if not text or len(text) > MAX_SYMBOL_CHARS or not text.isprintable():
        raise NotFound(f"unknown symbol {text[:MAX_SYMBOL_CHARS]!r}")
    return text


def _unknown(symbol: str, schema: str, candidates: list[Entry], everything: list[Entry]) -> NotFound:
    names = known_symbols(candidates) or known_symbols(everything)
    listed = ", ".join(names[:MAX_LISTED]) + (f" and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED
                                               else "")
    where = f"stored {schema} symbols" if candidates else "stored symbols"
    return NotFound(f"unknown symbol {symbol!r}; {where}: {listed}" if names
                    else f"unknown symbol {symbol!r}; nothing is stored yet")


def resolve(cur: Any, db: Database, symbol: str, schema: str, *, raw: bool = False,
            adjustment_method: str | None = None) -> Selection:
    """The Selection for a symbol as typed; an unknown symbol raises NotFound listing the known ones."""
    schema = schema_name(schema)
    text = _check_text(symbol)
    everything = entries(cur, db, ("continuous_bars", "roll_events", "ohlcv_data", *VENDOR_TABLES.values()))
    folded = text.casefold()
    granularity = BAR_SCHEMAS.get(schema)
    if granularity:
        continuous = [e for e in everything if e.target == "continuous_bars"]
        by_name = [e for e in continuous if e.symbol.casefold() == folded]
        by_root = [e for e in continuous if (e.root_symbol or "").casefold() == folded]
        if raw and by_name:
            raise BadRequest(f"{by_name[0].symbol} is a continuous symbol; raw bars are a contract's own "
                             "(give a raw symbol such as ESU4, or the product root)")
        if not raw and (by_name or by_root):
            return _continuous(text, schema, granularity, by_name or by_root, adjustment_method)
    table = "ohlcv_data" if granularity else VENDOR_TABLES[schema]
    vendor = [e for e in everything if e.instrument_id is not None]
    if text.isascii() and text.isdigit():  # str.isdigit() alone accepts '²', which int() refuses
        ids = {int(text)} if len(text) <= 18 else set()
    else:
        ids = {e.instrument_id for e in vendor if folded in ((e.raw_symbol or "").casefold(),
                                                             (e.root_symbol or "").casefold())}
        ids |= mapped_ids(cur, text)
    ids.discard(None)
    known_ids = {e.instrument_id for e in vendor}
    if not ids & known_ids and not any(folded == s.casefold() for s in known_symbols(everything)):
        series = _series_of_contract(cur, text)
        if series:  # a contract known only from the roll table: point at the series it is part of
            raise NotFound(f"no {schema} rows stored for contract {text}; it is part of {', '.join(series)} "
                           "(read that series, or the rolls of this contract)")
        candidates = [e for e in everything if _schema_of(e) == schema]
        raise _unknown(text, schema, candidates, everything)
    rows = [e for e in vendor if e.instrument_id in ids and e.target == table
            and (granularity is None or e.granularity == granularity)]
    named = [e for e in everything
             if e.instrument_id in ids or folded in (e.symbol.casefold(), (e.root_symbol or "").casefold())]
    elsewhere = sorted({_schema_of(e) for e in named if _schema_of(e) != schema}
                       | {f"{schema} (continuous, not raw)" for e in named
                          if e.target == "continuous_bars" and _schema_of(e) == schema})
    return Selection(table, schema, text, granularity, rows, instrument_ids=tuple(sorted(ids)),
                     elsewhere=tuple(elsewhere))


def _series_of_contract(cur: Any, text: str) -> list[str]:
    """Continuous symbols whose rolls name this raw symbol (roll_events is small)."""
    cur.execute("""SELECT DISTINCT continuous_symbol FROM roll_events WHERE upper(old_raw_symbol) = upper(%s)
                   OR upper(new_raw_symbol) = upper(%s) ORDER BY 1""", (text, text))
    return [row[0] for row in cur.fetchall()]


def _continuous(text: str, schema: str, granularity: str, matches: list[Entry],
                adjustment_method: str | None) -> Selection:
    """A root picks its lead series (the .0 one); the adjustment is the one asked for or the first stored."""
    names = sorted({e.symbol for e in matches})
    leads = [n for n in names if n.endswith(".0")] or names
    chosen = leads[0]
    series = [e for e in matches if e.symbol == chosen]
    methods = sorted({e.adjustment_method for e in series})
    if adjustment_method is not None and adjustment_method not in methods:
        raise NotFound(f"{chosen} has no {adjustment_method[:40]!r} adjustment stored; stored: {', '.join(methods)}")
    method = adjustment_method or methods[0]
    rows = [e for e in series if e.adjustment_method == method and e.granularity == granularity]
    elsewhere = sorted({_schema_of(e) for e in series if e.granularity != granularity})
    return Selection("continuous_bars", schema, chosen, granularity, rows, continuous_symbol=chosen,
                     adjustment_method=method, elsewhere=tuple(elsewhere))
