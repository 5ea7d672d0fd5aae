"""The measures on one ES session of the synthetic market (trades, mbo and mbp-10 of its lead contract): fed live
in random batches they equal the whole-session functions (historical = live after the session), and the tapes'
known facts hold (every trade's volume is filled from resting orders, zones absorb what traded)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from hdi_core.calendar import calendar_sessions
from hdi_core.orderflow import (
    AbsorptionDetector,
    FlowAccumulator,
    FootprintAccumulator,
    IcebergDetector,
    Trades,
    absorption_zones,
    aggressor_flow,
    footprint,
    iceberg_candidates,
    order_events,
    top_of_book,
)
from hdi_core.units import NS
from hdi_gateway.synthetic import SyntheticMarket

DAY = dt.date(2024, 7, 9)
TICK = 250_000_000


@pytest.fixture(scope="module")
def session() -> dict[str, np.ndarray]:
    market = SyntheticMarket(ticks_per_session={"ES": 20_000})
    mbo = market.session_mbo("ES", DAY)
    mbp = market.session_mbp("ES", DAY, 10)
    trades = mbo[mbo["action"] == b"T"]
    ids, counts = np.unique(trades["instrument_id"], return_counts=True)
    lead = ids[np.argmax(counts)]
    return {"mbo": mbo[mbo["instrument_id"] == lead], "mbp": mbp[mbp["instrument_id"] == lead]}


def _splits(n: int, seed: int) -> list[tuple[int, int]]:
    rng = np.random.default_rng(seed)
    cuts = sorted(rng.choice(np.arange(1, n), 30, replace=False).tolist())
    edges = [0, *cuts, n]
    return list(zip(edges[:-1], edges[1:], strict=True))


def test_known_facts_of_the_tape(session: dict) -> None:
    mbo = session["mbo"]
    traded = int(mbo["size"][mbo["action"] == b"T"].sum())
    filled = int(mbo["size"][mbo["action"] == b"F"].sum())
    assert traded > 0 and traded == filled  # each aggressor's volume is filled from resting orders
    mbp = session["mbp"]
    assert int(mbp["size"][mbp["action"] == b"T"].sum()) == traded


def test_book_detectors_live_equal_the_whole_session(session: dict) -> None:
    book, events = top_of_book(session["mbp"]), order_events(session["mbo"])
    zones = absorption_zones(book, min_volume=20)
    assert zones.num_rows > 0
    sells = int(book.size[(book.action == ord("T")) & (book.side == ord("A"))].sum())
    assert int(np.sum(zones.filter(pc.equal(zones["side"], "B"))["volume"].to_numpy())) <= sells
    for seed in (1, 2):
        live = AbsorptionDetector(min_volume=20)
        parts = [live.feed(book.slice(a, b)) for a, b in _splits(len(book), seed)]
        assert pa.concat_tables([*parts, live.flush()]).equals(zones)
    icebergs = iceberg_candidates(events, min_refills=1)
    live_icebergs = IcebergDetector(min_refills=1)
    parts = [live_icebergs.feed(events.slice(a, b)) for a, b in _splits(len(events), 3)]
    joined = pa.concat_tables([*parts, live_icebergs.flush()])
    order = np.lexsort((joined["rule"].to_numpy(zero_copy_only=False), joined["first_index"].to_numpy()))
    assert joined.take(order).equals(icebergs)


def test_trade_measures_live_equal_the_whole_session(session: dict) -> None:
    mbo = session["mbo"]
    t = mbo[mbo["action"] == b"T"]
    order = np.argsort(t["ts_event"], kind="stable")
    trades = Trades(t["ts_event"][order].view(np.int64), t["price"][order], t["size"][order].astype(np.int64),
                    t["side"][order].view(np.uint8))
    sessions = calendar_sessions("CME Globex Equity", int(trades.ts[0]) - NS * 86_400, int(trades.ts[-1]) + NS)
    whole_flow, whole_foot = aggressor_flow(trades, sessions, "1m"), footprint(trades, sessions, "1m", TICK)
    assert int(whole_flow["volume"].to_numpy().sum()) == int(trades.size.sum())
    flow, foot = FlowAccumulator(sessions, "1m"), FootprintAccumulator(sessions, "1m", TICK)
    flows, feet = [], []
    for a, b in _splits(len(trades), 4):
        flows.append(flow.feed(trades.slice(a, b)))
        feet.append(foot.feed(trades.slice(a, b)))
    assert pa.concat_tables([*flows, flow.flush()]).equals(whole_flow)
    assert pa.concat_tables([*feet, foot.flush()]).equals(whole_foot)
