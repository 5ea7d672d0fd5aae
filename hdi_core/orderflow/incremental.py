"""The trade measures fed live: record batches in arrival order in, closed bars (or sessions) out.

Each accumulator keeps only the trades of the bar still open (for the profile: of the trade date still open) and
runs the same whole-array function on them, so any split of a tape into batches gives, batch outputs plus
`flush()` concatenated, exactly the table of the whole-array function. A bar closes when a trade of a later bar
arrives (or at `flush()`, at the end of the session or of the capture). The book measures are incremental by
construction: absorption.AbsorptionDetector and icebergs.IcebergDetector.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from hdi_core.calendar.arrays import Sessions
from hdi_core.orderflow.delta import FLOW_SCHEMA, flow_of_bars
from hdi_core.orderflow.footprint import FOOTPRINT_SCHEMA, footprint_of_bars
from hdi_core.orderflow.profile import PROFILE_SCHEMA, SUMMARY_SCHEMA, profile_from_levels
from hdi_core.orderflow.tape import BarIndex, Trades, bar_index


def _concat(a: Trades | None, b: Trades) -> Trades:
    if a is None or len(a) == 0:
        return b
    return Trades(*(np.concatenate([getattr(a, f), getattr(b, f)]) for f in ("ts", "price", "size", "side")))


class _BarBuffer:
    """The trades of the open bar; `push` returns the trades and bars a batch closed."""

    def __init__(self, sessions: Sessions, interval: str) -> None:
        self.sessions = sessions
        self.interval = interval
        self.tail: Trades | None = None

    def push(self, batch: Trades, final: bool = False) -> tuple[Trades, BarIndex]:
        buffer = _concat(self.tail, batch)
        bars = bar_index(buffer.ts, self.sessions, self.interval)
        keep = len(bars) if final else max(len(bars) - 1, 0)
        cut = int(bars.starts[keep])
        self.tail = buffer.slice(cut, len(buffer))
        closed = BarIndex(bars.starts[: keep + 1], bars.bar_ts[:keep], bars.session_id[:keep],
                          bars.trade_date[:keep])
        return buffer.slice(0, cut), closed

    def flush(self) -> tuple[Trades, BarIndex]:
        empty = Trades(*(np.empty(0, np.int64) for _ in range(3)), np.empty(0, np.uint8))
        return self.push(empty, final=True)


class FlowAccumulator:
    """Aggressor flow (delta) bars of one interval; the cumulative delta carries across batches in a session."""

    def __init__(self, sessions: Sessions, interval: str) -> None:
        self._buffer = _BarBuffer(sessions, interval)
        self._carry_date = np.int32(-(2**31))
        self._carry = 0

    def _emit(self, trades: Trades, bars: BarIndex) -> pa.Table:
        if len(bars) == 0:
            return FLOW_SCHEMA.empty_table()
        start = np.where(bars.trade_date == self._carry_date, self._carry, 0).astype(np.int64)
        table = flow_of_bars(trades, bars, start)
        self._carry_date = bars.trade_date[-1]
        self._carry = int(table.column("cum_delta")[-1].as_py())
        return table

    def feed(self, batch: Trades) -> pa.Table:
        return self._emit(*self._buffer.push(batch))

    def flush(self) -> pa.Table:
        return self._emit(*self._buffer.flush())


class FootprintAccumulator:
    """Footprint rows of one interval, bar by bar as bars close."""

    def __init__(self, sessions: Sessions, interval: str, tick: int, ratio: float = 3.0,
                 min_volume: int = 10) -> None:
        self._buffer = _BarBuffer(sessions, interval)
        self._args = (int(tick), float(ratio), int(min_volume))

    def _emit(self, trades: Trades, bars: BarIndex) -> pa.Table:
        return footprint_of_bars(trades, bars, *self._args) if len(bars) else FOOTPRINT_SCHEMA.empty_table()

    def feed(self, batch: Trades) -> pa.Table:
        return self._emit(*self._buffer.push(batch))

    def flush(self) -> pa.Table:
        return self._emit(*self._buffer.flush())


class ProfileAccumulator:
    """The volume profile of each trade date once the next one's first trade arrives (or at flush)."""

    def __init__(self, sessions: Sessions, tick: int, value_area_share: float = 0.70, node_window_ticks: int = 3,
                 hvn_factor: float = 1.5, lvn_factor: float = 0.5) -> None:
        self._buffer = _BarBuffer(sessions, "1d")
        self._tick = int(tick)
        self._args = (float(value_area_share), int(node_window_ticks), float(hvn_factor), float(lvn_factor))

    def _emit(self, trades: Trades, days: BarIndex) -> tuple[pa.Table, pa.Table]:
        if len(days) == 0:
            return PROFILE_SCHEMA.empty_table(), SUMMARY_SCHEMA.empty_table()
        levels = footprint_of_bars(trades, days, self._tick)
        return profile_from_levels(levels, days.bar_ts, days.trade_date, self._tick, *self._args)

    def feed(self, batch: Trades) -> tuple[pa.Table, pa.Table]:
        return self._emit(*self._buffer.push(batch))

    def flush(self) -> tuple[pa.Table, pa.Table]:
        return self._emit(*self._buffer.flush())
