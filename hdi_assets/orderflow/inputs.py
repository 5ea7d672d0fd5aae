"""What the order-flow assets read: the window's range and sessions, the adjusted trades with their aggressor
side (in event order, inside the sessions), and the front contract of each trade date (for its book)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from dagster import AssetExecutionContext

from hdi_assets import lake_io
from hdi_assets.continuous.assets import panama_adjusted_ticks
from hdi_assets.continuous.roll_inputs import session_range
from hdi_assets.continuous.second_bars import in_event_order
from hdi_assets.partitions import ProductConfig, product_window
from hdi_core.calendar import Sessions, session_index
from hdi_core.errors import HdiError
from hdi_core.orderflow import Trades, trades_from_table
from hdi_core.units import NS


@dataclass(frozen=True)
class Window:
    product: ProductConfig
    window: str
    start_ns: int
    end_ns: int
    sessions: Sessions


def window_of(context: AssetExecutionContext) -> Window:
    """The product, window key, its whole sessions' range (as the continuous chain's) and calendar sessions."""
    product, window = product_window(context.partition_key)
    span = context.partition_time_window
    start_ns, end_ns = session_range(product, int(span.start.timestamp()) * NS, int(span.end.timestamp()) * NS)
    return Window(product, window, start_ns, end_ns, product.sessions(start_ns, end_ns))


def adjusted_ticks(context: AssetExecutionContext, w: Window) -> pa.Table:
    """The window's adjusted ticks in ts_event order, those inside a session (the bars' sessions) only."""
    ticks = lake_io.read(panama_adjusted_ticks, context.partition_key)
    if "side" not in ticks.column_names:
        raise HdiError(f"panama_adjusted_ticks {context.partition_key} has no 'side' column (written before order "
                       "flow existed): materialize raw_ticks and panama_adjusted_ticks of this partition again")
    ticks = in_event_order(ticks)
    inside = session_index(ticks["ts_event"].to_numpy(), w.sessions) >= 0
    return ticks if inside.all() else ticks.filter(pa.array(inside))


def adjusted_trades(context: AssetExecutionContext, w: Window) -> Trades:
    return trades_from_table(adjusted_ticks(context, w), price_column="adjusted_price")


@dataclass(frozen=True)
class TradeDate:
    """One trade date of the window and the contract the continuous series traded on it."""

    trade_date: np.datetime64
    open_ns: int
    close_ns: int
    instrument_id: int
    raw_symbol: str


def front_contracts(ticks: pa.Table, sessions: Sessions) -> list[TradeDate]:
    """Per trade date with trades: its range (first open to last close) and the contract of its first tick."""
    ts = ticks["ts_event"].to_numpy()
    if len(ts) == 0:
        return []
    day = sessions.trade_date[session_index(ts, sessions)]
    first = np.flatnonzero(np.concatenate([[True], day[1:] != day[:-1]]))
    ids = ticks["instrument_id"].to_numpy()
    symbols = ticks["raw_symbol"].cast(pa.string()).take(pa.array(first)).to_pylist()  # one per trade date
    out = []
    for k, i in enumerate(first):
        rows = sessions.trade_date == day[i]
        out.append(TradeDate(day[i], int(sessions.open_ns[rows].min()), int(sessions.close_ns[rows].max()),
                             int(ids[i]), symbols[k]))
    return out
