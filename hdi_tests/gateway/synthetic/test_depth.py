"""mbp-1 / mbp-10 from any MBO stream (mbp_from_mbo), on a hand-written stream with hand-computed answers: adds,
a partial cancel, a modify to a new price, a trade with its fill and cancel, levels beyond the top, a clear and
a snapshot re-adding the same order ids, and F_LAST moved to the last kept record of an event."""

from __future__ import annotations

import numpy as np
import pytest

from hdi_core.errors import HdiError
from hdi_gateway.synthetic import F_LAST, F_SNAPSHOT, MBO_DTYPE, mbp_from_mbo

IID = 10291
TICKS = {IID: 250_000_000}
UNDEF = 2**63 - 1
E = (UNDEF, 0, 0)  # an empty level


def px(points: float) -> int:
    return round(points * 1e9)


# (action, side, order_id, price, size, flags)
STREAM = [
    ("R", "N", 0, None, 0, F_LAST),  # 0
    ("A", "B", 1, 100.00, 5, F_LAST),  # 1
    ("A", "B", 2, 100.00, 3, F_LAST),  # 2
    ("A", "A", 3, 100.25, 4, F_LAST),  # 3
    ("A", "B", 4, 99.50, 6, F_LAST),  # 4: second bid level
    ("C", "B", 1, 100.00, 2, F_LAST),  # 5: partial cancel
    ("M", "B", 2, 99.75, 3, F_LAST),  # 6: a new price
    ("T", "B", 0, 100.25, 1, 0),  # 7: buy aggressor
    ("F", "A", 3, 100.25, 1, 0),  # 8
    ("C", "A", 3, 100.25, 1, F_LAST),  # 9
    ("A", "A", 5, 101.00, 2, 0),  # 10: one event of two adds beyond the top
    ("A", "A", 6, 102.00, 1, F_LAST),  # 11
    ("R", "N", 0, None, 0, F_LAST),  # 12
    ("A", "B", 1, 100.00, 7, F_SNAPSHOT),  # 13: the same ids again after the clear
    ("A", "A", 3, 100.25, 2, F_SNAPSHOT | F_LAST),  # 14
    ("A", "B", 7, 100.00, 1, 0),  # 15: at the top ...
    ("A", "B", 8, 98.00, 1, F_LAST),  # 16: ... and below it: mbp-1 keeps only row 15, which ends the event
]


@pytest.fixture(scope="module")
def mbo() -> np.ndarray:
    out = np.zeros(len(STREAM), dtype=MBO_DTYPE)
    out["rtype"], out["publisher_id"], out["instrument_id"], out["length"] = 0xA0, 1, IID, 14
    for i, (action, side, oid, price, size, flags) in enumerate(STREAM):
        out[i]["action"], out[i]["side"], out[i]["order_id"] = action.encode(), side.encode(), oid
        out[i]["price"] = UNDEF if price is None else px(price)
        out[i]["size"], out[i]["flags"] = size, flags
    out["ts_recv"] = out["ts_event"] = 1_700_000_000_000_000_000 + np.arange(len(STREAM)) * 1_000
    out["sequence"] = 100 + np.arange(len(STREAM))
    return out


def levels(record: np.ndarray, side: str, n: int) -> list[tuple[int, int, int]]:
    return [(int(record[f"{side}_px_{j:02d}"]), int(record[f"{side}_sz_{j:02d}"]), int(record[f"{side}_ct_{j:02d}"]))
            for j in range(n)]


def test_mbp1_by_hand(mbo: np.ndarray) -> None:
    got = mbp_from_mbo(mbo, 1, TICKS)
    # row, depth, flags, best bid, best ask
    expected = [
        (0, 0, F_LAST, E, E),
        (1, 0, F_LAST, (px(100), 5, 1), E),
        (2, 0, F_LAST, (px(100), 8, 2), E),
        (3, 0, F_LAST, (px(100), 8, 2), (px(100.25), 4, 1)),
        (5, 0, F_LAST, (px(100), 6, 2), (px(100.25), 4, 1)),
        (6, 1, F_LAST, (px(100), 3, 1), (px(100.25), 4, 1)),  # left the top level: kept, at its new depth
        (7, 0, 0, (px(100), 3, 1), (px(100.25), 4, 1)),  # the trade: the book before its fills' cancels
        (9, 0, F_LAST, (px(100), 3, 1), (px(100.25), 3, 1)),
        (12, 0, F_LAST, E, E),
        (13, 0, F_SNAPSHOT, (px(100), 7, 1), E),
        (14, 0, F_SNAPSHOT | F_LAST, (px(100), 7, 1), (px(100.25), 2, 1)),
        (15, 0, F_LAST, (px(100), 8, 2), (px(100.25), 2, 1)),
    ]
    assert len(got) == len(expected)
    for record, (row, depth, flags, bid, ask) in zip(got, expected, strict=True):
        source = mbo[row]
        for field in ("ts_recv", "ts_event", "sequence", "action", "side", "price", "size", "instrument_id"):
            assert record[field] == source[field], (row, field)
        assert (int(record["depth"]), int(record["flags"])) == (depth, flags), row
        assert levels(record, "bid", 1) == [bid] and levels(record, "ask", 1) == [ask], row
    assert set(got["rtype"].tolist()) == {1} and set(got["length"].tolist()) == {20}


def test_mbp10_by_hand(mbo: np.ndarray) -> None:
    got = mbp_from_mbo(mbo, 10, TICKS)
    rows = [r for r, (action, *_rest) in enumerate(STREAM) if action != "F"]
    assert got["sequence"].tolist() == [100 + r for r in rows]
    by_row = dict(zip(rows, got, strict=True))
    assert levels(by_row[6], "bid", 4) == [(px(100), 3, 1), (px(99.75), 3, 1), (px(99.5), 6, 1), E]
    assert int(by_row[6]["depth"]) == 1
    assert levels(by_row[11], "ask", 4) == [(px(100.25), 3, 1), (px(101), 2, 1), (px(102), 1, 1), E]
    assert (int(by_row[10]["depth"]), int(by_row[10]["flags"])) == (1, 0)
    assert (int(by_row[11]["depth"]), int(by_row[11]["flags"])) == (2, F_LAST)
    assert levels(by_row[16], "bid", 3) == [(px(100), 8, 2), (px(98), 1, 1), E]
    assert set(got["rtype"].tolist()) == {10} and got.dtype.itemsize == 368


def test_a_window_replays_the_rows_before_it(mbo: np.ndarray) -> None:
    whole = mbp_from_mbo(mbo, 10, TICKS)
    tail = mbp_from_mbo(mbo, 10, TICKS, emit_lo=9)
    assert tail.tobytes() == whole[whole["sequence"] >= 109].tobytes()


def test_bad_depth_and_missing_tick_are_named(mbo: np.ndarray) -> None:
    with pytest.raises(HdiError, match="depth 5"):
        mbp_from_mbo(mbo, 5, TICKS)
    with pytest.raises(HdiError, match="10291"):
        mbp_from_mbo(mbo, 1, {})
