"""MBO snapshots: replaying a snapshot taken anywhere in a session rebuilds the reference book of the stream up
to that point, queue order included (the plain-Python ReferenceBook of test_book)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from test_book import F_BAD_TS_RECV, F_LAST, F_SNAPSHOT, ReferenceBook, as_rows

from hdi_gateway.synthetic import TEST_TICKS_PER_SESSION, SyntheticMarket, mbo_snapshot

DAY = dt.date(2024, 3, 12)


def book_state(book: ReferenceBook) -> dict:
    """Every non-empty level as (instrument, side, price) -> [(order id, size) in priority order]."""
    return {(iid, side, price): [(o, book.orders[(iid, o)][2]) for o in ids]
            for (iid, side), levels in book.levels.items() for price, ids in levels.items() if ids}


@pytest.fixture(scope="module")
def market() -> SyntheticMarket:
    return SyntheticMarket(seed=7, ticks_per_session=TEST_TICKS_PER_SESSION)


def test_a_snapshot_rebuilds_the_book_anywhere(market: SyntheticMarket) -> None:
    mbo = market.session_mbo("ES", DAY)
    rows = as_rows(mbo)
    cuts = sorted({len(mbo) // 7 * i for i in range(1, 7)} | {len(mbo)})
    book = ReferenceBook()
    done = 0
    for cut in cuts:
        for row in rows[done:cut]:
            book.apply(row)
        done = cut
        snap = mbo_snapshot(mbo, cut, 123)
        assert (snap["flags"] & (F_SNAPSHOT | F_BAD_TS_RECV) == F_SNAPSHOT | F_BAD_TS_RECV).all()
        assert (snap["ts_recv"] == 123).all() and set(snap["action"].tolist()) == {b"R", b"A"}
        per_instrument = np.unique(snap["instrument_id"])
        assert int(((snap["flags"] & F_LAST) != 0).sum()) == len(per_instrument)
        rebuilt = ReferenceBook()
        for row in as_rows(snap):
            rebuilt.apply(row)
        assert book_state(rebuilt) == book_state(book), cut


def test_session_snapshot_cuts_on_ts_recv_and_filters_instruments(market: SyntheticMarket) -> None:
    mbo = market.session_mbo("ES", DAY)
    ts = int(mbo["ts_recv"][len(mbo) // 2])
    upto = int(np.searchsorted(mbo["ts_recv"], np.uint64(ts)))
    iid = int(np.bincount(mbo["instrument_id"] - 10_000).argmax()) + 10_000
    snap = market.session_snapshot("ES", DAY, ts, np.array([iid]))
    assert snap.tobytes() == mbo_snapshot(mbo, upto, ts, np.array([iid])).tobytes()
    assert set(snap["instrument_id"].tolist()) == {iid} and snap["action"][0] == b"R"
    assert len(mbo_snapshot(mbo, 0, ts)) == 0
