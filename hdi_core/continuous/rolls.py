"""Roll events of a continuous symbol: when the instrument changes and the price gap between contracts.

The gap is always measured with both contracts priced at the SAME moment: their settlements of the last CME
trade date before the switch on which both have one (holidays and long weekends skipped), or as a fallback
their last trades in the last minute in which both traded before the close of a segment preceding the
switch. Never old-last-tick vs new-first-tick, which would bake the overnight (or weekend) move into all
adjusted history.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from hdi_core.calendar.arrays import Sessions
from hdi_core.continuous.bars import column_i64
from hdi_core.errors import HdiError
from hdi_core.units import DAY_NS, NS

MINUTE_NS = 60 * NS
DEFAULT_WINDOW_NS = 30 * MINUTE_NS

# switch_ns: when HDI's continuous series changes contract; databento_switch_ns: when Databento's continuous
# symbol does (00:00 UTC of the new mapping interval). They differ when switching at the trade-date open.
SWITCH_SCHEMA = pa.schema([("switch_ns", pa.int64()), ("old_instrument_id", pa.int64()),
                           ("new_instrument_id", pa.int64()), ("databento_switch_ns", pa.int64())])
SWITCH_AT = ("trade_date_open", "databento")
ROLL_SCHEMA = pa.schema([
    ("switch_ns", pa.int64()), ("old_instrument_id", pa.int64()), ("new_instrument_id", pa.int64()),
    ("old_raw_symbol", pa.string()), ("new_raw_symbol", pa.string()), ("old_price", pa.int64()),
    ("new_price", pa.int64()), ("roll_gap", pa.int64()), ("method", pa.string()),
    ("reference_ns", pa.int64()), ("reference_trade_date", pa.date32()), ("databento_switch_ns", pa.int64()),
])


class MissingPriceError(HdiError):
    """A roll has no pair of same-moment prices from the allowed sources."""


def empty_roll_events() -> pa.Table:
    """A roll-event table with no rows (a window without rolls)."""
    return ROLL_SCHEMA.empty_table()


STAT_SETTLEMENT = 3
STAT_DELETE = 2  # StatUpdateAction.Delete
SETTLEMENT_FINAL_FLAG = 1  # stat_flags bit 0: final (set) vs preliminary settlement
UNDEF_PRICE = np.iinfo(np.int64).max


def settlements_from_statistics(stats: pa.Table) -> pa.Table:
    """Settlement prices (instrument_id, trade_date, price) from a Databento statistics table.

    Keeps stat_type 3 with a defined price, drops deletes; the trade date is the UTC date of `ts_ref`.
    `final` tells final from preliminary settlements (only finals price a roll); finals sort last.
    """
    stat = column_i64(stats, "stat_type")
    price = column_i64(stats, "price")
    keep = (stat == STAT_SETTLEMENT) & (price != UNDEF_PRICE)
    if "update_action" in stats.column_names:
        keep &= column_i64(stats, "update_action") != STAT_DELETE
    ts_ref = column_i64(stats, "ts_ref")[keep]
    final = ((column_i64(stats, "stat_flags")[keep] & SETTLEMENT_FINAL_FLAG) != 0
             if "stat_flags" in stats.column_names else np.ones(len(ts_ref), bool))
    order_key = (column_i64(stats, "ts_recv")[keep] if "ts_recv" in stats.column_names
                 else np.arange(len(ts_ref)))
    order = np.lexsort((order_key, final))
    return pa.table({
        "instrument_id": pa.array(column_i64(stats, "instrument_id")[keep][order]),
        "trade_date": pa.array((ts_ref[order] // DAY_NS).astype("datetime64[D]"), pa.date32()),
        "price": pa.array(price[keep][order]),
        "final": pa.array(final[order]),
    })


@dataclass(frozen=True)
class _Gap:
    old_price: int
    new_price: int
    method: str
    reference_ns: int
    reference_trade_date: dt.date | None


def _utc_midnight_ns(day: str | dt.date) -> int:
    d = dt.date.fromisoformat(day) if isinstance(day, str) else day
    return int(dt.datetime(d.year, d.month, d.day, tzinfo=dt.UTC).timestamp()) * NS


def switches_from_mappings(intervals: Sequence[tuple[str, str, int | str]]) -> pa.Table:
    """One row per change of instrument in a continuous symbol's mapping intervals.

    `intervals` are Databento's (start_date inclusive, end_date exclusive, instrument_id), UTC dates; the
    switch is 00:00 UTC of the new interval's start date. Repeated intervals of one instrument are no roll.
    """
    rows = sorted((str(s), str(e), int(i)) for s, e, i in intervals)
    for (_, e0, _), (s1, _, _) in zip(rows, rows[1:], strict=False):
        if s1 < e0:
            raise HdiError(f"symbol mapping intervals overlap: one ends {e0}, the next starts {s1}")
    switch, old, new = [], [], []
    for (_, _, i0), (s1, _, i1) in zip(rows, rows[1:], strict=False):
        if i1 != i0:
            switch.append(_utc_midnight_ns(s1))
            old.append(i0)
            new.append(i1)
    return pa.Table.from_arrays([pa.array(switch, pa.int64()), pa.array(old, pa.int64()),
                                 pa.array(new, pa.int64()), pa.array(switch, pa.int64())], schema=SWITCH_SCHEMA)


def trade_date_open_ns(instants_ns: np.ndarray, sessions: Sessions) -> np.ndarray:
    """The open of the first segment of the trade date each instant takes effect in (that of the first segment
    closing after it), so a switch there leaves every session and daily bar to one contract."""
    instants_ns = np.asarray(instants_ns, dtype=np.int64)
    if len(sessions) == 0:
        return instants_ns.copy()
    k = np.minimum(np.searchsorted(sessions.close_ns, instants_ns, side="right"), len(sessions) - 1)
    first = np.searchsorted(sessions.trade_date, sessions.trade_date[k], side="left")
    return sessions.open_ns[first]


def switch_at(switches: pa.Table, sessions: Sessions, rule: str) -> pa.Table:
    """Switches moved to where HDI changes contract: `trade_date_open` (default) moves Databento's 00:00 UTC
    switch, an hour or two into the new trade date's evening session, back to that trade date's first open;
    `databento` keeps Databento's instant. `databento_switch_ns` keeps Databento's instant either way."""
    if rule not in SWITCH_AT:
        raise HdiError(f"switch_at {rule!r}: use one of {', '.join(SWITCH_AT)}")
    if rule == "databento" or switches.num_rows == 0:
        return switches
    moved = trade_date_open_ns(column_i64(switches, "databento_switch_ns"), sessions)
    return switches.set_column(0, "switch_ns", pa.array(moved, pa.int64()))


SETTLEMENT_LOOKBACK_DAYS = 10  # how far before the switch a settlement pair may come from (Christmas + weekend)
TRADES_LOOKBACK_NS = 7 * DAY_NS  # how far back the last-trades fallback walks over segments


def _switch_trade_date(switch_ns: int, sessions: Sessions) -> np.datetime64 | None:
    """The trade date the switch takes effect in: that of the first segment closing after it."""
    k = int(np.searchsorted(sessions.close_ns, switch_ns, side="right"))
    if k < len(sessions):
        return sessions.trade_date[k]
    return None if len(sessions) == 0 else sessions.trade_date[-1] + np.timedelta64(1, "D")


def _trade_date_close_ns(day: np.datetime64, sessions: Sessions) -> int:
    """Close of the last segment of trade date `day` (the settlement moment); 00:00 UTC after it if unknown."""
    k = int(np.searchsorted(sessions.trade_date, day, side="right")) - 1
    if k >= 0 and sessions.trade_date[k] == day:
        return int(sessions.close_ns[k])
    return int((day + np.timedelta64(1, "D")).astype("datetime64[ns]").astype(np.int64))


Settlements = Mapping[int, tuple[np.ndarray, np.ndarray]]  # instrument_id -> (sorted trade dates, prices)


def _settlement_gap(switch_ns: int, old_id: int, new_id: int, prices: Settlements, sessions: Sessions,
                    tried: list[str]) -> _Gap | None:
    """Both settlements of the last trade date before the switch on which both contracts have one."""
    switch_day = _switch_trade_date(switch_ns, sessions)
    if switch_day is None:
        tried.append("settlement: no trading segments around the switch")
        return None
    earliest = switch_day - np.timedelta64(SETTLEMENT_LOOKBACK_DAYS, "D")
    empty = (np.array([], "datetime64[D]"), np.array([], np.int64))
    (old_days, old_px), (new_days, new_px) = prices.get(old_id, empty), prices.get(new_id, empty)
    both = np.intersect1d(old_days, new_days)
    both = both[(both < switch_day) & (both >= earliest)]
    if len(both):
        day = both[-1]
        old = int(old_px[np.searchsorted(old_days, day)])
        new = int(new_px[np.searchsorted(new_days, day)])
        return _Gap(old, new, "settlement", _trade_date_close_ns(day, sessions), day.astype(dt.date))
    seen = np.union1d(old_days, new_days)
    seen = seen[(seen < switch_day) & (seen >= earliest)]
    missing = [f"{d} {'new' if d in old_days else 'old'} missing" for d in seen[-4:]]
    tried.append(f"settlement: trade dates {earliest}..{switch_day - np.timedelta64(1, 'D')} "
                 f"({', '.join(missing) or 'no settlement of either contract'})")
    return None


def _settlement_lookup(settlements: pa.Table) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """instrument_id -> (sorted unique trade dates, settlement price); of duplicates the last row wins.

    With a `final` column only final settlements count: a preliminary one is not the day's price.
    """
    if "final" in settlements.column_names:
        settlements = settlements.filter(settlements["final"])
    ids = column_i64(settlements, "instrument_id")
    days = settlements.column("trade_date").cast(pa.date32()).to_numpy(zero_copy_only=False)
    days = days.astype("datetime64[D]")
    price = column_i64(settlements, "price")
    out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for iid in np.unique(ids):  # one iteration per instrument
        mine = np.flatnonzero(ids == iid)
        # Reverse before unique: unique keeps the first occurrence, and the last row (a final) must win.
        d_rev, p_rev = days[mine][::-1], price[mine][::-1]
        uniq, first = np.unique(d_rev, return_index=True)
        out[int(iid)] = (uniq, p_rev[first])
    return out


def _common_minute(start: int, end: int, old: tuple[np.ndarray, ...], old_id: int, new: tuple[np.ndarray, ...],
                   new_id: int) -> tuple[int, int, int] | None:
    """(old price, new price, minute start) of the last minute in [start, end) in which both traded."""

    def last_per_minute(ticks: tuple[np.ndarray, ...], iid: int) -> tuple[np.ndarray, np.ndarray]:
        ts, price, ids = ticks
        a, b = np.searchsorted(ts, [start, end], side="left")
        mine = ids[a:b] == iid
        t, p = ts[a:b][mine], price[a:b][mine]
        minute = (t - start) // MINUTE_NS
        last = np.flatnonzero(np.append(minute[1:] != minute[:-1], True)) if len(t) else np.array([], int)
        return minute[last], p[last]

    old_min, old_px = last_per_minute(old, old_id)
    new_min, new_px = last_per_minute(new, new_id)
    both = np.intersect1d(old_min, new_min)
    if len(both) == 0:
        return None
    m = both[-1]
    return (int(old_px[np.searchsorted(old_min, m)]), int(new_px[np.searchsorted(new_min, m)]),
            start + int(m) * MINUTE_NS)


def _last_trade_gap(switch_ns: int, old_id: int, new_id: int, old: tuple[np.ndarray, ...],
                    new: tuple[np.ndarray, ...], sessions: Sessions | None, window_ns: int,
                    tried: list[str]) -> _Gap | None:
    """Both contracts' last trades in the same minute, in the final `window_ns` of the last segment before the
    switch that has such a minute, walking back over holiday sessions and long weekends."""
    if sessions is None:
        found = _common_minute(switch_ns - window_ns, switch_ns, old, old_id, new, new_id)
        if found is None:
            tried.append(f"last_trades: no minute with trades of both in the {window_ns // MINUTE_NS} min before it")
            return None
        return _Gap(found[0], found[1], "last_trades", found[2], None)
    k = int(np.searchsorted(sessions.close_ns, switch_ns, side="right")) - 1
    days: list[str] = []
    while k >= 0 and int(sessions.close_ns[k]) > switch_ns - TRADES_LOOKBACK_NS:  # one iteration per segment
        end = int(sessions.close_ns[k])
        found = _common_minute(end - window_ns, end, old, old_id, new, new_id)
        if found is not None:
            return _Gap(found[0], found[1], "last_trades", found[2], sessions.trade_date[k].astype(dt.date))
        days.append(f"{sessions.trade_date[k]} (close {np.datetime64(end, 'ns')}Z)")
        k -= 1
    tried.append(f"last_trades: no minute with trades of both in the final {window_ns // MINUTE_NS} min of "
                 f"segments {', '.join(days) or '(none within a week)'}")
    return None


def _tick_arrays(ticks: pa.Table) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ts = column_i64(ticks, "ts_event")
    if len(ts) > 1 and bool(np.any(ts[1:] < ts[:-1])):
        raise HdiError("tick table for roll gaps is not sorted by ts_event")
    return ts, column_i64(ticks, "price"), column_i64(ticks, "instrument_id")


def raw_symbols_of(*tables: pa.Table | None) -> dict[int, str]:
    """instrument_id -> raw_symbol from tick tables holding both columns (one entry per instrument)."""
    out: dict[int, str] = {}
    for table in tables:
        if table is None or "raw_symbol" not in table.column_names or table.num_rows == 0:
            continue
        pairs = table.select(["instrument_id", "raw_symbol"]).group_by(["instrument_id", "raw_symbol"])
        pairs = pairs.aggregate([])
        for iid, sym in zip(pairs.column(0).to_pylist(), pairs.column(1).to_pylist(), strict=True):
            out[int(iid)] = sym
    return out


def roll_events(switches: pa.Table, sessions: Sessions | None, settlements: pa.Table | None = None,
                old_ticks: pa.Table | None = None, new_ticks: pa.Table | None = None,
                window_ns: int = DEFAULT_WINDOW_NS, raw_symbols: Mapping[int, str] | None = None,
                methods: tuple[str, ...] = ("settlement", "last_trades")) -> pa.Table:
    """Roll events with gaps from settlements, falling back to same-minute last trades, per roll.

    `old_ticks`/`new_ticks` hold trades of the outgoing/incoming contracts before each switch (one table
    may hold several instruments; it may be the same table). Raises HdiError naming the roll when no
    allowed method has both prices. Without `sessions` only last trades work, in the window ending at the
    switch itself.
    """
    prices = _settlement_lookup(settlements) if settlements is not None and "settlement" in methods else None
    use_trades = "last_trades" in methods and old_ticks is not None and new_ticks is not None
    old_arr = _tick_arrays(old_ticks) if use_trades else None
    new_arr = old_arr if use_trades and new_ticks is old_ticks else (_tick_arrays(new_ticks) if use_trades
                                                                     else None)
    symbols = dict(raw_symbols_of(old_ticks, new_ticks))
    symbols.update(raw_symbols or {})
    rows: list[tuple] = []
    databento_sw = (column_i64(switches, "databento_switch_ns") if "databento_switch_ns" in switches.column_names
                    else column_i64(switches, "switch_ns"))
    columns = (column_i64(switches, k) for k in ("switch_ns", "old_instrument_id", "new_instrument_id"))
    for (sw, old_id, new_id), db_sw in zip(zip(*columns, strict=True), databento_sw, strict=True):  # per roll
        sw, old_id, new_id = int(sw), int(old_id), int(new_id)
        gap, tried = None, []
        if prices is not None and sessions is not None:
            gap = _settlement_gap(sw, old_id, new_id, prices, sessions, tried)
        if gap is None and use_trades:
            gap = _last_trade_gap(sw, old_id, new_id, old_arr, new_arr, sessions, window_ns, tried)
        if gap is None:
            when = str(np.datetime64(sw, "ns")) + "Z"
            raise MissingPriceError(
                f"roll at {when} from instrument {old_id} ({symbols.get(old_id, '?')}) to {new_id} "
                f"({symbols.get(new_id, '?')}): no {' or '.join(methods)} prices for both contracts "
                f"at the same moment before the switch; tried {'; '.join(tried) or 'nothing (no inputs)'}")
        rows.append((sw, old_id, new_id, symbols.get(old_id, ""), symbols.get(new_id, ""), gap.old_price,
                     gap.new_price, gap.new_price - gap.old_price, gap.method, gap.reference_ns,
                     gap.reference_trade_date, int(db_sw)))
    return pa.Table.from_pylist([dict(zip(ROLL_SCHEMA.names, r, strict=True)) for r in rows],
                                schema=ROLL_SCHEMA)


def gaps_from_settlements(switches: pa.Table, settlements: pa.Table, sessions: Sessions,
                          raw_symbols: Mapping[int, str] | None = None) -> pa.Table:
    """Gap = new - old settlement of the last trade date before each switch on which both have one; raises if none.

    `settlements` columns: instrument_id, trade_date (date32), price (int64 fixed). Filter to final
    settlements first; duplicates keep the last row.
    """
    return roll_events(switches, sessions, settlements=settlements, raw_symbols=raw_symbols,
                       methods=("settlement",))


def gaps_from_last_trades(switches: pa.Table, old_ticks: pa.Table, new_ticks: pa.Table,
                          window_ns: int = DEFAULT_WINDOW_NS, sessions: Sessions | None = None,
                          raw_symbols: Mapping[int, str] | None = None) -> pa.Table:
    """Gap = new - old last trade in the last minute both traded, within `window_ns` before the last close.

    Without `sessions` the window ends at the switch itself. Raises HdiError naming a roll with no such
    minute.
    """
    return roll_events(switches, sessions, old_ticks=old_ticks, new_ticks=new_ticks, window_ns=window_ns,
                       raw_symbols=raw_symbols, methods=("last_trades",))
