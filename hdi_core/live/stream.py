"""The continuous series of one product built in stream: the front contract's trades as Databento maps the
continuous symbol (SymbolMappingMsg), cut into 1-second bars by the product calendar (hdi_core.calendar, the
code history uses), with the provisional open bar after every batch.

Live prices are the front contract's own, unadjusted: history is a backward Panama series that joins today's
contract with no jump, so today's live bars already sit on the newest history's scale (that is what a backward
adjustment keeps unchanged); a roll moves history, never the live day. A live continuous subscription is never
remapped: the capture resubscribes at each trade-date change (`next_resubscribe_ns`), and the new subscription's
mapping message names the new front contract.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from hdi_core.calendar import Sessions, calendar_sessions
from hdi_core.live.bars import BAR_DTYPE, DEFAULT_GRACE_NS, SecondBars
from hdi_core.live.records import RecordBatch
from hdi_core.units import DAY_NS

SESSIONS_BEFORE_NS = 3 * DAY_NS  # calendar reach around the capture's start: a long weekend either side
SESSIONS_AFTER_NS = 14 * DAY_NS
# where the series takes its trades from, first subscribed wins: trades, else tbbo, else MBO trade actions
TRADE_SOURCES = ("trades", "tbbo", "mbo")


class StreamAccumulator(Protocol):
    """The hook for in-stream measures (order flow): fed every admitted batch of one schema, arrival order."""

    def update(self, schema: str, records: np.ndarray) -> None: ...


@dataclass
class SeriesUpdate:
    """The bars one batch changed for one continuous symbol."""

    symbol: str  # e.g. ES.v.0
    instrument_id: int
    raw_symbol: str
    closed: np.ndarray = field(default_factory=lambda: np.empty(0, BAR_DTYPE))
    provisional: np.ndarray = field(default_factory=lambda: np.empty(0, BAR_DTYPE))
    sent_ns: int = 0  # the gateway's send time (ts_out) of the batch's last trade, 0 when unknown


def trade_source(schemas: Sequence[str]) -> str:
    for schema in TRADE_SOURCES:
        if schema in schemas:
            return schema
    raise ValueError(f"no trade-carrying schema among {', '.join(schemas)}: subscribe to one of "
                     f"{', '.join(TRADE_SOURCES)} to build bars")


class ContinuousSeries:
    """One product's continuous symbol: mapping, trades of the mapped contract, bars."""

    def __init__(self, symbol: str, calendar: str, start_ns: int, source: str = "trades",
                 grace_ns: int = DEFAULT_GRACE_NS, sessions: Sessions | None = None) -> None:
        self.symbol = symbol
        self.source = source
        self.sessions = sessions if sessions is not None else calendar_sessions(
            calendar, start_ns - SESSIONS_BEFORE_NS, start_ns + SESSIONS_AFTER_NS)
        self.bars = SecondBars(self.sessions, grace_ns)
        self.instrument_id: int | None = None
        self.raw_symbol = ""
        self.trades_seen = 0

    def on_mappings(self, mappings: np.ndarray) -> bool:
        """Take the mapping of this symbol, if the batch has one; True when the contract changed."""
        if not len(mappings):
            return False
        mine = mappings[mappings["stype_in_symbol"] == self.symbol.encode()]
        if not len(mine):
            return False
        new_id = int(mine["instrument_id"][-1])
        changed = new_id != self.instrument_id
        self.instrument_id = new_id
        self.raw_symbol = mine["stype_out_symbol"][-1].decode(errors="replace")
        return changed

    def on_batch(self, batch: RecordBatch, clock_ns: int) -> SeriesUpdate | None:
        """Fold a batch's trades of the mapped contract into the bars; None when nothing changed."""
        self.on_mappings(batch.mappings)
        records = batch.records.get(self.source)
        trades = np.empty(0, BAR_DTYPE)
        sent = 0
        if records is not None and len(records) and self.instrument_id is not None:
            mine = records["instrument_id"] == self.instrument_id
            if self.source == "mbo":
                mine &= records["action"] == b"T"
            trades = records[mine]
            if len(trades):
                sent = int(batch.ts_out[self.source][mine][-1])
        if len(trades):
            self.trades_seen += len(trades)
            update = self.bars.push(trades["ts_event"].astype(np.int64), trades["price"],
                                    trades["size"].astype(np.int64), clock_ns)
        else:
            update = self.bars.advance(clock_ns)
            if not len(update.closed):
                return None
            update.provisional = np.empty(0, BAR_DTYPE)
        return SeriesUpdate(self.symbol, self.instrument_id or 0, self.raw_symbol, update.closed,
                            update.provisional, sent)

    def flush(self) -> SeriesUpdate:
        """The end of the capture: every held trade committed, the open bar closed."""
        update = self.bars.flush()
        return SeriesUpdate(self.symbol, self.instrument_id or 0, self.raw_symbol, update.closed)

    def next_resubscribe_ns(self, clock_ns: int) -> int | None:
        """When a continuous subscription must next be made afresh: the open of the next trade date (its first
        segment) or the next 00:00 UTC, whichever comes first. Databento's continuous mapping changes with the
        UTC date, so on a roll day the new front contract is mapped from 00:00 UTC on; the trade-date open is
        where the series' day begins (history switches contracts there, hdi_assets.continuous.roll_inputs)."""
        s = self.sessions
        now = int(np.searchsorted(s.open_ns, clock_ns, side="right")) - 1
        today = s.trade_date[now] if now >= 0 else None
        later = np.flatnonzero((s.open_ns > clock_ns) & (s.trade_date != today))
        midnight = (clock_ns // DAY_NS + 1) * DAY_NS
        return min(int(s.open_ns[later[0]]), midnight) if len(later) else midnight
