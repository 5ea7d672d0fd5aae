"""hdi_core.live.flow: any split of a tape into arrival-order batches, fed with the stream's clock, gives the
historical whole-array functions' results exactly (trades in ts_event order within the grace; the book per trade
date, indexes from the date's first record); a trade later than the grace is left out and counted; the profile
is final once the clock passes the trade date's close."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from orderflow_tapes import TICK, random_book, random_trades, week_sessions

from hdi_core.config.orderflow import OrderflowParams
from hdi_core.dbn.schemas import SCHEMA_DTYPES
from hdi_core.live.flow import ProductFlow
from hdi_core.orderflow import absorption_zones, aggressor_flow, footprint, top_of_book, volume_profile

PARAMS = OrderflowParams()
GRACE = 250_000_000


def _collect(results: list, kind: str) -> pa.Table:
    parts = [t for r in results for t in r.closed.get(kind, [])]
    return pa.concat_tables(parts) if parts else None


def test_trades_in_any_split_equal_the_whole_tape_functions() -> None:
    sessions = week_sessions()
    trades = random_trades(5, 6_000)
    rng = np.random.default_rng(1)
    recv = trades.ts + rng.integers(0, GRACE // 2, len(trades))  # delivery later than the event, within the grace
    order = np.argsort(recv, kind="stable")  # arrival order: ts_recv
    flow = ProductFlow(sessions, TICK, PARAMS, GRACE)
    cuts = np.sort(rng.choice(np.arange(1, len(order)), 300, replace=False))
    out = []
    for part in np.split(order, cuts):
        out.append(flow.on_trades(trades.ts[part], trades.price[part], trades.size[part], trades.side[part],
                                  int(recv[part].max())))
    out.append(flow.flush())
    assert flow.late_trades == 0
    for interval in ("1s", "1m"):
        assert _collect(out, f"delta-{interval}").equals(aggressor_flow(trades, sessions, interval)), interval
    assert _collect(out, "footprint-1m").equals(footprint(trades, sessions, "1m", TICK))
    levels, summary = volume_profile(trades, sessions, TICK)
    assert _collect(out, "profile").equals(levels)
    assert _collect(out, "profile-summary").equals(summary)
    assert any(r.provisional is not None for r in out)  # the open date's profile as it grew


def test_a_trade_later_than_the_grace_is_counted_and_left_out() -> None:
    sessions = week_sessions()
    trades = random_trades(6, 200)
    flow = ProductFlow(sessions, TICK, PARAMS, GRACE)
    flow.on_trades(trades.ts[1:], trades.price[1:], trades.size[1:], trades.side[1:], int(trades.ts[-1]) + GRACE)
    flow.on_trades(trades.ts[:1], trades.price[:1], trades.size[:1], trades.side[:1], int(trades.ts[-1]) + GRACE)
    assert flow.late_trades == 1


def test_the_profile_is_final_when_the_clock_passes_the_close() -> None:
    sessions = week_sessions()
    trades = random_trades(7, 500)
    first_day = sessions.trade_date == sessions.trade_date[0]
    close = int(sessions.close_ns[first_day].max())
    mine = trades.ts < close
    flow = ProductFlow(sessions, TICK, PARAMS, GRACE)
    flow.on_trades(trades.ts[mine], trades.price[mine], trades.size[mine], trades.side[mine], close - 10**9)
    closed = flow.advance(close + GRACE)
    summary = pa.concat_tables(closed.closed["profile-summary"])
    assert summary.num_rows == 1 and closed.provisional is None


def _mbp10(rows: list[tuple], start_ns: int) -> np.ndarray:
    records = np.zeros(len(rows), SCHEMA_DTYPES["mbp-10"])
    for i, (ms, action, side, px, sz, bpx, bsz, apx, asz) in enumerate(rows):  # a test tape, built plainly
        records[i]["ts_recv"] = start_ns + ms * 1_000_000
        records[i]["ts_event"] = start_ns + ms * 1_000_000
        records[i]["sequence"] = 1000 + i
        records[i]["instrument_id"] = 42
        records[i]["action"] = action.encode()
        records[i]["side"] = side.encode()
        records[i]["price"] = px * TICK
        records[i]["size"] = sz
        records[i]["flags"] = 128
        records[i]["bid_px_00"], records[i]["bid_sz_00"] = bpx * TICK, bsz
        records[i]["ask_px_00"], records[i]["ask_sz_00"] = apx * TICK, asz
    return records


def test_book_batches_equal_the_whole_tape_per_trade_date() -> None:
    sessions = week_sessions()
    records = _mbp10(random_book(3, 3_000), int(sessions.open_ns[0]) + 3600 * 10**9)
    flow = ProductFlow(sessions, TICK, PARAMS)
    out = [flow.on_book("mbp-10", part, 42, "ESH4") for part in np.array_split(records, 37)]
    out.append(flow.flush_book())
    live = _collect(out, "absorption")
    want = absorption_zones(top_of_book(records), PARAMS.absorption.min_volume,
                            PARAMS.absorption.min_absorbed_ratio, PARAMS.absorption.max_idle_ms)
    assert want.num_rows > 0
    assert live.select(want.column_names).equals(want)
    assert set(live["raw_symbol"].to_pylist()) == {"ESH4"}
