"""A subscription line resolved against the data source at the session's "now": the instruments it selects,
the SymbolMappingMsg records announcing them, and the errors Databento would send for it.

Raw symbols select the contract listed now; parents (`ES.FUT`) every contract of the root listed now;
continuous symbols (`ES.c.0`, `ES.v.0`, `ES.n.0`) the contract they map to on today's UTC date
(hdi_gateway.symbology, the same rules the historical gateway resolves with). The choice is fixed for the
life of the subscription: a live continuous subscription is never remapped at a roll; a new one maps afresh.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np

from hdi_gateway import symbology
from hdi_gateway.live import messages
from hdi_gateway.live.protocol import SubscriptionRequest
from hdi_gateway.source import DataSource, Instrument

NS = 1_000_000_000
DAY_NS = 86_400 * NS
REPLAY_WINDOW_NS = DAY_NS  # Databento's intraday replay reaches back 24 hours
SYMBOLOGY_LOOKBACK_DAYS = 14  # the v and n rules rank by earlier sessions' volume / open interest
ALL_SYMBOLS = symbology.ALL_SYMBOLS
LISTING_LOOKAHEAD_NS = 400 * DAY_NS  # how far ahead the next listing of a parent is looked for (CME lists yearly)


@dataclass
class Selection:
    """What one subscription line streams: `schema` records of `instrument_ids` (None = all) from `start_ns`."""

    schema: str
    start_ns: int
    instrument_ids: np.ndarray | None
    mappings: bytes = b""  # SymbolMappingMsg records, sent before the subscription's first record
    errors: list[bytes] = field(default_factory=list)  # ErrorMsg records (bad symbols), sent with the mappings
    # parent and ALL_SYMBOLS subscriptions take in contracts listed later, as Databento's do
    parents: tuple[str, ...] = ()  # the parent symbols (empty: ALL_SYMBOLS when instrument_ids is None)
    stype_in: str = "raw_symbol"
    known: set[int] = field(default_factory=set)  # instruments already announced
    listed_until: int = 0  # listings are known up to this market time
    next_listing: int | None = None  # when the next contract of the subscription is listed (None: none known)

    @property
    def follows_listings(self) -> bool:
        return bool(self.parents) or self.instrument_ids is None

    def take_new_listings(self, source: DataSource, dataset: str, until_ns: int) -> bytes:
        """Contracts listed in (listed_until, until_ns] join the subscription: their SymbolMappingMsg records
        (ts_event = the listing time), to send before the records of the window ending at until_ns."""
        if not self.follows_listings or self.next_listing is None or until_ns <= self.next_listing:
            return b""
        instruments = source.instruments(dataset, self.listed_until, until_ns + LISTING_LOOKAHEAD_NS)
        mine = [i for i in instruments if i.instrument_id not in self.known
                and (not self.parents or i.parent in self.parents)]
        new = [i for i in mine if i.activation_ns < until_ns]
        later = [i.activation_ns for i in mine if i.activation_ns >= until_ns]
        self.next_listing = min(later) if later else None
        self.listed_until = until_ns
        if not new:
            return b""
        self.known.update(i.instrument_id for i in new)
        if self.instrument_ids is not None:
            self.instrument_ids = np.union1d(self.instrument_ids,
                                             np.array([i.instrument_id for i in new], dtype=np.uint32))
        out = b""
        for i in sorted(new, key=lambda i: (i.activation_ns, i.instrument_id)):
            symbol = i.parent if self.parents else i.raw_symbol
            out += messages.symbol_mappings(max(i.activation_ns, 0), self.stype_in, [symbol], [i.instrument_id],
                                            [i.raw_symbol])
        return out


class SubscriptionRefused(Exception):
    """A subscription the gateway refuses as a whole; `record` is the ErrorMsg to send."""

    def __init__(self, record: bytes, text: str) -> None:
        super().__init__(text)
        self.record = record


def _refuse(now_ns: int, text: str, code: int = messages.ERROR_INVALID_SUBSCRIPTION) -> SubscriptionRefused:
    return SubscriptionRefused(messages.error_message(now_ns, text, code), text)


def _utc_date(ns: int) -> dt.date:
    return dt.datetime.fromtimestamp(ns // NS, tz=dt.UTC).date()


def stream_start(request: SubscriptionRequest, now_ns: int, data_start_ns: int) -> int:
    """Where the subscription's stream starts: now, or an intraday replay start within the last 24 hours
    (`start=0`: as far back as replay reaches)."""
    if request.start_ns is None:
        return now_ns
    earliest = max(now_ns - REPLAY_WINDOW_NS, data_start_ns)
    if request.start_ns == 0:
        return earliest
    if request.start_ns < earliest or request.start_ns > now_ns:
        raise _refuse(now_ns, f"Invalid start {request.start_ns}: intraday replay covers the last 24 hours, "
                              f"from {earliest} to {now_ns}")
    return request.start_ns


def _listed(instruments: list[Instrument], start_ns: int, now_ns: int) -> list[Instrument]:
    """Contracts listed at some time in [start_ns, now_ns] (a replay reaches contracts expired since)."""
    return [i for i in instruments if i.activation_ns <= now_ns and i.expiration_ns > start_ns]


def _follow_listings(selection: Selection, source: DataSource, dataset: str, now_ns: int) -> Selection:
    selection.listed_until = now_ns
    upcoming = source.instruments(dataset, now_ns, now_ns + LISTING_LOOKAHEAD_NS)
    later = [i.activation_ns for i in upcoming if i.activation_ns > now_ns
             and (not selection.parents or i.parent in selection.parents)]
    selection.next_listing = min(later) if later else None
    return selection


def _continuous_id(
    source: DataSource, dataset: str, instruments: list[Instrument], symbol: str, now_ns: int
) -> int | None:
    today = _utc_date(now_ns)
    daily = source.daily_stats(dataset, today - dt.timedelta(days=SYMBOLOGY_LOOKBACK_DAYS),
                               today + dt.timedelta(days=1))
    result, _ = symbology.resolve(instruments, daily, [symbol], "continuous", "instrument_id",
                                  today, today + dt.timedelta(days=1))
    entries = result.get(symbol)
    return int(entries[0]["s"]) if entries else None


def resolve(
    source: DataSource, dataset: str, request: SubscriptionRequest, now_ns: int
) -> Selection:
    """The Selection of one subscription line at market time `now_ns`; SubscriptionRefused for a schema,
    symbology type, snapshot or start the gateway does not serve. Unknown symbols become ErrorMsg records
    (the rest of the line is served)."""
    data_start_ns = source.dataset_range(dataset)[0]
    if request.schema not in source.schemas(dataset):
        raise _refuse(now_ns, f"Schema {request.schema} is not supported for dataset {dataset}; "
                              f"supported: {', '.join(source.schemas(dataset))}")
    if request.stype_in not in messages.STYPE_CODES:
        raise _refuse(now_ns, f"Unsupported stype_in {request.stype_in}; "
                              f"supported: {', '.join(messages.STYPE_CODES)}")
    if request.snapshot:
        raise _refuse(now_ns, "Snapshot subscriptions are not supported by the offline gateway; "
                              "subscribe with start= for intraday replay instead")
    start_ns = stream_start(request, now_ns, data_start_ns)
    instruments = source.instruments(dataset, now_ns - SYMBOLOGY_LOOKBACK_DAYS * DAY_NS, now_ns + 1)
    listed = _listed(instruments, start_ns, now_ns)
    inputs: list[str] = []
    chosen: list[Instrument] = []
    not_found: list[str] = []
    symbols = list(request.symbols) or [ALL_SYMBOLS]
    if symbols == [ALL_SYMBOLS]:
        selection = Selection(request.schema, start_ns, None, stype_in=request.stype_in,
                              known={i.instrument_id for i in listed})
        selection.mappings = messages.symbol_mappings(
            start_ns, "raw_symbol", [i.raw_symbol for i in listed], [i.instrument_id for i in listed],
            [i.raw_symbol for i in listed])
        return _follow_listings(selection, source, dataset, now_ns)
    by_id = {i.instrument_id: i for i in instruments}
    for symbol in symbols:
        found: list[Instrument] = []
        if request.stype_in == "raw_symbol":
            found = [i for i in listed if i.raw_symbol == symbol.upper()]
        elif request.stype_in == "instrument_id":
            found = [i for i in listed if symbol.isdigit() and i.instrument_id == int(symbol)]
        elif request.stype_in == "parent":
            found = [i for i in listed if i.parent == symbol]
        else:
            iid = _continuous_id(source, dataset, instruments, symbol, now_ns)
            found = [by_id[iid]] if iid is not None and iid in by_id else []
        if not found:
            not_found.append(symbol)
        inputs.extend([symbol] * len(found))
        chosen.extend(found)
    ids = np.unique(np.array([i.instrument_id for i in chosen], dtype=np.uint32))
    parents = tuple(dict.fromkeys(s for s in symbols if request.stype_in == "parent" and s not in not_found))
    selection = Selection(request.schema, start_ns, ids, parents=parents, stype_in=request.stype_in,
                          known={i.instrument_id for i in chosen})
    selection.mappings = messages.symbol_mappings(
        start_ns, request.stype_in, inputs, [i.instrument_id for i in chosen], [i.raw_symbol for i in chosen])
    for symbol in not_found:
        selection.errors.append(messages.error_message(
            now_ns, f"Failed to resolve symbol: {symbol}", messages.ERROR_SYMBOL_RESOLUTION_FAILED))
    return _follow_listings(selection, source, dataset, now_ns) if parents else selection
