"""What the roll assets ask of the exchange calendar and the Databento resource: the sessions a window owns,
where its switches take effect, the same-moment prices of each roll, and the new contract's first stretch."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from dagster import AssetExecutionContext

from hdi_assets.partitions import ProductConfig
from hdi_core.calendar import Sessions
from hdi_core.continuous import rolls, splice
from hdi_core.units import DAY_NS
from hdi_resources.databento import DatabentoResource, FetchResult

SETTLEMENT_REACH_NS = 4 * DAY_NS



EDGE_REACH_NS = 7 * DAY_NS


def session_range(product: ProductConfig, window_start_ns: int, window_end_ns: int) -> tuple[int, int]:
    """[open of the first segment, close of the last segment) of the product's CME trade dates in the window."""
    sessions = product.sessions(window_start_ns - EDGE_REACH_NS, window_end_ns + EDGE_REACH_NS)
    first_day = np.datetime64(window_start_ns, "ns").astype("datetime64[D]")
    last_day = np.datetime64(window_end_ns, "ns").astype("datetime64[D]")
    owned = (sessions.trade_date >= first_day) & (sessions.trade_date < last_day)
    return int(sessions.open_ns[owned].min()), int(sessions.close_ns[owned].max())


def switch_trade_dates(switch_ns: np.ndarray, sessions: Sessions) -> np.ndarray:
    """The trade date each switch takes effect in: that of the first segment closing after it (a switch on a
    weekend or holiday belongs to the next trade date, hence to the window owning that date)."""
    k = np.searchsorted(sessions.close_ns, switch_ns, side="right")
    return sessions.trade_date[np.minimum(k, len(sessions) - 1)]


def switch_at_trade_date_open(databento: DatabentoResource, product: ProductConfig, fetched: FetchResult,
                               start_ns: int, end_ns: int, context: AssetExecutionContext) -> pa.Table:
    """The continuous symbol's trades with each contract change moved to the open of its trade date: the new
    contract's trades from that open to Databento's 00:00 UTC switch are fetched by raw symbol (splice.py)."""
    intervals = [(str(i.start_date), str(i.end_date), int(i.symbol))
                 for i in fetched.mappings.get(product.continuous_symbol, [])]
    sessions = product.sessions(start_ns - EDGE_REACH_NS, end_ns + EDGE_REACH_NS)
    switches = rolls.switch_at(rolls.switches_from_mappings(intervals), sessions, product.switch_at)
    spans = [s for s in splice.stretches(switches) if s[0] < end_ns and s[1] > start_ns]
    if not spans:
        return fetched.table
    raw = databento.raw_symbols(product.dataset, [new for *_, new in spans], start_ns, end_ns)
    fresh = [
        databento.get_range(dataset=product.dataset, schema="trades", symbols=[raw[new]], stype_in="raw_symbol",
                            start=max(lo, start_ns), end=min(hi, end_ns), context=context).table
        for lo, hi, _, new in spans
    ]
    kept = switches.filter(pa.array(np.isin(switches["switch_ns"].to_numpy(), [s[0] for s in spans])))
    return splice.splice(fetched.table, kept, fresh)


def owned_switches(product: ProductConfig, switches: pa.Table, start_ns: int, end_ns: int) -> pa.Array:
    """Mask of the switches this window owns: those taking effect in one of its trade dates. Its segments
    run [start_ns, end_ns); a switch between windows (weekend, holiday) goes to the one owning the next date."""
    ts = switches["switch_ns"].to_numpy()
    sessions = product.sessions(start_ns - EDGE_REACH_NS, end_ns + EDGE_REACH_NS)
    first_day = switch_trade_dates(np.array([start_ns]), sessions)[0]
    return pa.array((switch_trade_dates(ts, sessions) >= first_day) & (ts < end_ns))


def measure_roll_gaps(
    databento: DatabentoResource, product: ProductConfig, switches: pa.Table, raw: dict[int, str]
) -> pa.Table:
    """Both contracts at the same moment: settlements of the last session before each switch by default,
    falling back per roll to both contracts' last trades in the final minutes before that session's close."""
    if switches.num_rows == 0:
        return rolls.empty_roll_events()
    first_ns = int(pc.min(switches["switch_ns"]).as_py()) - (rolls.SETTLEMENT_LOOKBACK_DAYS + 1) * DAY_NS
    last_ns = int(pc.max(switches["switch_ns"]).as_py())
    # Settlements from well before the switch to a few days past it, so final ones exist for every trade date
    # back over a long weekend or holiday; the roll logic picks the last date before the switch that has both.
    sessions = product.sessions(first_ns, last_ns + SETTLEMENT_REACH_NS)
    settlements = None
    if product.roll_gap_source == "settlement":
        stats = databento.get_range(
            dataset=product.dataset,
            schema="statistics",
            symbols=sorted(raw.values()),
            stype_in="raw_symbol",
            start=first_ns,
            end=databento.clamp_end(product.dataset, "statistics", last_ns + SETTLEMENT_REACH_NS),
        ).table
        settlements = rolls.settlements_from_statistics(stats)
        try:
            return rolls.roll_events(switches, sessions, settlements, raw_symbols=raw)
        except rolls.MissingPriceError:
            pass  # some roll lacks a settlement pair: fetch the trades evidence and fall back per roll
    trades = _trades_before_switches(databento, product, switches, raw)
    return rolls.roll_events(switches, sessions, settlements, trades, trades, raw_symbols=raw)


def _trades_before_switches(
    databento: DatabentoResource, product: ProductConfig, switches: pa.Table, raw: dict[int, str]
) -> pa.Table:
    """Both contracts' trades in the final minutes of each segment in the week before each switch (the
    fallback walks back over holiday segments and long weekends), fetched by raw symbol."""
    switch_ns = switches["switch_ns"].to_numpy()
    sessions = product.sessions(int(switch_ns.min()) - rolls.TRADES_LOOKBACK_NS, int(switch_ns.max()) + 1)
    pieces = []
    for switch, old, new in zip(  # one iteration per roll
        switch_ns.tolist(), switches["old_instrument_id"].to_pylist(), switches["new_instrument_id"].to_pylist(),
        strict=True,
    ):
        recent = (sessions.close_ns <= switch) & (sessions.close_ns > switch - rolls.TRADES_LOOKBACK_NS)
        closes = sessions.close_ns[recent]
        pieces += [
            databento.get_range(
                dataset=product.dataset,
                schema="trades",
                symbols=[raw[old], raw[new]],
                stype_in="raw_symbol",
                start=int(close) - rolls.DEFAULT_WINDOW_NS,
                end=int(close),
            ).table
            for close in closes  # one request per segment: only its final minutes are evidence
        ]
    if not pieces:
        return pa.table({"ts_event": pa.array([], pa.int64()), "price": pa.array([], pa.int64()),
                         "instrument_id": pa.array([], pa.int64())})
    return pa.concat_tables(pieces, promote_options="default").sort_by("ts_event")
