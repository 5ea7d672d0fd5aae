"""Order flow of one product built in stream: the five measures of hdi_core.orderflow fed incrementally, in
arrival order, with the inputs and parameters the historical assets use, so that after the session both agree.

Trades (aggressor flow 1s and 1m, footprint 1m, the session's volume profile): the front contract's trades
(the instrument the continuous symbol maps), inside the product's sessions, in ts_event order as history sorts
them (a stable sort of the delivered order). A trade is committed once the stream's clock (largest ts_recv) is
`grace_ns` past its ts_event, as the live 1 s bars commit them; a trade arriving after a later one was committed
is counted in `late_trades` and left out (history would have it: the check after the session says so).
The 1 s flow is fed at every commit, the 1-minute measures when a new minute begins, the profile the date's
trades once, when it closes (any split of a tape gives the same output, so fewer pieces cost less and a day's
trades are never re-read per batch); once the clock passes the trade date's close, everything of that date is
flushed: the profile is final. While the date runs, `provisional_profile` is the profile of its closed minutes
(their footprint volume summed by level, kept as a few hundred levels).

Book (absorption zones from mbp-10, iceberg candidates from mbo): per CME trade date, as the historical assets
run one detector per trade date over the front contract's records in [first open, last close): the contract is
the one mapped when the date's first book record arrives; records outside the date's range are left out, and
indexes count from the date's first record. Prices are the contract's own (unadjusted): history's newest window
leaves the newest contract unchanged (backward Panama), so the live day sits on its scale.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from hdi_core.calendar import Sessions, session_index
from hdi_core.calendar.arrays import day_anchor_ns
from hdi_core.config.orderflow import OrderflowParams
from hdi_core.orderflow import (
    AbsorptionDetector,
    FlowAccumulator,
    FootprintAccumulator,
    IcebergDetector,
    ProfileAccumulator,
    Trades,
    order_events,
    top_of_book,
)
from hdi_core.orderflow.profile import profile_from_levels

MINUTE_NS = 60_000_000_000
DEFAULT_GRACE_NS = 250_000_000  # as the live 1 s bars (hdi_core.live.bars)
# result kinds: the live lake folder (orderflow-<kind>) and what each holds
KINDS = ("delta-1s", "delta-1m", "footprint-1m", "profile", "profile-summary", "absorption", "icebergs")
BOOK_SCHEMAS = {"mbp-10": "absorption", "mbo": "icebergs"}


@dataclass
class FlowResults:
    """Closed results by kind (tables of hdi_core.orderflow's schemas; book rows carry their contract and trade
    date), and the open trade date's provisional profile when it changed."""

    closed: dict[str, list[pa.Table]] = field(default_factory=dict)
    provisional: tuple[pa.Table, pa.Table] | None = None

    def add(self, kind: str, table: pa.Table) -> None:
        if table.num_rows:
            self.closed.setdefault(kind, []).append(table)

    def merge(self, other: FlowResults) -> None:
        for kind, parts in other.closed.items():
            self.closed.setdefault(kind, []).extend(parts)
        if other.provisional is not None:
            self.provisional = other.provisional

    def __bool__(self) -> bool:
        return bool(self.closed) or self.provisional is not None


def _days(sessions: Sessions) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per trade date: its date (datetime64[D]), first open, last close and the daily bar's timestamp."""
    dates, first = np.unique(sessions.trade_date, return_index=True)
    last = np.searchsorted(sessions.trade_date, dates, side="right") - 1
    return dates, sessions.open_ns[first].astype(np.int64), sessions.close_ns[last].astype(np.int64), \
        day_anchor_ns(sessions)[first].astype(np.int64)


class _BookDay:
    """One detector over one trade date of the front contract's book records."""

    def __init__(self, schema: str, params: OrderflowParams) -> None:
        self.schema = schema
        if schema == "mbp-10":
            a = params.absorption
            self.detector: AbsorptionDetector | IcebergDetector = AbsorptionDetector(
                a.min_volume, a.min_absorbed_ratio, a.max_idle_ms)
        else:
            i = params.icebergs
            self.detector = IcebergDetector(i.refill_window_ms, i.size_tolerance, i.min_refills)
        self.day = -1  # index into the trade dates
        self.instrument_id = 0
        self.raw_symbol = ""

    def feed(self, records: np.ndarray) -> pa.Table:
        columns = top_of_book(records) if self.schema == "mbp-10" else order_events(records)
        return self.detector.feed(columns)  # type: ignore[arg-type]

    def flush(self) -> pa.Table:
        return self.detector.flush()


