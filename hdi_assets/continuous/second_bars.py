"""The 1 s bars of the adjusted ticks as ohlcv_1s builds them: stray ticks kept as labelled bars, ticks put in
ts_event order for the bar kernels (the ticks as delivered stay in index-time order for the checks)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from hdi_core.calendar import Sessions, session_index
from hdi_core.continuous import bars


def one_second_bars(ticks: pa.Table, sessions: Sessions, start_ns: int, end_ns: int, dense: bool) -> pa.Table:
    """1s bars; ticks outside every session are not dropped but become bars with session_id -1, which the
    session_alignment checkpoint reports (and, being blocking, keeps out of the database)."""
    inside = session_index(ticks["ts_event"].to_numpy(), sessions) >= 0
    if inside.all():
        return bars.ohlcv_1s(ticks, sessions, dense=dense)
    edges = np.unique(np.concatenate([[start_ns], sessions.open_ns, sessions.close_ns, [end_ns]]))
    gaps = Sessions(edges[:-1], edges[1:], edges[:-1].astype("datetime64[ns]").astype("datetime64[D]"))
    stray = bars.ohlcv_1s(ticks.filter(pa.array(~inside)), gaps)
    stray = stray.set_column(
        stray.schema.get_field_index("session_id"),
        "session_id",
        pa.array(np.full(stray.num_rows, -1, np.int64)),
    )
    good = bars.ohlcv_1s(ticks.filter(pa.array(inside)), sessions, dense=dense)
    return pa.concat_tables([good, stray.cast(good.schema)]).sort_by("ts_event")


def as_ticks(adjusted: pa.Table) -> pa.Table:
    """Bars are built from the adjusted price."""
    return pa.table(
        {
            "ts_event": adjusted["ts_event"],
            "price": adjusted["adjusted_price"],
            "size": adjusted["size"],
            "instrument_id": adjusted["instrument_id"],
            "raw_symbol": adjusted["raw_symbol"],
        }
    )


def in_event_order(ticks: pa.Table) -> pa.Table:
    """Ticks as delivered (index-time order) sorted by ts_event for the bars; stable, and only when needed."""
    ts = ticks["ts_event"].to_numpy()
    if len(ts) < 2 or bool((ts[1:] >= ts[:-1]).all()):
        return ticks
    return ticks.take(pa.array(np.argsort(ts, kind="stable")))