class ProductFlow:
    """The order flow of one product's continuous symbol; see the module docstring."""

    def __init__(self, sessions: Sessions, tick: int, params: OrderflowParams,
                 grace_ns: int = DEFAULT_GRACE_NS) -> None:
        self.sessions = sessions
        self.tick = int(tick)
        self.params = params
        self.grace_ns = int(grace_ns)
        fp, pr = params.footprint, params.profile
        self.delta_1s = FlowAccumulator(sessions, "1s")
        self.delta_1m = FlowAccumulator(sessions, "1m")
        self.footprint = FootprintAccumulator(sessions, "1m", tick, fp.imbalance_ratio, fp.imbalance_min_volume)
        self.profile = ProfileAccumulator(sessions, tick, pr.value_area_share, pr.node_window_ticks, pr.hvn_factor,
                                          pr.lvn_factor)
        self.dates, self.day_open, self.day_close, self.day_ts = _days(sessions)
        self.held: list[Trades] = []  # delivered, not yet committed (ts_event within the grace of the clock)
        self.minute: list[Trades] = []  # committed, not yet fed to the 1-minute measures (the open minute's)
        self.minute_key = -1
        self.last_committed = np.iinfo(np.int64).min
        self.open_date = -1  # index of the trade date whose trades are being fed (-1: none yet)
        self.clock_ns = np.iinfo(np.int64).min
        self.late_trades = 0
        self.day_trades: list[Trades] = []  # the open date's committed trades (its profile is fed them at its close)
        self.day_levels = _no_levels()  # the open date's closed footprint volume by level: price, buy, sell, none
        self.books = {schema: _BookDay(schema, params) for schema in BOOK_SCHEMAS}

    # -- trades -----------------------------------------------------------------------------------------------
    def on_trades(self, ts_event: np.ndarray, price: np.ndarray, size: np.ndarray, side: np.ndarray,
                  clock_ns: int) -> FlowResults:
        """Trades of the front contract in arrival order (columns), and the stream's clock after them."""
        if len(ts_event):
            self.held.append(Trades(np.asarray(ts_event, np.int64), np.asarray(price, np.int64),
                                    np.asarray(size, np.int64), np.ascontiguousarray(side).view(np.uint8)))
        return self.advance(clock_ns)

    def advance(self, clock_ns: int, final: bool = False) -> FlowResults:
        """Commit what the clock allows (everything when `final`) and feed it; flush a trade date that closed."""
        self.clock_ns = max(self.clock_ns, int(clock_ns))
        out = FlowResults()
        if self.held:
            tape = _concat(self.held)
            order = np.argsort(tape.ts, kind="stable")
            tape = Trades(tape.ts[order], tape.price[order], tape.size[order], tape.side[order])
            cut = len(tape) if final else int(np.searchsorted(tape.ts, self.clock_ns - self.grace_ns, "right"))
            done, rest = tape.slice(0, cut), tape.slice(cut, len(tape))
            self.held = [rest] if len(rest) else []
            if len(done):
                late = done.ts < self.last_committed
                if late.any():
                    self.late_trades += int(late.sum())
                    keep = ~late
                    done = Trades(done.ts[keep], done.price[keep], done.size[keep], done.side[keep])
            if len(done):
                inside = session_index(done.ts, self.sessions) >= 0  # history keeps the sessions' trades only
                if not inside.all():
                    done = Trades(done.ts[inside], done.price[inside], done.size[inside], done.side[inside])
            if len(done):
                self.last_committed = int(done.ts[-1])
                self._commit(done, out)
        if self.open_date >= 0 and (final or self.clock_ns - self.grace_ns >= self.day_close[self.open_date]):
            self._close_date(out)
        return out

    def _commit(self, done: Trades, out: FlowResults) -> None:
        """Feed committed trades (ts_event order), one trade date at a time: a date that ends closes first."""
        dates = np.searchsorted(self.day_open, done.ts, "right") - 1
        breaks = np.flatnonzero(np.diff(dates)) + 1
        for lo, hi in zip(np.r_[0, breaks], np.r_[breaks, len(dates)], strict=True):
            date = int(dates[lo])
            if self.open_date >= 0 and date != self.open_date:  # a new date began without its close seen
                self._close_date(out)
            part = done.slice(int(lo), int(hi))
            out.add("delta-1s", self.delta_1s.feed(part))
            key = int(part.ts[-1]) // MINUTE_NS
            if self.minute and int(part.ts[0]) // MINUTE_NS != self.minute_key:
                self._feed_minutes(out)
            self.minute.append(part)
            self.day_trades.append(part)
            self.minute_key = key
            self.open_date = date

    def _feed_minutes(self, out: FlowResults) -> None:
        if not self.minute:
            return
        tape = _concat(self.minute)
        self.minute = []
        out.add("delta-1m", self.delta_1m.feed(tape))
        footprint = self.footprint.feed(tape)
        out.add("footprint-1m", footprint)
        if footprint.num_rows:
            self._add_levels(footprint)
            out.provisional = self.provisional_profile()

    def _add_levels(self, footprint: pa.Table) -> None:
        """The open date's volume by level so far: closed footprint rows summed into a few hundred levels."""
        price = np.concatenate([self.day_levels[0], footprint["price"].to_numpy()])
        levels, at = np.unique(price, return_inverse=True)
        sums = []
        for j, c in enumerate(("buy_volume", "sell_volume", "no_side_volume")):
            values = np.concatenate([self.day_levels[j + 1], footprint[c].to_numpy()])
            sums.append(np.bincount(at, values, len(levels)).astype(np.int64))
        self.day_levels = [levels, *sums]

    def _close_date(self, out: FlowResults) -> None:
        """Every bar of the open date closed; its profile final (the date's trades fed to the profile once)."""
        self._feed_minutes(out)
        out.add("delta-1s", self.delta_1s.flush())
        out.add("delta-1m", self.delta_1m.flush())
        out.add("footprint-1m", self.footprint.flush())
        if self.day_trades:
            levels, summary = self.profile.feed(_concat(self.day_trades))
            more_levels, more_summary = self.profile.flush()
            out.add("profile", pa.concat_tables([levels, more_levels]))
            out.add("profile-summary", pa.concat_tables([summary, more_summary]))
        out.provisional = None  # the date's final profile is in `closed`
        self.day_trades = []
        self.day_levels = _no_levels()
        self.open_date = -1

    def provisional_profile(self) -> tuple[pa.Table, pa.Table] | None:
        """The open date's profile over its closed minutes (rows of closed footprint bars summed by level)."""
        if not len(self.day_levels[0]) or self.open_date < 0:
            return None
        levels, buy, sell, none = self.day_levels
        d = self.open_date
        daily = pa.table({"ts_event": np.full(len(levels), self.day_ts[d], np.int64), "price": levels,
                          "buy_volume": buy, "sell_volume": sell, "no_side_volume": none})
        pr = self.params.profile
        date = np.array([self.dates[d].astype(np.int64)], np.int32)
        return profile_from_levels(daily, self.day_ts[d:d + 1], date, self.tick, pr.value_area_share,
                                   pr.node_window_ticks, pr.hvn_factor, pr.lvn_factor)

    # -- book -------------------------------------------------------------------------------------------------
    def on_book(self, schema: str, records: np.ndarray, instrument_id: int, raw_symbol: str) -> FlowResults:
        """mbp-10 or mbo records (every instrument, arrival order); the front contract's go to its date's
        detector."""
        out = FlowResults()
        book = self.books[schema]
        ts = records["ts_recv"].astype(np.int64)
        day = np.searchsorted(self.day_open, ts, "right") - 1
        inside = (day >= 0) & (ts < self.day_close[np.clip(day, 0, len(self.day_close) - 1)])
        if not inside.all():
            records, day = records[inside], day[inside]
        if not len(records):
            return out
        breaks = np.flatnonzero(np.diff(day)) + 1
        for lo, hi in zip(np.r_[0, breaks], np.r_[breaks, len(day)], strict=True):  # one run per trade date
            d = int(day[lo])
            if d < book.day:
                continue  # an earlier date already judged (never in arrival order)
            if d > book.day:
                if book.day >= 0:
                    self._add_book(out, book, book.flush())
                fresh = _BookDay(schema, self.params)
                fresh.day, fresh.instrument_id, fresh.raw_symbol = d, int(instrument_id), raw_symbol
                self.books[schema] = book = fresh
            part = records[lo:hi]
            part = part[part["instrument_id"] == book.instrument_id]
            if len(part):
                self._add_book(out, book, book.feed(part))
        return out

    def flush_book(self) -> FlowResults:
        out = FlowResults()
        for schema, book in self.books.items():
            if book.day >= 0:
                self._add_book(out, book, book.flush())
                self.books[schema] = _BookDay(schema, self.params)
        return out

    def _add_book(self, out: FlowResults, book: _BookDay, found: pa.Table) -> None:
        if not found.num_rows:
            return
        n = found.num_rows
        date = pa.array(np.full(n, self.dates[book.day].astype(np.int64), np.int32)).view(pa.date32())
        found = found.append_column("instrument_id", pa.array(np.full(n, book.instrument_id, np.int64))) \
            .append_column("raw_symbol", pa.array([book.raw_symbol] * n, pa.string())) \
            .append_column("trade_date", date)
        out.add(BOOK_SCHEMAS[book.schema], found)

    def flush(self) -> FlowResults:
        """The end of the capture: every held trade committed, every open bar, date and detector closed."""
        out = self.advance(self.clock_ns, final=True)
        out.merge(self.flush_book())
        return out


def _no_levels() -> list[np.ndarray]:
    return [np.empty(0, np.int64) for _ in range(4)]


def _concat(parts: list[Trades]) -> Trades:
    if len(parts) == 1:
        return parts[0]
    return Trades(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("ts", "price", "size", "side")))
